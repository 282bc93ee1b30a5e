"""The on-disk cache: hits, keys, corruption."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from intentrec.config import DataConfig
from intentrec.data import adapters, prepare
from intentrec.data.cache import cache_key
from intentrec.structs import EncodedSequences

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


@pytest.mark.parametrize("victim", ["arrays.npz", "meta.json"])
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
    with np.load(folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["item_idx"] = arrays["item_idx"][:-1]  # truncated
    np.savez(folder / "arrays.npz", allow_pickle=False, **arrays)
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
