"""On-disk cache of prepared data: ``<cache_dir>/<key>/`` with one ``.npy`` file per array + ``meta.json``. No pickle.

The key is a sha256 over the data config (``cache_dir`` itself left out: it does not change the result), the
input files' (path, size, mtime_ns) and the cache format version. Entries are written to a temporary folder and
renamed into place, so a reader never sees half an entry; an entry that fails to load or to pass its consistency
checks is ignored (and rebuilt by the caller), never trusted.

Crash safety: ``meta.json`` is written last and lists every array file with its size and sha256 (the manifest);
the files and folder are fsynced before the rename. Loading checks every size and checksum before mapping anything
(about 0.7 s per GB of arrays in the page cache), so a truncated, zero-filled or modified entry is rebuilt, not
used. A process killed while building leaves only its temporary folder (``.<key[:12]>-<pid>@<host>-<random>``,
hidden, never read); the next build in the same cache folder deletes the temporary folders whose process is gone
(same host only).

Arrays are loaded as read-only memory maps (``np.load(mmap_mode="r")``): a training process maps the prepared
sequences instead of reading them, so its memory holds only the pages it touches. Writing into them raises
(``ValueError: assignment destination is read-only``); copy a slice before changing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from intentrec.config import DataConfig
from intentrec.errors import IntentRecError
from intentrec.fsutil import fsync_dir
from intentrec.structs import DataSpec, EncodedSequences, Split
from intentrec.vocab import vocabs_from_json, vocabs_to_json

__all__ = [
    "ARRAY_NAMES",
    "CACHE_FORMAT",
    "array_path",
    "begin_entry",
    "cache_key",
    "commit_entry",
    "load_array",
    "load_cached",
    "load_entry",
    "save_cached",
    "write_meta",
]

CACHE_FORMAT = 5
"""Bump when the prepared layout or its semantics change (invalidates old entries). 3: one ``.npy`` per array;
4: ``meta.json`` lists each array file's size and sha256."""
_META = "meta.json"
_FILES = "files"
"""The manifest in ``meta.json``: ``{file name: {"bytes": size, "sha256": hex digest}}`` of every array file."""
_HASH_CHUNK = 1 << 20
_TEMP_OWNER = re.compile(r"^\.[0-9a-f]{12}-(\d+)@([0-9a-f]{8})-")
ARRAY_NAMES = (
    "offsets", "item_idx", "timestamps", "duration", "session", "numeric", "train_len", "val_targets", "test_targets",
)
"""The fixed arrays of an entry (``<name>.npy``); categorical attribute ``j`` is ``cat_<j>.npy``."""


def array_path(folder: Path, name: str) -> Path:
    """The ``.npy`` file of array ``name`` (one of :data:`ARRAY_NAMES`, or ``cat_<j>``) in an entry folder."""
    return folder / f"{name}.npy"


def _arrays(data: EncodedSequences) -> dict[str, np.ndarray]:
    arrays = {
        "offsets": data.offsets, "item_idx": data.item_idx, "timestamps": data.timestamps,
        "duration": data.duration, "session": data.session, "numeric": data.numeric,
        "train_len": data.split.train_len, "val_targets": data.split.val_targets,
        "test_targets": data.split.test_targets,
    }
    for j, values in enumerate(data.categorical.values()):
        arrays[f"cat_{j}"] = values
    return arrays


def cache_key(cfg: DataConfig, files: Sequence[Path]) -> str:
    """sha256 hex digest over the data config and the input files' (path, size, mtime_ns).

    Args:
        cfg: the data section.
        files: the input files the adapter reads.

    Returns:
        A 64-character hex key (also the ``fingerprint`` of the prepared data).
    """
    config = cfg.model_dump(mode="json")
    config.pop("cache_dir", None)
    stamps = []
    for path in files:
        st = path.stat()
        stamps.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    payload = {"format": CACHE_FORMAT, "config": config, "files": stamps}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode("utf-8")).hexdigest()


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def _process_gone(pid: int) -> bool:
    """True only when no process ``pid`` exists on this machine (POSIX; elsewhere never)."""
    if os.name != "posix" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: existence check, nothing is sent
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: it exists under another user
        return False
    return False


