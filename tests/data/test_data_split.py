"""Splits (EVALUATION.md) and leakage: nothing from evaluation periods reaches training or its statistics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intentrec.config import DataConfig, SplitConfig
from intentrec.data import prepare
from intentrec.data.split import check_split, finalize_split, plan_split, training_mask
from intentrec.structs import EncodedSequences
from intentrec.vocab import UNK_IDX

WriteTable = Callable[..., Path]
TableConfig = Callable[..., DataConfig]


def _random_log(seed: int, n_users: int = 30, n_items: int = 40, max_len: int = 25) -> dict[str, list[object]]:
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    t = 0
    for u in range(n_users):
        for _ in range(int(rng.integers(1, max_len))):
            users.append(f"u{u:02d}")
            items.append(f"i{int(rng.zipf(1.5)) % n_items}")
            times.append(int(rng.integers(0, 1_000_000)) * 10 + (t % 10))  # distinct times
            t += 1
    return {"user_id": users, "item_id": items, "timestamp": times}


def _targets(data: EncodedSequences, which: str) -> list[tuple[int, int]]:
    pairs = data.split.val_targets if which == "val" else data.split.test_targets
    return [(int(u), int(p)) for u, p in pairs]


def test_leave_one_out_positions(write_table: WriteTable, table_config: TableConfig) -> None:
    lengths = {"a": 1, "b": 2, "c": 3, "d": 5}
    rows = [(u, f"i{j}", j) for u, n in lengths.items() for j in range(n)]
    path = write_table({"user_id": [r[0] for r in rows], "item_id": ["x" if r[1] == "i0" else "y" for r in rows],
                        "timestamp": [r[2] for r in rows]})
    data = prepare(table_config(path, split={"protocol": "leave-one-out"}))
    assert data.user_ids == ("a", "b", "c", "d")
    assert data.split.train_len.tolist() == [1, 2, 1, 3]
    assert _targets(data, "val") == [(2, 1), (3, 3)]
    assert _targets(data, "test") == [(2, 2), (3, 4)]
    assert data.split.protocol == "leave-one-out"


@pytest.mark.parametrize("targets", ["next", "all"])
def test_temporal_split_has_no_leakage(write_table: WriteTable, table_config: TableConfig, targets: str) -> None:
    path = write_table(_random_log(0))
    data = prepare(table_config(path, split={"protocol": "temporal", "targets": targets}))
    ts = data.timestamps
    t_val = float(np.quantile(ts, 0.8))
    t_test = float(np.quantile(ts, 0.9))
    train = training_mask(data.offsets, data.split.train_len)
    assert train.sum() > 0
    assert (ts[train] < t_val).all()  # no training event at or after the validation cut-off
    assert (ts[~train] >= t_val).all()  # and every earlier event is training
    for which, lo, hi in (("val", t_val, t_test), ("test", t_test, np.inf)):
        pairs = _targets(data, which)
        assert pairs, which
        per_user: dict[int, int] = {}
        for u, p in pairs:
            row = int(data.offsets[u]) + p
            assert lo <= ts[row] < hi
            assert p >= 1 and (ts[data.offsets[u]:row] < ts[row]).all()  # inputs strictly precede the target
            assert data.item_idx[row] != UNK_IDX
            per_user[u] = per_user.get(u, 0) + 1
        if targets == "next":
            assert max(per_user.values()) == 1
            for u in per_user:  # the user's first event in the window (or it was excluded)
                sl = data.user_slice(u)
                first = int(np.nonzero((ts[sl] >= lo) & (ts[sl] < hi))[0][0])
                assert (u, first) in pairs
    assert set(_targets(data, "val")).isdisjoint(_targets(data, "test"))
    assert "temporal" in data.split.description and "T" in data.split.description  # ISO dates
    check_split(data.split, data.offsets, ts, {"t_val": t_val, "t_test": t_test})


def test_temporal_all_counts_every_window_event(write_table: WriteTable, table_config: TableConfig) -> None:
    path = write_table(_random_log(1))
    data = prepare(table_config(path, split={"protocol": "temporal", "targets": "all"}))
    ts = data.timestamps
    t_val = float(np.quantile(ts, 0.8))
    in_window = int((ts >= t_val).sum())
    excluded = data.split.excluded
    assert len(data.split.val_targets) + len(data.split.test_targets) + excluded["no_history"] + excluded[
        "cold_item"] == in_window


@pytest.mark.parametrize("targets", ["all", "last"])
def test_user_split_disjoint(write_table: WriteTable, table_config: TableConfig, targets: str) -> None:
    path = write_table(_random_log(2, n_users=50))
    data = prepare(table_config(path, split={"protocol": "user", "targets": targets, "seed": 7}))
    val_users = {u for u, _ in _targets(data, "val")}
    test_users = {u for u, _ in _targets(data, "test")}
    train_users = set(np.nonzero(data.split.train_len > 0)[0].tolist())
    assert val_users and test_users
    assert val_users.isdisjoint(test_users) and train_users.isdisjoint(val_users | test_users)
    assert len(train_users) == 50 - 2 * round(0.1 * 50)
    lengths = np.diff(data.offsets)
    for u, p in _targets(data, "val") + _targets(data, "test"):
        assert 1 <= p < lengths[u]
        if targets == "last":
            assert p == lengths[u] - 1
    held_out = np.nonzero(data.split.train_len == 0)[0]
    n_candidates = sum(int(lengths[u]) - 1 for u in held_out) if targets == "all" else len(held_out)
    excluded = data.split.excluded["cold_item"] + data.split.excluded["no_history"]
    assert len(_targets(data, "val")) + len(_targets(data, "test")) + excluded == n_candidates
    again = prepare(table_config(path, split={"protocol": "user", "targets": targets, "seed": 7}))
    assert np.array_equal(again.split.val_targets, data.split.val_targets)  # seeded


def test_vocabularies_and_statistics_use_training_events_only(
    write_table: WriteTable, table_config: TableConfig
) -> None:
    # users a..e: events at t=1..10; the last 10% of times (t >= 10) is the test window
    users, items, times, labels, prices, watch = [], [], [], [], [], []
    for u in "abcde":
        for t in range(1, 11):
            users.append(u)
            late = t == 10
            items.append("brand-new" if late and u == "a" else f"i{t % 3}")
            times.append(t * 100 + ord(u))
            labels.append("late-label" if late else ("x" if t % 2 else "y"))
            prices.append(1000.0 if late else float(10 + t))
            watch.append(999.0 if late else 2.0)
    path = write_table({"user_id": users, "item_id": items, "timestamp": times, "kind": labels,
                        "price": prices, "watch": watch})
    cfg = table_config(path, columns={"duration": "watch"},
                       split={"protocol": "temporal", "targets": "all", "val_fraction": 0.1, "test_fraction": 0.1},
                       intents=[{"name": "kind", "kind": "categorical", "column": "kind"}],
                       features={"numeric": ["price"]})
    data = prepare(cfg)
    train = training_mask(data.offsets, data.split.train_len)
    assert "brand-new" not in data.item_vocab
    row_a_last = int(data.offsets[1]) - 1
    assert data.item_idx[row_a_last] == UNK_IDX
    assert data.split.excluded["cold_item"] >= 1  # counted and excluded
    assert (0, 9) not in _targets(data, "test")
    vocab = data.label_vocabs["kind"]
    assert "late-label" not in vocab.labels
    assert data.categorical["kind"][row_a_last] == 1  # -> other
    price = data.numeric[:, 0]  # events are in file order here (users a..e, times increasing)
    raw_price = np.array(prices)
    lo, hi = raw_price[train].min(), raw_price[train].max()
    assert (lo, hi) == (11.0, 18.0)  # t = 1..8 are training events
    np.testing.assert_allclose(price[train], (raw_price[train] - lo) / (hi - lo), rtol=1e-6)
    assert (price[raw_price == 1000.0] == 1.0).all()  # clipped: 1000 is outside the training range
    assert data.duration_median == 2.0  # the 999 engagement values are evaluation-period only


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=15),
    protocol=st.sampled_from(["temporal", "leave-one-out", "user"]),
    targets=st.sampled_from(["next", "all"]),
    seed=st.integers(0, 3),
)
def test_split_properties(lengths: list[int], protocol: str, targets: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ts = np.concatenate([np.sort(rng.integers(0, 50, n)).astype(float) for n in lengths])
    cfg = SplitConfig(protocol=protocol, targets=targets, seed=seed)  # type: ignore[arg-type]
    plan = plan_split(offsets, ts, cfg, timed=True)
    item_idx = rng.integers(1, 5, int(offsets[-1]))  # some UNK (1) items
    split = finalize_split(plan, offsets, item_idx)
    check_split(split, offsets, ts, plan.cutoffs or None)
    val = {tuple(x) for x in split.val_targets.tolist()}
    test = {tuple(x) for x in split.test_targets.tolist()}
    assert val.isdisjoint(test)
    train = training_mask(offsets, split.train_len)
    for u, p in val | test:
        assert not train[offsets[u] + p] and item_idx[offsets[u] + p] != UNK_IDX
    assert len(val) + len(test) + split.excluded["cold_item"] == len(plan.val) + len(plan.test)
    assert split.cold_targets == {"validation": len(plan.val) - len(val), "test": len(plan.test) - len(test)}
    assert int(train.sum()) + sum(1 for _ in val | test) <= int(offsets[-1])
