"""Out-of-core preparation (``build_chunked``) equals the in-memory ``build``; exact streamed quantiles."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from intentrec.config import DataConfig, load_config
from intentrec.data import adapters, pipeline
from intentrec.data.cache import cache_key
from intentrec.data.chunked import NpyWriter, build_chunked
from intentrec.data.orderstats import median, order_statistics, quantile, quantiles
from intentrec.data.pipeline import Prepared, build, prepare_with_report
from intentrec.datasets.streaming_sim import (
    SimConfig,
    simulate,
    simulate_shard,
    write_sharded_simulation,
    write_simulation,
)
from intentrec.errors import ConfigError, DataError

WriteTable = Callable[..., Path]
TableConfig = Callable[..., DataConfig]
SIM_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "streaming_sim.yaml"


def assert_same(a: Prepared, b: Prepared) -> None:
    """Bit-identical arrays (values, dtypes, shapes), vocabularies, split, report and statistics."""
    x, y = a.data, b.data
    assert x.user_ids == y.user_ids and x.fingerprint == y.fingerprint
    for name in ("offsets", "item_idx", "timestamps", "duration", "session", "numeric"):
        u, v = np.asarray(getattr(x, name)), np.asarray(getattr(y, name))
        assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), name
    assert list(x.categorical) == list(y.categorical)
    for name in x.categorical:
        u, v = np.asarray(x.categorical[name]), np.asarray(y.categorical[name])
        assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), name
    for name in ("train_len", "val_targets", "test_targets"):
        u, v = np.asarray(getattr(x.split, name)), np.asarray(getattr(y.split, name))
        assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), name
    assert x.split.protocol == y.split.protocol and x.split.description == y.split.description
    assert x.split.excluded == y.split.excluded
    assert x.split.cold_targets == y.split.cold_targets
    assert x.spec == y.spec and x.item_vocab == y.item_vocab and x.label_vocabs == y.label_vocabs
    assert x.duration_median == y.duration_median and x.item_names == y.item_names
    assert a.report == b.report
    assert a.stats == b.stats


def _both(cfg: DataConfig, tmp_path: Path, chunk_events: int) -> tuple[Prepared, Prepared]:
    folder = tmp_path / f"entry-{chunk_events}"
    folder.mkdir()
    chunked = build_chunked(cfg, folder, fingerprint="k", chunk_events=chunk_events)
    assert not (folder / "work").exists()  # scratch files removed
    return build(cfg, fingerprint="k"), chunked


# ----------------------------------------------------------------------------------------------------------
# equality with the in-memory build
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny simulated log written as 3 Parquet shards (read lazily by the streaming_sim adapter)."""
    return write_sharded_simulation(SimConfig.preset("tiny"), tmp_path_factory.mktemp("sim") / "log", 3)


@pytest.mark.parametrize("chunk_events", [1, 700, 10**9])
def test_simulated_shards_equal_in_memory(sim_folder: Path, tmp_path: Path, chunk_events: int) -> None:
    cfg = load_config(SIM_CONFIG, [f"data.source.path={sim_folder}", "data.cache_dir=null"]).data
    assert adapters.scan(cfg.source) is not None  # the lazy Parquet scan, not the in-memory reader
    memory, chunked = _both(cfg, tmp_path, chunk_events)
    assert_same(memory, chunked)
    assert isinstance(chunked.data.item_idx, np.memmap)
    assert len(memory.data.user_ids) == 50 and memory.data.item_idx.shape[0] > 1000


@pytest.mark.parametrize(
    "split",
    [{"protocol": "leave-one-out"}, {"protocol": "user", "targets": "all"}, {"protocol": "temporal", "targets": "next"}],
)
def test_simulated_protocols_equal_in_memory(sim_folder: Path, tmp_path: Path, split: dict[str, str]) -> None:
    overrides = [f"data.source.path={sim_folder}", "data.cache_dir=null", "data.clean.max_events_per_user=40"]
    overrides += [f"data.split.{k}={v}" for k, v in split.items()]
    cfg = load_config(SIM_CONFIG, overrides).data
    assert_same(*_both(cfg, tmp_path, 500))