def _remove_dead_temporaries(root: Path) -> list[Path]:
    """Delete the temporary entry folders in ``root`` whose writer process, on this host, no longer exists."""
    host, removed = _host_tag(), []
    for child in root.iterdir():
        match = _TEMP_OWNER.match(child.name)
        if match is None or match.group(2) != host or int(match.group(1)) == os.getpid():
            continue
        if child.is_dir() and _process_gone(int(match.group(1))):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def begin_entry(root: Path, key: str) -> Path:
    """Create the temporary folder of a new entry (renamed into place by :func:`commit_entry`).

    The folder's name carries this process's id and a hash of the host name; temporary folders of processes that
    no longer exist on this host (killed while building) are deleted first.

    Raises:
        OSError: the cache folder cannot be created.
    """
    root.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(root)
    return Path(tempfile.mkdtemp(prefix=f".{key[:12]}-{os.getpid()}@{_host_tag()}-", dir=root))


def _sha256_synced(path: Path) -> str:
    """sha256 of a file's bytes, after flushing it to disk."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file_names(n_categorical: int) -> list[str]:
    return [array_path(Path(), name).name for name in (*ARRAY_NAMES, *(f"cat_{j}" for j in range(n_categorical)))]


def _verified(folder: Path, meta: dict[str, Any]) -> bool:
    """Whether the manifest lists exactly the entry's array files and each has its recorded size and sha256."""
    files = meta.get(_FILES)
    if not isinstance(files, dict) or sorted(files) != sorted(_file_names(len(meta["categorical"]))):
        return False
    for name, entry in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != int(entry["bytes"]):
            return False
    for name, entry in files.items():
        digest = hashlib.sha256()
        with open(folder / name, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != entry["sha256"]:
            return False
    return True


def write_meta(folder: Path, key: str, data: EncodedSequences, extra: dict[str, Any]) -> None:
    """Write ``meta.json`` (ids, vocabularies, spec, split facts, ``extra`` and the manifest of the array files,
    which must all be written already) for ``data`` into an entry folder, last; flushes everything to disk."""
    files = {
        name: {"bytes": (folder / name).stat().st_size, "sha256": _sha256_synced(folder / name)}
        for name in _file_names(len(data.categorical))
    }
    meta = {
        "format": CACHE_FORMAT,
        "fingerprint": key,
        "user_ids": list(data.user_ids),
        "vocabs": vocabs_to_json(data.item_vocab, data.label_vocabs),
        "spec": data.spec.to_json(),
        "split": {"protocol": data.split.protocol, "description": data.split.description,
                  "excluded": dict(data.split.excluded), "cold_targets": dict(data.split.cold_targets)},
        "categorical": list(data.categorical),
        "duration_median": data.duration_median,
        "item_names": list(data.item_names),
        "extra": extra,
        _FILES: files,
    }
    with open(folder / _META, "x", encoding="utf-8") as fh:
        fh.write(json.dumps(meta, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(folder)


def commit_entry(root: Path, key: str, tmp: Path) -> Path:
    """Rename a complete temporary entry folder to ``<root>/<key>`` (atomic).

    When another writer got there first with a valid entry, theirs is kept (and ``tmp`` removed); a corrupt entry
    in the way is replaced.

    Raises:
        OSError: the rename failed.
    """
    final = root / key
    try:
        os.replace(tmp, final)  # atomic; fails when ``final`` exists and is not empty
    except OSError:
        if load_cached(root, key) is not None:  # a concurrent writer got there first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        shutil.rmtree(final, ignore_errors=True)  # a corrupt entry: replace it with the one just built
        os.replace(tmp, final)
    fsync_dir(root)
    return final


def save_cached(root: Path, key: str, data: EncodedSequences, extra: dict[str, Any]) -> Path | None:
    """Write one cache entry atomically (temporary folder, then rename).

    Args:
        root: the cache folder (created when missing).
        key: from :func:`cache_key`.
        data: the prepared sequences.
        extra: JSON-serialisable side information (the cleaning report, statistics).

    Returns:
        The entry's folder, or None when it could not be written (a warning says why; preparing still succeeds).
    """
    final = root / key
    tmp: Path | None = None
    try:
        tmp = begin_entry(root, key)
        for name, values in _arrays(data).items():
            np.save(array_path(tmp, name), np.ascontiguousarray(values), allow_pickle=False)
        write_meta(tmp, key, data, extra)
        commit_entry(root, key, tmp)
        tmp = None
        return final
    except OSError as err:
        warnings.warn(f"could not write the data cache at {final}: {err}; continuing without it", stacklevel=3)
        return None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def load_array(path: Path, mmap: bool = True) -> np.ndarray:
    """Load one ``.npy`` file without pickle: a read-only memory map (``mmap``), or read into memory.

    Raises:
        OSError, ValueError: the file is missing or not a plain ``.npy`` array.
    """
    if not mmap:
        return np.load(path, allow_pickle=False)
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return arr if arr.size else np.array(arr)  # nothing to map


def load_entry(folder: Path, key: str, *, mmap: bool = True) -> tuple[EncodedSequences, dict[str, Any]] | None:
    """Load the entry in ``folder`` (a committed entry or a complete temporary one), or None when unusable: no
    ``meta.json``, another format or key, an array file missing or differing from the manifest's size or sha256, or
    arrays inconsistent with the metadata.

    Args:
        folder: the entry folder.
        key: the expected fingerprint.
        mmap: map the arrays read-only (default) instead of reading them into memory.

    Returns:
        ``(data, extra)`` or None.
    """
    if not (folder / _META).is_file():
        return None
    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or meta.get("fingerprint") != key or not _verified(folder, meta):
            return None
        names = [*ARRAY_NAMES, *(f"cat_{j}" for j in range(len(meta["categorical"])))]
        arrays = {name: load_array(array_path(folder, name), mmap) for name in names}
        return _rebuild(meta, arrays, key)
    except (OSError, ValueError, KeyError, TypeError, EOFError, IntentRecError):
        return None


def load_cached(root: Path, key: str) -> tuple[EncodedSequences, dict[str, Any]] | None:
    """Load one cache entry (arrays memory-mapped read-only), or None when it is absent, unreadable or inconsistent.

    Returns:
        ``(data, extra)`` or None.
    """
    return load_entry(root / key, key)


def _rebuild(meta: dict[str, Any], arrays: dict[str, np.ndarray], key: str) -> tuple[EncodedSequences, dict[str, Any]] | None:
    item_vocab, label_vocabs = vocabs_from_json(meta["vocabs"])
    spec = DataSpec.from_json(meta["spec"])
    user_ids = tuple(str(u) for u in meta["user_ids"])
    offsets = arrays["offsets"]
    n_users = len(user_ids)
    if offsets.shape != (n_users + 1,) or offsets.dtype != np.int64:
        return None
    n = int(offsets[-1])
    per_event = {"item_idx": np.int64, "timestamps": np.float64, "duration": np.float32, "session": np.int64}
    for name, dtype in per_event.items():
        if arrays[name].shape != (n,) or arrays[name].dtype != dtype:
            return None
    if arrays["numeric"].shape != (n, len(spec.numeric)) or arrays["numeric"].dtype != np.float32:
        return None
    if arrays["train_len"].shape != (n_users,) or arrays["train_len"].dtype != np.int64:
        return None
    names = list(meta["categorical"])
    if names != [a.name for a in spec.attributes] or spec.n_items != len(item_vocab):
        return None
    categorical = {}
    for j, attr in enumerate(spec.attributes):
        values = arrays[f"cat_{j}"]
        if values.shape[0] != n or values.ndim != (2 if attr.multi_valued else 1) or values.dtype != np.int64:
            return None
        if len(label_vocabs[attr.name]) != attr.n_classes:
            return None
        categorical[attr.name] = values
    for name in ("val_targets", "test_targets"):
        if arrays[name].ndim != 2 or arrays[name].shape[1] != 2 or arrays[name].dtype != np.int64:
            return None
    split_meta = meta["split"]
    split = Split(
        train_len=arrays["train_len"], val_targets=arrays["val_targets"], test_targets=arrays["test_targets"],
        protocol=split_meta["protocol"], description=str(split_meta["description"]),
        excluded={str(k): int(v) for k, v in split_meta["excluded"].items()},
        cold_targets={str(k): int(v) for k, v in split_meta.get("cold_targets", {}).items()},
    )
    data = EncodedSequences(
        user_ids=user_ids, offsets=offsets, item_idx=arrays["item_idx"], timestamps=arrays["timestamps"],
        duration=arrays["duration"], session=arrays["session"], categorical=categorical,
        numeric=arrays["numeric"], split=split, spec=spec, item_vocab=item_vocab, label_vocabs=label_vocabs,
        duration_median=float(meta["duration_median"]), fingerprint=key,
        item_names=tuple(str(x) for x in meta.get("item_names", [])),
    )
    return data, dict(meta.get("extra", {}))
