"""Cleaning and sessions: stable order, counted removals, k-core, latest-n, the gap rule."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from intentrec.config import CleanConfig, SessionConfig
from intentrec.data.clean import clean, k_core
from intentrec.data.sessions import SESSION, assign_sessions
from intentrec.errors import DataError


def _frame(users: list[str], items: list[str], times: list[float], **extra: list[object]) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": users, "item_id": items, "timestamp": [float(t) for t in times], **extra},
        schema_overrides={"user_id": pl.String, "item_id": pl.String},
    ).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))


def test_stable_order_by_user_time_then_row() -> None:
    frame = _frame(["b", "a", "a", "a", "b"], ["1", "2", "3", "4", "5"], [5, 2, 1, 2, 5])
    out = clean(frame, CleanConfig(min_events_per_user=1, dedupe=False), {})
    assert out["item_id"].to_list() == ["3", "2", "4", "1", "5"]  # ties keep file order


def test_dedupe_counts_exact_duplicates_only() -> None:
    frame = _frame(["a"] * 5, ["x", "x", "x", "y", "x"], [1, 1, 2, 1, 1],
                   action=["play", "play", "play", "play", "browse"])
    report: dict[str, int] = {}
    out = clean(frame, CleanConfig(min_events_per_user=1), report)
    assert report["duplicates_dropped"] == 1
    assert out.height == 4
    kept = clean(frame, CleanConfig(min_events_per_user=1, dedupe=False), {})
    assert kept.height == 5


def test_k_core_property() -> None:
    rng = np.random.default_rng(0)
    n = 400
    users = [f"u{x}" for x in rng.integers(0, 60, n)]
    items = [f"i{x}" for x in rng.zipf(1.6, n) % 80]
    frame = _frame(users, items, list(range(n)))
    report: dict[str, int] = {}
    out = k_core(frame, 3, report)
    assert out.height > 0
    assert out.group_by("user_id").len()["len"].min() >= 3  # type: ignore[operator]
    assert out.group_by("item_id").len()["len"].min() >= 3  # type: ignore[operator]
    assert report["kcore_events_removed"] == n - out.height
    # maximal: nothing removed that could have stayed -> k-core of the result is itself
    assert k_core(out, 3, {}).height == out.height


def test_latest_n_and_min_events() -> None:
    frame = _frame(["a"] * 5 + ["b"] * 2 + ["c"], list("12345678"), [1, 2, 3, 4, 5, 1, 2, 9])
    report: dict[str, int] = {}
    out = clean(frame, CleanConfig(max_events_per_user=3, min_events_per_user=2), report)
    assert out.filter(pl.col("user_id") == "a")["item_id"].to_list() == ["3", "4", "5"]  # the latest 3
    assert "c" not in out["user_id"].to_list()
    assert report["events_dropped_max_per_user"] == 2
    assert report["users_dropped_min_events"] == 1 and report["events_dropped_min_events"] == 1


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(0, 8)), min_size=1, max_size=60
    ),
    k=st.integers(0, 3),
    max_n=st.one_of(st.none(), st.integers(2, 6)),
    min_n=st.integers(0, 3),
)
def test_cleaning_loses_nothing_uncounted(events: list[tuple[int, int, int]], k: int, max_n: int | None, min_n: int) -> None:
    frame = _frame([f"u{u}" for u, _, _ in events], [f"i{i}" for _, i, _ in events], [t for _, _, t in events])
    report: dict[str, int] = {}
    assume(max_n is None or min_n <= max_n)  # the config refuses min > max (every user would be dropped)
    cfg = CleanConfig(k_core=k, max_events_per_user=max_n, min_events_per_user=min_n)
    try:
        out = clean(frame, cfg, report)
    except DataError as err:  # the only allowed failure: everything removed
        assert "no events left" in str(err)
        return
    removed = sum(report.get(key, 0) for key in (
        "duplicates_dropped", "kcore_events_removed", "events_dropped_max_per_user", "events_dropped_min_events"))
    assert out.height == len(events) - removed
    # nothing invented: every kept row is an input row, unchanged
    original = {r[0]: r for r in frame.rows()}
    assert all(original[r[0]] == r for r in out.rows())
    # order preserved: kept rows appear in (user, time, row) order
    keys = list(zip(out["user_id"], out["timestamp"], out["_row"], strict=True))
    assert keys == sorted(keys)
    if min_n:
        assert out.group_by("user_id").len()["len"].min() >= min_n  # type: ignore[operator]


# ----------------------------------------------------------------------------------------------------------
# sessions
# ----------------------------------------------------------------------------------------------------------


def test_session_gap_rule_brute_force() -> None:
    rng = np.random.default_rng(1)
    users = sorted(f"u{x}" for x in rng.integers(0, 8, 300))
    times = np.concatenate([np.sort(rng.integers(0, 20_000, users.count(u))) for u in sorted(set(users))])
    frame = _frame(users, ["i"] * len(users), times.tolist())
    out = assign_sessions(frame, SessionConfig(gap="30min"), timed=True)
    expected: list[int] = []
    for j, (u, t) in enumerate(zip(users, times, strict=True)):
        if j == 0 or users[j - 1] != u:
            expected.append(0)
        else:
            expected.append(expected[-1] + (1 if t - times[j - 1] > 1800 else 0))
    assert out[SESSION].to_list() == expected


def test_sessions_from_session_id_and_untimed() -> None:
    frame = _frame(["a", "a", "a", "a", "b"], list("12345"), [1, 2, 3, 10_000, 5],
                   session_id=["s1", "s1", "s2", "s2", "s9"])
    out = assign_sessions(frame, SessionConfig(), timed=True)
    assert out[SESSION].to_list() == [0, 0, 1, 1, 0]  # the id rules, not the gap
    untimed = assign_sessions(frame.drop("session_id"), SessionConfig(), timed=False)
    assert untimed[SESSION].to_list() == [0, 0, 0, 0, 0]
