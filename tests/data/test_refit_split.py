"""``refit_split``: a refit trains on the validation period and keeps the test targets exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from intentrec.config import DataConfig
from intentrec.data.pipeline import prepare_with_report
from intentrec.data.split import check_split, refit_split, user_roles
from intentrec.errors import ConfigError

WriteTable = Callable[..., Path]
TableConfig = Callable[..., DataConfig]


def _log(seed: int, n_users: int = 40) -> dict[str, list[object]]:
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        for j in range(int(rng.integers(1, 20))):
            users.append(f"u{u:02d}")
            items.append(f"i{int(rng.integers(0, 15))}")
            times.append(int(rng.integers(0, 1_000_000)) * 100 + j)
    return {"user_id": users, "item_id": items, "timestamp": times}


def test_leave_one_out_refit_adds_the_validation_event(write_table: WriteTable, table_config: TableConfig) -> None:
    lengths = {"a": 1, "b": 2, "c": 3, "d": 5}
    rows = [(u, j) for u, n in lengths.items() for j in range(n)]
    path = write_table({"user_id": [r[0] for r in rows], "item_id": ["x" if r[1] % 2 else "y" for r in rows],
                        "timestamp": [r[1] for r in rows]})
    data = prepare_with_report(table_config(path, split={"protocol": "leave-one-out"})).data
    split = refit_split(data.split, data.offsets, data.timestamps)
    assert data.split.train_len.tolist() == [1, 2, 1, 3]
    assert split.train_len.tolist() == [1, 2, 2, 4]  # the validation event (n - 2) is a training event now
    assert split.val_targets.shape == (0, 2)
    assert np.array_equal(split.test_targets, data.split.test_targets)
    assert "refit" in split.description and "2 events more" in split.description
    check_split(split, data.offsets, data.timestamps)


@pytest.mark.parametrize("targets", ["next", "all"])
def test_temporal_refit_trains_on_everything_before_the_test_cutoff(
    write_table: WriteTable, table_config: TableConfig, targets: str
) -> None:
    prepared = prepare_with_report(table_config(write_table(_log(1)), split={"protocol": "temporal",
                                                                            "targets": targets}))
    data = prepared.data
    t_val, t_test = prepared.stats["cutoffs"]["t_val"], prepared.stats["cutoffs"]["t_test"]
    split = refit_split(data.split, data.offsets, data.timestamps, t_test=t_test)
    added = 0
    for u in range(data.n_users):
        ts = data.timestamps[data.offsets[u]:data.offsets[u + 1]]
        assert split.train_len[u] == int((ts < t_test).sum())
        added += int(((ts >= t_val) & (ts < t_test)).sum())  # every validation-window event, not only targets
    assert int(split.train_len.sum() - data.split.train_len.sum()) == added > 0
    assert np.array_equal(split.test_targets, data.split.test_targets)
    assert (split.test_targets[:, 1] >= split.train_len[split.test_targets[:, 0]]).all()
    assert split.val_targets.shape == (0, 2)
    check_split(split, data.offsets, data.timestamps)
    with pytest.raises(ConfigError, match="t_test"):
        refit_split(data.split, data.offsets, data.timestamps)


def test_user_refit_makes_validation_users_training_users(write_table: WriteTable, table_config: TableConfig) -> None:
    cfg = table_config(write_table(_log(2)), split={"protocol": "user", "val_fraction": 0.25, "test_fraction": 0.25})
    data = prepare_with_report(cfg).data
    roles = user_roles(data.n_users, cfg.split)
    split = refit_split(data.split, data.offsets, data.timestamps, roles=roles)
    lengths = np.diff(data.offsets)
    assert (split.train_len[roles == 1] == lengths[roles == 1]).all() and (roles == 1).any()
    assert (split.train_len[roles == 2] == 0).all()
    assert (split.train_len[roles == 0] == data.split.train_len[roles == 0]).all()
    assert np.array_equal(split.test_targets, data.split.test_targets)
    check_split(split, data.offsets, data.timestamps)
    with pytest.raises(ConfigError, match="roles"):
        refit_split(data.split, data.offsets, data.timestamps)
