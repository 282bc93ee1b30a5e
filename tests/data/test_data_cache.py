"""The on-disk cache: hits, keys, corruption."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from intentrec.config import DataConfig
from intentrec.data import adapters, prepare
from intentrec.data.cache import ARRAY_NAMES, cache_key, load_cached, save_cached
from intentrec.data.pipeline import build
from intentrec.structs import AttributeSpec, DataSpec, EncodedSequences, Split
from intentrec.vocab import ItemVocab, LabelVocab

WriteTable = Callable[..., Path]
TableConfig = Callable[..., DataConfig]


def _log(write_table: WriteTable) -> Path:
    rng = np.random.default_rng(0)
    n = 200
    return write_table({
        "user_id": [f"u{x}" for x in rng.integers(0, 15, n)],
        "item_id": [f"i{x}" for x in rng.integers(0, 20, n)],
        "timestamp": rng.permutation(n) * 60,
        "kind": rng.choice(["play", "browse", "search"], n).tolist(),
        "tags": rng.choice(["a|b", "b", "c|a|b", ""], n).tolist(),
        "price": rng.random(n).tolist(),
        "watch": rng.random(n).tolist(),
    })


def _config(table_config: TableConfig, path: Path, cache: Path, **overrides: object) -> DataConfig:
    data = {
        "columns": {"action": "kind", "duration": "watch"},
        "source": {"multi_valued": ["tags"]},
        "intents": [{"name": "act", "kind": "categorical", "column": "action"},
                    {"name": "tag", "kind": "multi_label", "column": "tags"},
                    {"name": "rep", "kind": "repeat"}],
        "features": {"numeric": ["price"]},
        "cache_dir": str(cache),
        **overrides,
    }
    return table_config(path, **data)


def _assert_same(a: EncodedSequences, b: EncodedSequences) -> None:
    assert a.user_ids == b.user_ids and a.fingerprint == b.fingerprint
    for name in ("offsets", "item_idx", "timestamps", "duration", "session", "numeric"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.categorical.keys() == b.categorical.keys()
    for name in a.categorical:
        assert np.array_equal(a.categorical[name], b.categorical[name]), name
    for name in ("train_len", "val_targets", "test_targets"):
        assert np.array_equal(getattr(a.split, name), getattr(b.split, name)), name
    assert a.split.description == b.split.description and a.split.excluded == b.split.excluded
    assert a.split.cold_targets == b.split.cold_targets
    assert a.spec == b.spec and a.item_vocab == b.item_vocab and a.label_vocabs == b.label_vocabs
    assert a.duration_median == b.duration_median


def _forbid_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the source was read again instead of the cache")

    monkeypatch.setattr(adapters, "load", boom)


def test_second_prepare_hits_the_cache(
    write_table: WriteTable, table_config: TableConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(table_config, _log(write_table), tmp_path / "cache")
    first = prepare(cfg)
    assert len(first.fingerprint) == 64
    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in entries] == [first.fingerprint]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temp leftovers
    _forbid_reading(monkeypatch)
    second = prepare(cfg)
    _assert_same(first, second)


def test_key_changes_with_config_and_file(write_table: WriteTable, table_config: TableConfig, tmp_path: Path) -> None:
    path = _log(write_table)
    cfg = _config(table_config, path, tmp_path / "cache")
    key = cache_key(cfg, [path])
    assert cache_key(cfg, [path]) == key
    other = _config(table_config, path, tmp_path / "cache", split={"protocol": "leave-one-out"})
    assert cache_key(other, [path]) != key
    moved = _config(table_config, path, tmp_path / "elsewhere")
    assert cache_key(moved, [path]) == key  # where the cache lives does not change its content
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert cache_key(cfg, [path]) != key
    assert prepare(other).fingerprint != prepare(cfg).fingerprint


@pytest.mark.parametrize("victim", ["item_idx.npy", "cat_1.npy", "meta.json"])
def test_corrupt_cache_is_rebuilt(
    write_table: WriteTable, table_config: TableConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    cfg = _config(table_config, _log(write_table), tmp_path / "cache")
    first = prepare(cfg)
    target = tmp_path / "cache" / first.fingerprint / victim
    target.write_bytes(b"\x00garbage" * 10)
    calls = []
    original = adapters.load

    def counting(*args: object, **kwargs: object) -> adapters.RawData:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(adapters, "load", counting)
    rebuilt = prepare(cfg)
    again = prepare(cfg)
    assert calls == [1]  # rebuilt once, then the repaired entry is used
    _assert_same(first, rebuilt)
    _assert_same(first, again)


def test_inconsistent_cache_is_not_trusted(
    write_table: WriteTable, table_config: TableConfig, tmp_path: Path
) -> None:
    cfg = _config(table_config, _log(write_table), tmp_path / "cache")
    first = prepare(cfg)
    folder = tmp_path / "cache" / first.fingerprint
    item_idx = np.load(folder / "item_idx.npy")
    np.save(folder / "item_idx.npy", item_idx[:-1])  # truncated
    rebuilt = prepare(cfg)
    _assert_same(first, rebuilt)


def test_no_cache_dir_writes_nothing(
    write_table: WriteTable, table_config: TableConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _log(write_table)
    data = prepare(_config(table_config, path, tmp_path, cache_dir=None))
    assert data.fingerprint and not (tmp_path / ".cache").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def _memory_arrays(data: EncodedSequences) -> list[np.ndarray]:
    arrays = [data.offsets, data.item_idx, data.timestamps, data.duration, data.session, data.numeric]
    arrays += [data.split.train_len, data.split.val_targets, data.split.test_targets, *data.categorical.values()]
    return [a for a in arrays if a.size]


def test_round_trip_gives_read_only_memory_maps(
    write_table: WriteTable, table_config: TableConfig, tmp_path: Path
) -> None:
    cfg = _config(table_config, _log(write_table), tmp_path / "cache")
    key = cache_key(cfg, adapters.source_files(cfg.source))
    built = build(cfg, fingerprint=key)
    root = tmp_path / "cache"
    assert save_cached(root, key, built.data, {"report": built.report}) == root / key
    assert sorted(p.name for p in (root / key).iterdir()) == sorted(
        [*(f"{n}.npy" for n in ARRAY_NAMES), *(f"cat_{j}.npy" for j in range(3)), "meta.json"])
    hit = load_cached(root, key)
    assert hit is not None
    data, extra = hit
    _assert_same(built.data, data)
    assert extra == {"report": built.report}
    for arr in _memory_arrays(data):
        assert isinstance(arr, np.memmap) and not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        data.item_idx[0] = 0
    for path in (root / key).glob("*.npy"):  # plain .npy files, no pickled objects
        assert np.load(path, allow_pickle=False).dtype != object


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmRSS from /proc")
def test_loading_a_large_cache_maps_instead_of_reading(tmp_path: Path) -> None:
    n, n_users = 4_000_000, 2_000
    rng = np.random.default_rng(0)
    offsets = np.linspace(0, n, n_users + 1).astype(np.int64)  # (U + 1,)
    data = EncodedSequences(
        user_ids=tuple(f"u{u}" for u in range(n_users)), offsets=offsets,
        item_idx=rng.integers(2, 12, n), timestamps=np.arange(n, dtype=np.float64),
        duration=np.ones(n, dtype=np.float32), session=np.zeros(n, dtype=np.int64),
        categorical={"a": rng.integers(0, 5, n)}, numeric=np.zeros((n, 0), dtype=np.float32),
        split=Split(train_len=np.diff(offsets), val_targets=np.zeros((0, 2), np.int64),
                    test_targets=np.zeros((0, 2), np.int64), protocol="leave-one-out"),
        spec=DataSpec(n_items=12, attributes=(AttributeSpec("a", 5, False, True, True),), numeric=(), timed=True),
        item_vocab=ItemVocab.fit({f"i{j}": 1 for j in range(10)}),
        label_vocabs={"a": LabelVocab.from_labels("a", ["x", "y", "z"])}, fingerprint="k",
    )
    n_bytes = sum(a.nbytes for a in _memory_arrays(data))  # ~150 MB
    assert save_cached(tmp_path, "k", data, {}) is not None
    del data
    gc.collect()
    before = _rss_kib()
    hit = load_cached(tmp_path, "k")
    assert hit is not None
    loaded = hit[0]
    window = loaded.user_slice(n_users // 2)
    assert int(loaded.item_idx[window].sum()) > 0 and loaded.timestamps[window][0] == window.start
    grown = (_rss_kib() - before) * 1024
    assert grown < 0.1 * n_bytes, f"loading grew RSS by {grown / 2**20:.0f} MB of {n_bytes / 2**20:.0f} MB"