def _table_log(write_table: WriteTable, name: str = "log.csv", n: int = 600, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    watch = rng.random(n)
    watch[rng.random(n) < 0.1] = -1.0  # invalid: filled with the training median
    return write_table({
        "user_id": [f"u{x}" for x in rng.integers(0, 40, n)],
        "item_id": [f"i{x}" for x in rng.integers(0, 35, n)],
        "timestamp": (rng.integers(0, 200, n) * 60).tolist(),  # ties and exact duplicates happen
        "kind": rng.choice(["play", "browse", "search"], n).tolist(),
        "tags": rng.choice(["a|b", "b", "c|a|b", "", "d|e|f|a", "z"], n).tolist(),
        "price": np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 10).tolist(),
        "watch": watch.tolist(),
    }, name)


_TABLE = {
    "columns": {"action": "kind", "duration": "watch"},
    "source": {"multi_valued": ["tags"]},
    "intents": [{"name": "act", "kind": "categorical", "column": "action"},
                {"name": "tag", "kind": "multi_label", "column": "tags", "max_labels": 3},
                {"name": "rep", "kind": "repeat"}],
    "features": {"numeric": ["price"]},
}


@pytest.mark.parametrize(
    ("clean", "split"),
    [
        ({"min_events_per_user": 2}, {"protocol": "temporal", "targets": "all"}),
        ({"k_core": 3, "max_events_per_user": 12}, {"protocol": "temporal", "targets": "next"}),
        ({"k_core": 2, "dedupe": False, "min_events_per_user": 4}, {"protocol": "leave-one-out"}),
        ({"min_events_per_user": 3}, {"protocol": "user", "targets": "all"}),
        ({}, {"protocol": "user", "targets": "last"}),
    ],
)
def test_table_log_equals_in_memory(
    write_table: WriteTable, table_config: TableConfig, tmp_path: Path, clean: dict[str, Any], split: dict[str, Any]
) -> None:
    cfg = table_config(_table_log(write_table), clean=clean, split=split, **_TABLE)
    for chunk_events in (1, 97):
        assert_same(*_both(cfg, tmp_path, chunk_events))


def test_untimed_table_equals_in_memory(write_table: WriteTable, table_config: TableConfig, tmp_path: Path) -> None:
    path = _table_log(write_table, "log.parquet")
    cfg = table_config(path, columns={"timestamp": None, "action": "kind"}, split={"protocol": "leave-one-out"},
                       intents=[{"name": "rep", "kind": "repeat"}, {"name": "act", "kind": "categorical",
                                                                     "column": "action"}])
    memory, chunked = _both(cfg, tmp_path, 50)
    assert not memory.data.spec.timed
    assert_same(memory, chunked)


def test_bundled_movielens_equals_in_memory(tmp_path: Path) -> None:
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml", ["data.cache_dir=null"]).data
    assert_same(*_both(cfg, tmp_path, 20_000))


def test_errors_match_in_memory(write_table: WriteTable, table_config: TableConfig, tmp_path: Path) -> None:
    path = _table_log(write_table)
    cases: list[tuple[DataConfig, type[Exception]]] = [
        (table_config(path, clean={"min_events_per_user": 10_000}), DataError),
        (table_config(path, intents=[{"name": "x", "kind": "categorical", "column": "nope"}]), ConfigError),
        (table_config(path, columns={"timestamp": None}, split={"protocol": "temporal"}), ConfigError),
    ]
    for cfg, kind in cases:
        with pytest.raises(kind) as memory:
            build(cfg)
        folder = tmp_path / "entry"
        folder.mkdir(exist_ok=True)
        with pytest.raises(kind) as chunked:
            build_chunked(cfg, folder, chunk_events=30)
        assert str(chunked.value) == str(memory.value)


# ----------------------------------------------------------------------------------------------------------
# prepare(): the streamed path through the cache
# ----------------------------------------------------------------------------------------------------------


def test_prepare_streams_into_the_cache_when_large(
    sim_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(SIM_CONFIG, [f"data.source.path={sim_folder}", f"data.cache_dir={tmp_path / 'c'}"]).data
    reference = build(cfg, fingerprint=cache_key(cfg, adapters.source_files(cfg.source)))
    monkeypatch.setattr(pipeline, "STREAM_MIN_BYTES", 0)
    calls: list[int] = []
    original = pipeline.build_chunked

    def counting(*args: Any, **kwargs: Any) -> Prepared:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "build_chunked", counting)
    first = prepare_with_report(cfg)
    second = prepare_with_report(cfg)
    assert calls == [1] and not first.cached and second.cached
    assert_same(reference, first)
    assert first.data.fingerprint == second.data.fingerprint and len(first.data.fingerprint) == 64
    assert isinstance(first.data.item_idx, np.memmap) and isinstance(second.data.item_idx, np.memmap)
    entries = [p.name for p in (tmp_path / "c").iterdir()]
    assert entries == [first.data.fingerprint]  # committed, no temporary folder left
    assert second.report == first.report and second.stats == first.stats


