"""prepare() and describe() end to end: output contract, real datasets, statistics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from intentrec.config import DataConfig
from intentrec.data import describe, prepare
from intentrec.data.split import check_split
from intentrec.structs import EncodedSequences
from intentrec.vocab import PAD_IDX

WriteTable = Callable[..., Path]
TableConfig = Callable[..., DataConfig]


def _check_contract(data: EncodedSequences) -> None:
    n = int(data.offsets[-1])
    lengths = np.diff(data.offsets)
    assert data.offsets.dtype == np.int64 and data.offsets[0] == 0 and (lengths > 0).all()
    assert len(data.user_ids) == len(lengths) == len(set(data.user_ids))
    assert data.item_idx.shape == (n,) and data.item_idx.dtype == np.int64
    assert (data.item_idx >= 1).all() and (data.item_idx < data.spec.n_items).all()  # never PAD
    assert data.timestamps.shape == (n,) and data.timestamps.dtype == np.float64
    assert data.duration.shape == (n,) and data.duration.dtype == np.float32 and (data.duration >= 0).all()
    assert data.session.shape == (n,) and data.session.dtype == np.int64
    assert data.numeric.shape == (n, len(data.spec.numeric)) and data.numeric.dtype == np.float32
    assert ((data.numeric >= 0) & (data.numeric <= 1)).all()
    for u in range(data.n_users):
        sl = data.user_slice(u)
        assert (np.diff(data.timestamps[sl]) >= 0).all()
        assert data.session[sl][0] == 0 and set(np.diff(data.session[sl]).tolist()) <= {0, 1}
        if not data.spec.timed:
            assert data.timestamps[sl].tolist() == list(range(sl.stop - sl.start))
    assert [a.name for a in data.spec.attributes] == list(data.categorical)
    for attr in data.spec.attributes:
        values = data.categorical[attr.name]
        assert values.dtype == np.int64 and values.shape[0] == n
        assert values.ndim == (2 if attr.multi_valued else 1)
        assert values.min() >= PAD_IDX and values.max() < attr.n_classes
        assert len(data.label_vocabs[attr.name]) == attr.n_classes
    assert data.spec.n_items == len(data.item_vocab)
    check_split(data.split, data.offsets, data.timestamps)


def test_synthetic_end_to_end_and_describe(write_table: WriteTable, table_config: TableConfig) -> None:
    rng = np.random.default_rng(5)
    n = 400
    path = write_table({
        "user_id": [f"u{x}" for x in rng.integers(0, 25, n)],
        "item_id": [f"i{x}" for x in rng.integers(0, 30, n)],
        "timestamp": (rng.integers(0, 50, n) * 3600).tolist(),
        "kind": rng.choice(["play", "browse"], n).tolist(),
        "watch": rng.random(n).tolist(),
    })
    cfg = table_config(path, columns={"action": "kind", "duration": "watch"},
                       clean={"min_events_per_user": 3, "k_core": 2},
                       intents=[{"name": "act", "kind": "categorical", "column": "action"},
                                {"name": "rep", "kind": "repeat"}])
    data = prepare(cfg)
    _check_contract(data)
    stats = describe(cfg)
    json.dumps(stats)  # plain JSON
    assert stats["users"] == data.n_users and stats["interactions"] == int(data.offsets[-1])
    assert stats["split"]["protocol"] == "temporal"
    assert stats["split"]["val_targets"] == len(data.split.val_targets)
    assert set(stats["split"]["excluded"]) == {"no_history", "cold_item"}
    assert stats["time_span"]["days"] > 0
    assert {"min", "median", "mean", "max"} <= set(stats["events_per_user"])
    top = stats["intents"]["act"]["top"]
    assert {t["label"] for t in top} <= {"play", "browse", "other"}
    assert abs(sum(t["share"] for t in top) - 1.0) < 1e-3
    report = stats["report"]
    assert report["events_read"] == n and "duplicates_dropped" in report
    removed = sum(report.get(k, 0) for k in ("duplicates_dropped", "kcore_events_removed",
                                             "events_dropped_min_events", "events_dropped_max_per_user"))
    assert report["events_read"] - removed == stats["interactions"]


def test_progress_goes_to_stderr(
    write_table: WriteTable, table_config: TableConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_table({"user_id": ["a", "a", "a"], "item_id": ["x", "y", "z"], "timestamp": [1, 2, 3]})
    prepare(table_config(path, split={"protocol": "leave-one-out"}), progress=True)
    captured = capsys.readouterr()
    assert "[data" in captured.err and captured.out == ""


def test_movielens_bundled_prepare() -> None:
    cfg = DataConfig(
        source={"adapter": "movielens", "path": None},  # type: ignore[arg-type]
        clean={"min_events_per_user": 5},  # type: ignore[arg-type]
        intents=[  # type: ignore[arg-type]
            {"name": "genre", "kind": "multi_label", "column": "genres"},
            {"name": "recency", "kind": "recency", "column": "release_date", "buckets_days": [365, 1095, 3650]},
        ],
        features={"numeric": ["year"]},  # type: ignore[arg-type]
        split={"protocol": "temporal", "targets": "all"},  # type: ignore[arg-type]
        cache_dir=None,
    )
    data = prepare(cfg)
    _check_contract(data)
    assert data.n_users == 671 and int(data.offsets[-1]) == 100_004
    assert data.spec.timed and data.spec.exclude_seen_default
    assert data.label_vocabs["recency"].labels[2:] == ("<=365d", "365d-1095d", "1095d-3650d", ">3650d")
    assert data.spec.attribute("genre").multi_valued and data.categorical["genre"].shape[1] == 10
    assert data.duration_median == 4.0  # the rating stands in for engagement
    assert len(data.split.val_targets) > 0 and len(data.split.test_targets) > 0


def test_beauty_leave_one_out(shared_data: Path) -> None:
    cfg = DataConfig(
        source={"adapter": "s3rec", "path": str(shared_data / "amazon-yelp-lastfm-s3rec"),  # type: ignore[arg-type]
                "name": "Beauty"},
        intents=[{"name": "category", "kind": "multi_label", "column": "category"}],  # type: ignore[arg-type]
        split={"protocol": "leave-one-out"},  # type: ignore[arg-type]
        cache_dir=None,
    )
    data = prepare(cfg)
    _check_contract(data)
    assert data.n_users == 22_363 and int(data.offsets[-1]) == 198_502
    assert not data.spec.timed and data.spec.exclude_seen_default
    ex = data.split.excluded
    assert len(data.split.val_targets) + len(data.split.test_targets) + ex["cold_item"] == 2 * 22_363
    assert int(data.split.train_len.sum()) == 198_502 - 2 * 22_363


def test_trivago_temporal(shared_data: Path) -> None:
    cfg = DataConfig(
        source={"adapter": "trivago",  # type: ignore[arg-type]
                "path": str(shared_data / "trivago-rsc19-100k" / "trivago_val_100k.parquet.snappy")},
        intents=[{"name": "action", "kind": "categorical", "column": "action"},  # type: ignore[arg-type]
                 {"name": "repeat", "kind": "repeat"}],
        features={"categorical": ["context_action", "device"]},  # type: ignore[arg-type]
        split={"protocol": "temporal", "targets": "all"},  # type: ignore[arg-type]
        cache_dir=None,
    )
    data = prepare(cfg)
    _check_contract(data)
    assert not data.spec.exclude_seen_default
    assert [a.name for a in data.spec.inputs] == ["action", "repeat", "context_action", "device"]
    assert "none" in data.label_vocabs["context_action"].labels


def test_duration_and_numeric_repairs(write_table: WriteTable, table_config: TableConfig) -> None:
    nan = float("nan")
    path = write_table({
        "user_id": ["u"] * 6, "item_id": list("abcdef"), "timestamp": list(range(6)),
        "watch": [2.0, nan, -1.0, 6.0, 4.0, None], "score": [1.0, nan, 3.0, None, 5.0, 2.0],
    })
    cfg = table_config(path, columns={"duration": "watch"}, features={"numeric": ["score"]},
                       split={"protocol": "user", "val_fraction": 0.01, "test_fraction": 0.01})
    report: dict[str, int] = describe(cfg)["report"]
    data = prepare(cfg)
    assert data.duration_median == 4.0  # median of the valid values 2, 6, 4
    assert data.duration.tolist() == [2.0, 4.0, 4.0, 6.0, 4.0, 4.0]
    assert report["duration_invalid_set_null"] == 2 and report["duration_filled_with_median"] == 3
    np.testing.assert_allclose(data.numeric[:, 0], [0.0, 0.0, 0.5, 0.0, 1.0, 0.25])  # missing -> 0


def test_docstring_examples() -> None:
    import doctest

    from intentrec.data import labels

    assert doctest.testmod(labels).failed == 0
