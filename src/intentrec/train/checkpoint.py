"""Checkpoint I/O: safetensors for tensors, JSON for everything else, atomic writes; no Python object serialisation.

Two kinds of files are written here:

* **Model weights** (:func:`save_model_weights` / :func:`load_model_weights`): one ``.safetensors`` file
  written with ``safetensors.torch.save_model``, which stores tied/shared tensors once. Its header metadata holds
  the sha256 of the tensor bytes (``intentrec.data_sha256``), checked on load, so a flipped byte in a weight is
  refused rather than silently served (files without it, from older versions, load unchecked).
* **Training state** (:func:`save_training_state` / :func:`load_training_state`): a directory ::

      <dir>/model.safetensors      model weights (same format as save_model_weights)
      <dir>/optimizer.safetensors  every tensor of the optimizer state ("state/<param_index>/<name>", e.g.
                                   "state/3/exp_avg", "state/3/step"), the RNG states ("rng/torch_cpu",
                                   "rng/cuda/<device>") and tensors found in ``scalars`` ("scalars/<key>")
      <dir>/state.json             scalars, optimizer class and param-group hyperparameters, non-tensor
                                   optimizer state, Python/numpy RNG states (JSON; tensors appear as
                                   {"__tensor__": "<key in optimizer.safetensors>"}, tuples as {"__tuple__": [...]})
      <dir>/manifest.json          sha256 and size of each file above; written LAST

  The directory is written as ``<dir>.tmp-<random>`` and renamed into place (an existing checkpoint is first
  renamed to ``<dir>.trash-<random>`` and deleted afterwards), so ``<dir>`` is always either the complete old
  checkpoint, absent, or the complete new one. Loading verifies the manifest before reading anything. A process
  killed between the two renames leaves no ``<dir>`` but both states beside it: :func:`recover_training_state`
  (called before resuming) puts the newest complete one back and deletes the leftovers of interrupted saves.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, load_model, save, save_model
from torch import nn

from intentrec.errors import CheckpointError
from intentrec.fsutil import fsync_dir

__all__ = [
    "MANIFEST_FILE",
    "MODEL_FILE",
    "OPTIMIZER_FILE",
    "STATE_FILE",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_model_weights",
    "load_training_state",
    "recover_training_state",
    "save_model_weights",
    "save_training_state",
    "sha256_file",
    "swap_directory",
]

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"

_FORMAT = "intentrec-training-state"
_FORMAT_VERSION = 1
_REQUIRED_FILES = (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE)
_DATA_SHA_KEY = "intentrec.data_sha256"
"""safetensors header metadata key holding the sha256 of the file's tensor bytes (everything after the header)."""
_TENSOR_TAG = "__tensor__"
_TUPLE_TAG = "__tuple__"
_HASH_CHUNK = 1 << 20