def test_sharded_simulation_reads_like_one_file(tmp_path: Path) -> None:
    cfg = SimConfig.preset("tiny")
    sharded = write_sharded_simulation(cfg, tmp_path / "sharded", 2)
    assert sorted(p.name for p in (sharded / "events").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    source = load_config(SIM_CONFIG, [f"data.source.path={sharded}"]).data.source
    files = adapters.source_files(source)
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet", "items.parquet", "config.json"]
    raw = adapters.load(source)
    assert raw.interactions["user_id"].n_unique() == 50
    assert raw.interactions["user_id"].is_sorted()  # users numbered across the shards
    with pytest.raises(ConfigError, match="shard"):
        simulate_shard(cfg, 2, 2)
    one = write_simulation(simulate(cfg), tmp_path / "one")  # one shard of 1 is simulate()
    single = write_sharded_simulation(cfg, tmp_path / "single", 1)
    assert adapters.load(source.model_copy(update={"path": str(single)})).interactions.equals(
        adapters.load(source.model_copy(update={"path": str(one)})).interactions)


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 5, 1 << 21])
def test_streamed_quantiles_are_numpys(limit: int) -> None:
    rng = np.random.default_rng(0)
    arrays = [
        rng.normal(size=1001) * 1e3,
        1.7e9 + rng.integers(0, 30_000_000, 2000).astype(np.float64),
        rng.integers(0, 4, 500).astype(np.float64),
        np.concatenate([-rng.exponential(size=300), rng.exponential(size=301), [0.0, 0.0]]),
        np.array([3.5]),
    ]
    for x in arrays:
        parts = np.array_split(x, 4)

        def chunks(parts: list[np.ndarray] = parts) -> Iterator[np.ndarray]:
            return iter(parts)

        for q in (0.0, 0.1, 0.5, 0.8, 1.0 - 0.1 - 0.1, 0.9, 1.0):
            assert quantile(chunks, q, len(x), limit=limit) == np.quantile(x, q)
        assert quantiles(chunks, [0.8, 0.9], len(x), limit=limit) == [np.quantile(x, 0.8), np.quantile(x, 0.9)]
        assert median(chunks, len(x), limit=limit) == np.median(x)
        order = np.sort(x)
        assert order_statistics(chunks, [0, len(x) - 1], len(x), limit=limit) == [order[0], order[-1]]
    with pytest.raises(ValueError, match="out of range"):
        order_statistics(lambda: iter([np.ones(3)]), [3], 3)


def test_npy_writer_appends_chunks(tmp_path: Path) -> None:
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    with NpyWriter(tmp_path / "a.npy", np.float32, (6, 2)) as writer:
        writer.write(values[:4])
        writer.write(values[4:])
    back = np.load(tmp_path / "a.npy", allow_pickle=False)
    assert back.dtype == np.float32 and np.array_equal(back, values)
    with pytest.raises(DataError, match="2 of 3 rows"), NpyWriter(tmp_path / "b.npy", np.int64, (3,)) as short:
        short.write(np.arange(2))


