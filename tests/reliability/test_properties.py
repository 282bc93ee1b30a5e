"""Property-based tests (hypothesis) of the data transforms, end to end from a written file.

From random event tables (few users and items, so ties, duplicate events, repeated items and short users are
common; some rows lack a key): reading + cleaning + sessionising loses or invents no event beyond the counted
repairs, keeps each user's time order (ties in file order), and every split protocol gives disjoint, leak-free
splits whose target counts add up. The streamed (chunked) build equals the in-memory one on the same inputs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from intentrec.config import DataConfig, parse_duration
from intentrec.data import adapters
from intentrec.data.chunked import build_chunked
from intentrec.data.clean import clean
from intentrec.data.pipeline import Prepared, build, prepare_with_report
from intentrec.data.sessions import SESSION, assign_sessions
from intentrec.data.split import training_mask
from intentrec.errors import DataError
from intentrec.vocab import UNK_IDX

REMOVALS = ("duplicates_dropped", "kcore_events_removed", "events_dropped_max_per_user", "events_dropped_min_events")
"""Report keys of every event that cleaning removes."""
STEP = 600.0
"""Seconds between the integer time steps drawn (so a 30-minute gap falls between 3 and 4 steps)."""

rows_strategy = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7), st.integers(0, 12)), min_size=12,
                         max_size=60)
"""(user, item, time step) rows: 6 users, 8 items and 13 time steps make ties and duplicates common."""
missing_strategy = st.lists(st.tuples(st.sampled_from(["user_id", "item_id", "timestamp"]), st.integers(0, 59)),
                            max_size=3)
clean_strategy = st.fixed_dictionaries({
    "dedupe": st.booleans(),
    "k_core": st.integers(0, 2),
    "min_events_per_user": st.integers(0, 3),
    "max_events_per_user": st.one_of(st.none(), st.integers(3, 6)),
})
split_strategy = st.one_of(
    st.fixed_dictionaries({"protocol": st.just("temporal"), "targets": st.sampled_from(["next", "all"])}),
    st.fixed_dictionaries({"protocol": st.just("leave-one-out")}),
    st.fixed_dictionaries({"protocol": st.just("user"), "targets": st.sampled_from(["all", "last"]),
                           "seed": st.integers(0, 3), "val_fraction": st.just(0.3), "test_fraction": st.just(0.3)}),
)


def _write_log(folder: Path, rows: list[tuple[int, int, int]], missing: list[tuple[str, int]]) -> tuple[Path, pl.DataFrame]:
    """Write the rows as a CSV (time steps of :data:`STEP` s); ``missing`` blanks (column, row) cells."""
    frame = pl.DataFrame({
        "user_id": [f"u{u}" for u, _, _ in rows],
        "item_id": [f"i{i}" for _, i, _ in rows],
        "timestamp": [float(t) * STEP for _, _, t in rows],
    }, schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Float64})
    for column, j in missing:
        if j < frame.height:
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == j).then(None).otherwise(pl.col(column)).alias(column))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "log.csv"
    frame.write_csv(path)
    return path, frame


def _config(path: Path, clean_cfg: dict[str, Any], split: dict[str, Any], columns: dict[str, Any] | None = None,
            **extra: Any) -> DataConfig:
    return DataConfig.model_validate({
        "source": {"adapter": "table", "path": str(path), "columns": columns or {}}, "clean": clean_cfg,
        "split": split, "sessions": {"gap": "30min"}, "cache_dir": None, **extra,
    })


@settings(max_examples=50, deadline=None)
@given(rows=rows_strategy, missing=missing_strategy, clean_cfg=clean_strategy)
def test_reading_cleaning_and_sessions_lose_and_invent_nothing(
    tmp_path_factory: Any, rows: list[tuple[int, int, int]], missing: list[tuple[str, int]],
    clean_cfg: dict[str, Any],
) -> None:
    path, written = _write_log(tmp_path_factory.mktemp("log"), rows, missing)
    cfg = _config(path, clean_cfg, {"protocol": "leave-one-out"})
    keyless = written.filter(pl.any_horizontal(pl.all().is_null())).height
    assume(keyless < written.height)  # (a file of keyless rows only is refused: tests/reliability/test_bad_input)
    raw = adapters.load(cfg.source)
    report = dict(raw.report)
    # reading: rows without a user, item or time are the only ones dropped, and they are counted
    assert raw.interactions.height == written.height - keyless
    assert sum(v for k, v in report.items() if k.startswith("rows_missing_")) == keyless
    try:
        frame = clean(raw.interactions, cfg.clean, report, origin="log")
    except DataError as err:
        assert "no events left" in str(err)
        event("cleaning removed every event")
        return
    frame = assign_sessions(frame, cfg.sessions, timed=True)
    # cleaning: the survivors plus the counted removals are the events read
    assert report["events_read"] == raw.interactions.height
    assert frame.height == report["events_read"] - sum(report.get(k, 0) for k in REMOVALS)
    # nothing invented or altered: every kept row is its input row
    source = {j: r for j, r in enumerate(written.rows())}
    for row, user, item, t in frame.select("_row", "user_id", "item_id", "timestamp").rows():
        assert source[row] == (user, item, t)
    # order: (user, time, file row), so ties keep the file order
    keys = list(zip(frame["user_id"], frame["timestamp"], frame["_row"], strict=True))
    assert keys == sorted(keys)
    if cfg.clean.dedupe:
        assert frame.select("user_id", "item_id", "timestamp").is_duplicated().sum() == 0
    else:  # without dedupe, duplicates survive as often as they were written
        kept = Counter(frame.select("user_id", "item_id", "timestamp").rows())
        assert all(n <= Counter(written.rows())[k] for k, n in kept.items())
    # sessions: numbered 0, 1, ... per user, a new one exactly when the gap exceeds 30 minutes
    gap = parse_duration(cfg.sessions.gap)
    for (_,), user in frame.group_by("user_id", maintain_order=True):
        times, sessions = user["timestamp"].to_list(), user[SESSION].to_list()
        assert sessions[0] == 0
        for j in range(1, len(times)):
            assert sessions[j] - sessions[j - 1] == int(times[j] - times[j - 1] > gap)


def _targets(pairs: np.ndarray) -> set[tuple[int, int]]:
    return {(int(u), int(p)) for u, p in pairs.tolist()}


@settings(max_examples=50, deadline=None)
@given(rows=rows_strategy, missing=missing_strategy, clean_cfg=clean_strategy, split=split_strategy)
def test_every_protocol_gives_disjoint_leak_free_splits_that_add_up(
    tmp_path_factory: Any, rows: list[tuple[int, int, int]], missing: list[tuple[str, int]],
    clean_cfg: dict[str, Any], split: dict[str, Any],
) -> None:
    path, _ = _write_log(tmp_path_factory.mktemp("log"), rows, missing)
    try:
        prepared = prepare_with_report(_config(path, clean_cfg, split))
    except DataError as err:
        assert "no events left" in str(err) or "no interactions left" in str(err)
        event("cleaning removed every event")
        return
    data, report = prepared.data, prepared.report
    n = int(data.offsets[-1])
    lengths = np.diff(data.offsets)
    assert n == report["events_read"] - sum(report.get(k, 0) for k in REMOVALS)  # counts add up
    for u in range(data.n_users):
        assert (np.diff(data.timestamps[data.user_slice(u)]) >= 0).all()  # per-user time order
    sp = data.split
    event(f"{sp.protocol}: {'with' if len(sp.val_targets) and len(sp.test_targets) else 'without'} targets in both")
    train = training_mask(data.offsets, sp.train_len)  # (N,)
    val, test = _targets(sp.val_targets), _targets(sp.test_targets)
    assert val.isdisjoint(test)
    rows_of = {(u, p): int(data.offsets[u]) + p for u, p in val | test}
    assert not any(train[r] for r in rows_of.values())  # no target is a training event
    assert all(data.item_idx[r] != UNK_IDX for r in rows_of.values())  # targets are known items
    # no target of a later split is an input of an earlier split: test targets never precede a validation target
    # of the same user (its inputs are the positions before it), and training holds neither
    for u, p in val:
        assert not any(tu == u and tp < p for tu, tp in test)
    # the item vocabulary is fitted on training events only
    known = set(data.item_idx[train].tolist())
    assert known <= set(range(2, data.spec.n_items)) and len(known) == data.spec.n_items - 2
    excluded = sp.excluded["no_history"] + sp.excluded["cold_item"]
    if sp.protocol == "temporal":
        t_val, t_test = prepared.stats["cutoffs"]["t_val"], prepared.stats["cutoffs"]["t_test"]
        assert (data.timestamps[train] < t_val).all() and (data.timestamps[~train] >= t_val).all()
        for (u, p), r in rows_of.items():
            lo, hi = (t_val, t_test) if (u, p) in val else (t_test, np.inf)
            assert lo <= data.timestamps[r] < hi
        if split["targets"] == "all":  # every event in the two windows is a target or counted as excluded
            assert len(val) + len(test) + excluded == int((~train).sum())
    elif sp.protocol == "leave-one-out":
        eligible = int((lengths >= 3).sum())
        assert len(val) + len(test) + excluded == 2 * eligible
        assert all(p == lengths[u] - 2 for u, p in val) and all(p == lengths[u] - 1 for u, p in test)
    else:  # user: held-out users have no training events and are in one split only
        val_users, test_users = {u for u, _ in val}, {u for u, _ in test}
        assert val_users.isdisjoint(test_users)
        assert all(sp.train_len[u] == 0 for u in val_users | test_users)
        held_out = np.nonzero(sp.train_len == 0)[0]
        # "all": every position after the first; "last": the last position (a one-event user's is excluded)
        candidates = int((lengths[held_out] - 1).sum()) if split["targets"] == "all" else len(held_out)
        assert len(val) + len(test) + excluded == candidates


def _assert_same(a: Prepared, b: Prepared) -> None:
    x, y = a.data, b.data
    assert x.user_ids == y.user_ids and x.item_vocab == y.item_vocab and x.label_vocabs == y.label_vocabs
    for name in ("offsets", "item_idx", "timestamps", "duration", "session", "numeric"):
        assert np.array_equal(np.asarray(getattr(x, name)), np.asarray(getattr(y, name))), name
    for name in ("train_len", "val_targets", "test_targets"):
        assert np.array_equal(np.asarray(getattr(x.split, name)), np.asarray(getattr(y.split, name))), name
    for name in x.categorical:
        assert np.array_equal(np.asarray(x.categorical[name]), np.asarray(y.categorical[name])), name
    assert x.split.excluded == y.split.excluded and x.duration_median == y.duration_median
    assert a.report == b.report and a.stats == b.stats


@settings(max_examples=25, deadline=None)
@given(rows=rows_strategy, missing=missing_strategy, clean_cfg=clean_strategy, split=split_strategy,
       watch=st.lists(st.sampled_from(["1.5", "3", "nan", "-2", "oops", "1e12", ""]), min_size=60, max_size=60),
       chunk_events=st.integers(1, 30))
def test_the_streamed_build_equals_the_in_memory_build(
    tmp_path_factory: Any, rows: list[tuple[int, int, int]], missing: list[tuple[str, int]],
    clean_cfg: dict[str, Any], split: dict[str, Any], watch: list[str], chunk_events: int,
) -> None:
    clean_cfg = {**clean_cfg, "k_core": 0}  # the streamed k-core is tested in tests/data; keep examples quick
    folder = tmp_path_factory.mktemp("log")
    path, written = _write_log(folder, rows, missing)
    table = pl.read_csv(path, infer_schema=False).with_columns(pl.Series("watch", watch[: len(rows)]))
    table.write_csv(path)
    assume(written.filter(pl.any_horizontal(pl.all().is_null())).height < written.height)
    assume(any(w not in {"oops", ""} for w in watch[: len(rows)]))  # a duration column with no number is refused
    cfg = _config(path, clean_cfg, split, {"duration": "watch"}, intents=[{"name": "rep", "kind": "repeat"}])
    try:
        memory = build(cfg, fingerprint="k")
    except DataError as err:
        assert "no events left" in str(err)
        return
    entry = folder / "entry"
    entry.mkdir()
    _assert_same(memory, build_chunked(cfg, entry, fingerprint="k", chunk_events=chunk_events))