# ------------------------------------------------------------------------------------------------------
# atomic file writes
# ------------------------------------------------------------------------------------------------------


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _temp_sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{secrets.token_hex(6)}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same directory, fsync, ``os.replace``.

    Readers see either the old file or the complete new one, never a partial write.

    Args:
        path: destination file; its parent directory is created if missing.
        data: the bytes to write.

    Raises:
        OSError: the file cannot be written (the temp file is removed).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(dest, "tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    Args:
        path: destination file.
        text: the text to write.
        encoding: text encoding.

    Raises:
        OSError: the file cannot be written.
    """
    atomic_write_bytes(path, text.encode(encoding))


# ------------------------------------------------------------------------------------------------------
# model weights
# ------------------------------------------------------------------------------------------------------


def _split_safetensors(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """(header JSON, tensor bytes) of a safetensors file's bytes (8-byte little-endian header length first)."""
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _stamp_data_checksum(path: Path) -> None:
    """Rewrite a safetensors file with the sha256 of its tensor bytes in the header metadata (offsets in the
    header are relative to the data, so only the header changes; it is padded with spaces to 8 bytes)."""
    header, data = _split_safetensors(path.read_bytes())
    meta = dict(header.get("__metadata__") or {})
    meta[_DATA_SHA_KEY] = hashlib.sha256(data).hexdigest()
    header["__metadata__"] = meta
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as fh:
        fh.write(len(blob).to_bytes(8, "little"))
        fh.write(blob)
        fh.write(data)


def _foreign_format(src: Path) -> str:
    """A hint when a file is not safetensors but looks like a serialised Python object or a PyTorch zip archive."""
    with open(src, "rb") as fh:
        head = fh.read(4)
    if head[:1] == b"\x80" or head[:2] == b"PK":
        kind = "a serialised Python object" if head[:1] == b"\x80" else "a zip archive (PyTorch's own format)"
        return (f" It looks like {kind}: intentrec never deserialises Python objects from model files (that can run "
                "arbitrary code); export the weights with safetensors instead.")
    return ""


def save_model_weights(
    model: nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Save ``model.state_dict()`` to a safetensors file atomically (tied weights are stored once), with the sha256
    of the tensor bytes in the header metadata (checked by :func:`load_model_weights`).

    Args:
        model: the module to save.
        path: destination ``.safetensors`` file; its parent directory is created if missing.
        metadata: optional string metadata stored in the file header.

    Raises:
        CheckpointError: safetensors refuses the state dict (e.g. overlapping non-identical tensors).
        OSError: the file cannot be written.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(dest, "tmp")
    try:
        try:
            save_model(model, str(tmp), metadata=dict(metadata) if metadata is not None else None)
        except (ValueError, RuntimeError) as err:
            raise CheckpointError(f"cannot save the weights of {type(model).__name__} to {dest}: {err}") from err
        _stamp_data_checksum(tmp)
        _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def load_model_weights(
    model: nn.Module, path: str | os.PathLike[str], strict: bool = True
) -> tuple[list[str], list[str]]:
    """Load weights saved by :func:`save_model_weights` into ``model`` (in place, on the model's device).

    Args:
        model: a module built with the same configuration as the saved one.
        path: the ``.safetensors`` file.
        strict: fail on missing or unexpected keys (shape mismatches always fail).

    Returns:
        ``(missing, unexpected)`` key names (both empty when ``strict``).

    Raises:
        CheckpointError: the file is missing, truncated, not a safetensors file (a serialised Python object or a
            PyTorch zip archive is named as such, and never deserialised), corrupted (its tensor bytes differ from the checksum stored at
            saving), or does not match the model (foreign tensors, missing/unexpected keys, shape mismatch). The
            message names the file and the fix.
    """
    src = Path(path)
    if not src.is_file():
        raise CheckpointError(
            f"model weights file {src} does not exist: check the path (a run or bundle directory holds "
            f"{MODEL_FILE})"
        )
    try:
        with safe_open(str(src), framework="pt") as fh:  # validates the header and the file length
            keys = set(fh.keys())
            metadata = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{src} is not a readable safetensors file ({err}); it is truncated, corrupted or was written by "
            f"another tool: save the weights again or use another checkpoint.{_foreign_format(src)}"
        ) from err
    expected = metadata.get(_DATA_SHA_KEY)
    if expected is not None and hashlib.sha256(_split_safetensors(src.read_bytes())[1]).hexdigest() != expected:
        raise CheckpointError(
            f"{src} is corrupted: its tensor bytes do not match the checksum stored when it was saved (a changed "
            "or damaged file); refusing to load it. Use another checkpoint, or export/train again."
        )
    own = set(model.state_dict())
    if strict and keys and own and not keys & own:
        shown = ", ".join(repr(k) for k in sorted(keys)[:3])
        raise CheckpointError(
            f"the weights in {src} do not fit {type(model).__name__}: none of its {len(keys)} tensors ({shown}, ...) "
            "is a parameter of the model; the file was written for another model or by another tool."
        )
    try:
        missing, unexpected = load_model(model, str(src), strict=strict)
    except (RuntimeError, ValueError, SafetensorError) as err:
        detail = str(err)
        detail = detail if len(detail) <= 1200 else detail[:1200] + " ..."
        raise CheckpointError(
            f"the weights in {src} do not fit {type(model).__name__}: {detail}\n"
            "Build the model with the same configuration (and data sizes) as the run that saved it."
        ) from err
    return sorted(missing), sorted(unexpected)


# ------------------------------------------------------------------------------------------------------
# JSON <-> tensors encoding of nested state
# ------------------------------------------------------------------------------------------------------


def _encode(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-safe form of ``value``; tensors move into ``tensors`` under ``key`` and leave a reference."""
    if isinstance(value, torch.Tensor):
        if key in tensors:
            raise CheckpointError(f"two values map to the same tensor key {key!r}; rename one of them")
        tensors[key] = value.detach().to("cpu").clone().contiguous()
        return {_TENSOR_TAG: key}
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, tuple):
        return {_TUPLE_TAG: [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CheckpointError(f"cannot store key {k!r} under {key!r}: dictionary keys must be strings")
            if k in (_TENSOR_TAG, _TUPLE_TAG):
                raise CheckpointError(f"the key {k!r} under {key!r} is reserved by the checkpoint format")
            out[k] = _encode(v, f"{key}/{k}", tensors)
        return out
    raise CheckpointError(
        f"cannot store a {type(value).__name__} at {key!r}: use JSON values (numbers, strings, lists, dicts), "
        "tuples or torch tensors"
    )


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if set(value) == {_TENSOR_TAG}:
            key = value[_TENSOR_TAG]
            if key not in tensors:
                raise CheckpointError(f"the checkpoint refers to tensor {key!r} missing from {OPTIMIZER_FILE}")
            return tensors[key]
        if set(value) == {_TUPLE_TAG}:
            return tuple(_decode(v, tensors) for v in value[_TUPLE_TAG])
        return {k: _decode(v, tensors) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------------------
# RNG states
# ------------------------------------------------------------------------------------------------------


def _capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=True)
    rng: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (
            str(np_state[0]), [int(x) for x in np_state[1]], int(np_state[2]), int(np_state[3]),
            float(np_state[4]),
        ),
        "torch_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = list(torch.cuda.get_rng_state_all())
    return rng


def _restore_rng(rng: Mapping[str, Any]) -> None:
    if "python" in rng:
        random.setstate(rng["python"])
    if "numpy" in rng:
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "torch_cpu" in rng:
        torch.set_rng_state(rng["torch_cpu"])
    cuda_states = rng.get("cuda")
    if cuda_states:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_states):
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            warnings.warn(
                f"the checkpoint holds RNG states of {len(cuda_states)} CUDA device(s) but "
                f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} are visible: CUDA RNG not restored",
                stacklevel=3,
            )


# ------------------------------------------------------------------------------------------------------
# training state
# ------------------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in chunks)."""
    return _sha256(Path(path))


def swap_directory(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename a fully written directory ``tmp`` to ``target`` (an existing ``target`` is replaced atomically:
    renamed aside first, restored if the rename fails, deleted afterwards)."""
    _swap_into_place(Path(tmp), Path(target))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _is_replaceable(target: Path) -> bool:
    """An existing path may be replaced only when it is an empty directory or an intentrec checkpoint."""
    if not target.is_dir():
        return False
    names = {p.name for p in target.iterdir()}
    return not names or MANIFEST_FILE in names or STATE_FILE in names


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is renamed to a trash name first, then deleted."""
    trash: Path | None = None
    if target.exists():
        trash = target.with_name(f"{target.name}.trash-{secrets.token_hex(6)}")
        os.rename(target, trash)
    try:
        os.rename(tmp, target)
    except BaseException:
        if trash is not None:
            os.rename(trash, target)  # put the old checkpoint back
        raise
    fsync_dir(target.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def save_training_state(
    directory: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scalars: Mapping[str, Any] | None = None,
    *,
    capture_rng: bool = True,
) -> Path:
    """Write a resumable checkpoint directory atomically (layout in the module docstring).

    Args:
        directory: the checkpoint directory. An existing checkpoint (or empty directory) there is replaced;
            any other existing path is refused.
        model: the model being trained.
        optimizer: its optimizer (any ``torch.optim.Optimizer``; state tensors are stored exactly).
        scalars: JSON-like values to restore on resume (epoch, global step, best metric, seeds, ...);
            string keys; values may be numbers, strings, bools, None, lists, tuples, dicts and torch tensors
            (e.g. a ``torch.Generator`` state), which go into the safetensors file.
        capture_rng: also store the global RNG states (Python ``random``, numpy's legacy global generator,
            torch CPU and, when initialised, CUDA) so that :func:`load_training_state` can restore them.

    Returns:
        The checkpoint directory.

    Raises:
        CheckpointError: ``directory`` exists and is not a checkpoint, or a scalar cannot be stored.
        OSError: the files cannot be written (nothing is left behind but the old checkpoint, if any).
    """
    target = Path(directory)
    if target.exists() and not _is_replaceable(target):
        raise CheckpointError(
            f"refusing to replace {target}: it exists and is not an intentrec checkpoint (no {MANIFEST_FILE}); "
            "choose another directory or remove it"
        )
    tensors: dict[str, torch.Tensor] = {}
    opt_state = optimizer.state_dict()
    state_doc = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "scalars": _encode(dict(scalars or {}), "scalars", tensors),
        "optimizer": {
            "class": type(optimizer).__name__,
            "param_groups": _encode(opt_state["param_groups"], "param_groups", tensors),
            "state": {str(i): _encode(s, f"state/{i}", tensors) for i, s in opt_state["state"].items()},
        },
        "rng": _encode(_capture_rng(), "rng", tensors) if capture_rng else None,
    }
    try:
        state_bytes = json.dumps(state_doc, indent=1, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot serialise the training state of {target}: {err}") from err

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{secrets.token_hex(6)}")
    tmp.mkdir()
    try:
        try:
            save_model(model, str(tmp / MODEL_FILE))
        except (ValueError, RuntimeError) as err:
            raise CheckpointError(f"cannot save the weights of {type(model).__name__}: {err}") from err
        _fsync_file(tmp / MODEL_FILE)
        _write_file(tmp / OPTIMIZER_FILE, save(tensors, metadata={"format": _FORMAT}))
        _write_file(tmp / STATE_FILE, state_bytes)
        manifest = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "files": {
                name: {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
                for name in _REQUIRED_FILES
            },
        }
        _write_file(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1).encode("utf-8"))  # LAST
        fsync_dir(tmp)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _verify_manifest(directory: Path) -> None:
    manifest_path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint directory at {directory}: check the path")
    if not manifest_path.is_file():
        raise CheckpointError(
            f"{directory} has no {MANIFEST_FILE}: the checkpoint is incomplete (interrupted write) or not an "
            "intentrec checkpoint; resume from another checkpoint or start the run again"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{manifest_path} is unreadable ({err}); the checkpoint is corrupted") from err
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or not isinstance(
        manifest.get("files"), dict
    ):
        raise CheckpointError(f"{manifest_path} is not an intentrec training-state manifest")
    if int(manifest.get("format_version", 0)) > _FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} was written by a newer intentrec (format {manifest.get('format_version')}, this version "
            f"reads up to {_FORMAT_VERSION}); upgrade intentrec"
        )
    files: dict[str, Any] = manifest["files"]
    for name in _REQUIRED_FILES:
        if name not in files:
            raise CheckpointError(f"{manifest_path} does not list {name}; the checkpoint is incomplete")
    for name, entry in files.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path} is listed in {MANIFEST_FILE} but missing; the checkpoint is damaged")
        if not isinstance(entry, dict) or "sha256" not in entry:
            raise CheckpointError(f"{manifest_path} has no checksum for {name}")
        size = path.stat().st_size
        if "bytes" in entry and size != int(entry["bytes"]):
            raise CheckpointError(
                f"{path} has {size} bytes but the manifest says {entry['bytes']}: the file is truncated or "
                "modified; use another checkpoint"
            )
        if _sha256(path) != entry["sha256"]:
            raise CheckpointError(
                f"checksum mismatch for {path}: the file is corrupted or modified; use another checkpoint"
            )


def recover_training_state(directory: str | os.PathLike[str]) -> str | None:
    """Repair what a save killed half-way leaves beside a training-state directory; call it before resuming.

    :func:`save_training_state` writes ``<dir>.tmp-<random>``, renames an existing ``<dir>`` to
    ``<dir>.trash-<random>``, renames the temporary folder to ``<dir>`` and deletes the trash. A process killed on
    the way leaves, beside ``<dir>``:

    * a partial (or complete but not yet renamed) ``.tmp-*`` and/or a ``.trash-*`` being deleted, with ``<dir>``
      in place: ``<dir>`` is what the last finished save wrote, so it is kept and the leftovers are deleted;
    * no ``<dir>`` at all (killed between the two renames): the newest leftover whose manifest and checksums verify
      (the complete new state, else the previous one) is renamed to ``<dir>``; the other leftovers are deleted.

    An existing ``<dir>`` without a manifest is not a checkpoint written here: nothing is touched then.

    Args:
        directory: the checkpoint directory (e.g. ``RUN/last``).

    Returns:
        A one-line account of the repair, or None when there was nothing to repair.

    Raises:
        OSError: the complete leftover cannot be renamed into place.
    """
    target = Path(directory)
    if not target.parent.is_dir():
        return None
    prefixes = (f"{target.name}.tmp-", f"{target.name}.trash-")
    leftovers = sorted(p for p in target.parent.iterdir() if p.name.startswith(prefixes) and p.is_dir())
    if not leftovers or (target.exists() and not (target / MANIFEST_FILE).is_file()):
        return None
    restored: Path | None = None
    if not target.exists():
        complete = []
        for candidate in leftovers:
            try:
                _verify_manifest(candidate)
            except CheckpointError:
                continue
            complete.append(candidate)
        if complete:  # newest manifest first; on a tie the temporary folder (the newer save) wins
            restored = max(complete, key=lambda p: ((p / MANIFEST_FILE).stat().st_mtime_ns, ".tmp-" in p.name))
            os.rename(restored, target)
            fsync_dir(target.parent)
            leftovers.remove(restored)
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    removed = f"removed {len(leftovers)} leftover folder(s) of interrupted saves"
    if restored is None:
        return f"{target}: {removed}"
    return f"{target} was missing (a save was interrupted): restored it from {restored.name}; {removed}"


def load_training_state(
    directory: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_training_state` into ``model`` and ``optimizer``.

    Every file's checksum is verified and the optimizer layout is checked before the model is touched.
    After loading, continuing training gives bit-identical results to never having stopped (same data
    order, same device and deterministic kernels assumed).

    Args:
        directory: the checkpoint directory.
        model: a model built with the same configuration (weights are overwritten in place).
        optimizer: an optimizer of the same class over the same parameters, built the same way
            (e.g. with :func:`intentrec.train.optim.build_optimizer`).
        restore_rng: also restore the global RNG states saved with the checkpoint.

    Returns:
        The ``scalars`` given to :func:`save_training_state` (tensors restored as CPU tensors, tuples as tuples).

    Raises:
        CheckpointError: the directory or manifest is missing, a checksum does not match, a file is
            unreadable, or the model/optimizer does not match the checkpoint.
    """
    src = Path(directory)
    _verify_manifest(src)
    try:
        doc = json.loads((src / STATE_FILE).read_text(encoding="utf-8"))
        tensors = load((src / OPTIMIZER_FILE).read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError) as err:
        raise CheckpointError(f"cannot read the training state in {src}: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise CheckpointError(f"{src / STATE_FILE} is not an intentrec training state")

    try:
        opt_doc = doc["optimizer"]
        opt_class = str(opt_doc["class"])
        opt_state = {
            "state": {int(i): _decode(s, tensors) for i, s in opt_doc["state"].items()},
            "param_groups": _decode(opt_doc["param_groups"], tensors),
        }
        scalars = _decode(doc.get("scalars") or {}, tensors)
        rng = _decode(doc["rng"], tensors) if doc.get("rng") else None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{src / STATE_FILE} is malformed ({err!r}); use another checkpoint") from err
    if opt_class != type(optimizer).__name__:
        raise CheckpointError(
            f"{src} holds {opt_class} state but the optimizer is {type(optimizer).__name__}; "
            "build the same optimizer as the saved run"
        )
    saved_sizes = [len(g["params"]) for g in opt_state["param_groups"]]
    current_sizes = [len(g["params"]) for g in optimizer.param_groups]
    if saved_sizes != current_sizes:
        raise CheckpointError(
            f"{src} holds optimizer groups of sizes {saved_sizes} but the optimizer has {current_sizes}: "
            "build the model and optimizer with the same configuration as the saved run"
        )

    load_model_weights(model, src / MODEL_FILE, strict=True)
    try:
        optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"the optimizer state in {src} does not fit the optimizer: {err}") from err
    if restore_rng and rng is not None:
        _restore_rng(rng)
    return scalars