def test_null_keys_in_shards_are_dropped_and_counted(sim_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sim"
    shutil.copytree(sim_folder, folder)
    part = folder / "events" / "part-00001.parquet"
    events = pl.read_parquet(part)
    n = events.height
    events = events.with_columns(
        pl.when(pl.int_range(n) % 50 == 0).then(None).otherwise(pl.col("user_id")).alias("user_id"),
        pl.when(pl.int_range(n) % 70 == 1).then(None).otherwise(pl.col("item_id")).alias("item_id"),
        pl.when(pl.int_range(n) % 90 == 2).then(None).otherwise(pl.col("timestamp")).alias("timestamp"),
    )
    events.write_parquet(part)
    cfg = load_config(SIM_CONFIG, [f"data.source.path={folder}", "data.cache_dir=null"]).data
    memory, chunked = _both(cfg, tmp_path, 400)
    assert {k: v for k, v in memory.report.items() if k.startswith("rows_missing")} == {
        "rows_missing_user_id": len(range(0, n, 50)), "rows_missing_item_id": len(range(1, n, 70)),
        "rows_missing_timestamp": len(range(2, n, 90)),
    }
    assert_same(memory, chunked)


def _messy_table(write_table: WriteTable, name: str) -> Path:
    frame = pl.DataFrame({
        "uid": ["a", "a", "b", "b", "b", "c", "c", None, "a", "b"],
        "iid": ["1", "2", "1", "3", "2", "2", "1", "4", None, "3"],
        "ts": ["1", "5", "2", "9", "4", "3", "1", "7", "8", None],
        "released": ["2020-01-02", "bad", "2019-05-01", None, "2018-01-01", "x", "2020-01-02", None, None, None],
        "watch": ["1.5", "-2", "nan", "3", "oops", "1", "2", "1", "1", "1"],
        "_row": list(range(10, 20)),
        "tags": ["p|q", "q", "", "p", "r|p", "q", "p", "q", "q", "p"],
    })
    if name.endswith(".json"):  # a JSON array of objects (the fixture writes CSV text for other suffixes)
        path = write_table(frame, "unused.csv").with_name(name)
        frame.write_json(path)
        return path
    return write_table(frame, name)


@pytest.mark.parametrize("name", ["log.csv", "log.parquet", "log.jsonl", "log.tsv", "log.json"])
def test_table_scan_equals_table_read(write_table: WriteTable, table_config: TableConfig, tmp_path: Path,
                                      name: str) -> None:
    path = _messy_table(write_table, name)
    cfg = table_config(
        path, columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts", "duration": "watch"},
        source={"multi_valued": ["tags"], "date_columns": ["released"]},
        intents=[{"name": "tag", "kind": "multi_label", "column": "tags"}], features={"numeric": ["released"]},
        split={"protocol": "leave-one-out"},
    )
    scanned = adapters.scan(cfg.source)
    assert (scanned is None) == (name == "log.json")  # a JSON array is read whole
    memory, chunked = _both(cfg, tmp_path, 3)
    assert memory.report["rows_missing_user_id"] == 1 and memory.report["dates_unparsable_released"] == 2
    assert memory.report["duration_invalid_set_null"] == 3
    assert_same(memory, chunked)


@pytest.mark.parametrize(
    ("columns", "source", "change"),
    [
        ({"timestamp": "ts"}, {}, {"ts": ["1", "2", "x3", "4"]}),
        ({"timestamp": "ts", "timestamp_unit": "datetime"}, {}, {"ts": ["2020-01-01", "nope", "2020-01-03", "2"]}),
        ({"timestamp": "ts", "timestamp_unit": "datetime"}, {}, {"ts": [1, 2, 3, 4]}),
        ({"timestamp": "ts"}, {"date_columns": ["d"]}, {"d": ["x", "y", None, "z"]}),
        ({"timestamp": "ts"}, {"date_columns": ["nope"]}, {}),
        ({"timestamp": "ts"}, {"multi_valued": ["nope"]}, {}),
        ({"timestamp": "missing"}, {}, {}),
    ],
)
def test_table_scan_errors_equal_table_read(
    write_table: WriteTable, table_config: TableConfig, tmp_path: Path, columns: dict[str, Any],
    source: dict[str, Any], change: dict[str, list[Any]],
) -> None:
    table = {"user_id": ["a", "a", "b", "b"], "item_id": ["1", "2", "1", "2"], "ts": ["1", "2", "3", "4"],
             "d": ["2020-01-01", None, "2020-01-02", "2020-01-03"], **change}
    cfg = table_config(write_table(table), columns=columns, source=source)
    with pytest.raises((DataError, ConfigError)) as memory:
        adapters.load(cfg.source)
    folder = tmp_path / "entry"
    folder.mkdir()
    with pytest.raises(type(memory.value)) as chunked:
        build_chunked(cfg, folder)
    assert str(chunked.value) == str(memory.value)


def test_table_scan_of_an_empty_file_fails_like_reading(write_table: WriteTable, table_config: TableConfig,
                                                        tmp_path: Path) -> None:
    empty = pl.DataFrame({"user_id": [], "item_id": [], "timestamp": []}, schema={
        "user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64})
    cfg = table_config(write_table(empty, "empty.parquet"))
    with pytest.raises(DataError, match="no data rows") as memory:
        adapters.load(cfg.source)
    with pytest.raises(DataError) as scanned:
        adapters.scan(cfg.source)
    assert str(scanned.value) == str(memory.value)
