"""The model bundle: the single contract between training and serving.

A bundle is a directory ::

    <bundle>/bundle.json        format + version, model version, data fingerprint, the experiment config, the data
                                spec (with label widths), the live-feature rules, item display names, and the sha256
                                and size of every other file (written last)
    <bundle>/model.safetensors  model weights
    <bundle>/items.safetensors  item tables of the live features (codes, release dates, series, numeric, popularity)
    <bundle>/vocabs.json        raw item id <-> index and every label vocabulary
    <bundle>/model.onnx         optional ONNX graph of the scorer (``intentrec export --format onnx``)

It is written to a temporary sibling and renamed into place, so a reader never sees half a bundle. Loading checks
the format, the version and every checksum before reading anything, and never unpickles: weights and tables are
safetensors, the rest JSON. ``bundle.json`` carries the sha256 of its own content (``manifest_sha256``, over the
other keys), so an edited config, spec or rule table is refused too (a bundle written before this key existed is
loaded without that check).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays
from torch import nn

from intentrec.config import ExperimentConfig, config_from_dict
from intentrec.errors import CheckpointError, ConfigError, VocabError
from intentrec.model import build_model
from intentrec.structs import AttributeRule, DataSpec, LiveFeatures, NumericRule
from intentrec.train.checkpoint import load_model_weights, save_model_weights, sha256_file, swap_directory
from intentrec.vocab import ItemVocab, LabelVocab, vocabs_from_json, vocabs_to_json

__all__ = [
    "BUNDLE_FILE",
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "MANIFEST_DIGEST",
    "ONNX_FILE",
    "Bundle",
    "is_bundle",
    "load_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "intentrec-bundle"
BUNDLE_VERSION = 1
BUNDLE_FILE = "bundle.json"
MANIFEST_DIGEST = "manifest_sha256"
WEIGHTS_FILE = "model.safetensors"
ITEMS_FILE = "items.safetensors"
VOCAB_FILE = "vocabs.json"
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: everything inference needs, and nothing from the training data."""

    path: Path
    """The bundle directory."""
    cfg: ExperimentConfig
    """The experiment config the model was trained with."""
    spec: DataSpec
    """Data-derived sizes the model was built with."""
    label_widths: dict[str, int]
    """L of each multi-valued attribute."""
    item_vocab: ItemVocab
    """Raw item id <-> index."""
    label_vocabs: dict[str, LabelVocab]
    """Attribute -> label vocabulary."""
    live: LiveFeatures
    """Rules and item tables that encode raw request events."""
    item_names: tuple[str, ...]
    """Display names aligned with ``item_vocab.ids`` (empty when the data has none)."""
    model: nn.Module
    """The model, in eval mode on the CPU."""
    model_version: str
    """``<name>-<first 12 hex digits of the weights' sha256>``: changes whenever the weights change."""
    fingerprint: str
    """Hash of the training data config and input files."""
    manifest: dict[str, Any]
    """The parsed ``bundle.json``."""

    @property
    def head_names(self) -> tuple[str, ...]:
        """Intent heads of the model, in output order (empty for item-only models)."""
        return tuple(getattr(self.model, "head_names", ()))

    def item_name(self, idx: int) -> str:
        """Display name of an item index (its title when known, else its raw id)."""
        if self.item_names and 2 <= idx < len(self.item_vocab):
            name = self.item_names[idx - 2]
            if name:
                return name
        return self.item_vocab.decode(idx)


def _live_to_json(live: LiveFeatures) -> dict[str, Any]:
    return {"rules": [asdict(r) for r in live.rules], "numeric": [asdict(r) for r in live.numeric]}


def _live_arrays(live: LiveFeatures) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"item_numeric": live.item_numeric, "popularity": live.popularity}
    for prefix, table in (("codes", live.item_codes), ("release", live.item_release), ("series", live.item_series)):
        for name, arr in table.items():
            arrays[f"{prefix}/{name}"] = np.ascontiguousarray(arr)
    return arrays


def _live_from(doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> LiveFeatures:
    rules = tuple(AttributeRule(**{**r, "buckets_days": tuple(r.get("buckets_days", ()))}) for r in doc["rules"])
    tables: dict[str, dict[str, np.ndarray]] = {"codes": {}, "release": {}, "series": {}}
    for key, arr in arrays.items():
        prefix, _, name = key.partition("/")
        if name and prefix in tables:
            tables[prefix][name] = arr
    return LiveFeatures(
        rules=rules,
        numeric=tuple(NumericRule(**r) for r in doc["numeric"]),
        item_codes=tables["codes"],
        item_release=tables["release"],
        item_series=tables["series"],
        item_numeric=arrays["item_numeric"],
        popularity=arrays["popularity"],
    )


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of a manifest's content (every key but :data:`MANIFEST_DIGEST`, canonical JSON)."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a ``bundle.json``."""
    return (Path(path) / BUNDLE_FILE).is_file()


def write_bundle(
    out: str | os.PathLike[str],
    *,
    model: nn.Module,
    cfg: ExperimentConfig,
    spec: DataSpec,
    label_widths: Mapping[str, int],
    item_vocab: ItemVocab,
    label_vocabs: Mapping[str, LabelVocab],
    live: LiveFeatures,
    item_names: tuple[str, ...] = (),
    fingerprint: str = "",
    source: str = "",
    extra_files: Mapping[str, bytes] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a bundle directory atomically (see the module docstring for the layout).

    Args:
        out: destination directory; replaced when it is an existing bundle or empty.
        model: the trained model (its ``state_dict`` is saved).
        cfg: the experiment config it was trained with.
        spec: its data spec; ``label_widths``: L of each multi-valued attribute.
        item_vocab: item vocabulary; ``label_vocabs``: attribute -> label vocabulary.
        live: the live-feature rules and item tables (``intentrec.data.live.live_features``).
        item_names: display names aligned with ``item_vocab.ids``.
        fingerprint: the training data's fingerprint.
        source: where the model came from (the run directory), recorded in the manifest.
        extra_files: more files to include (e.g. ``{"model.onnx": bytes}``), checksummed like the others.
        extra: more manifest entries (JSON-safe).

    Returns:
        The bundle directory.

    Raises:
        CheckpointError: ``out`` exists and is neither a bundle nor an empty directory.
    """
    target = Path(out)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not is_bundle(target))):
        raise CheckpointError(
            f"{target} exists and is not an intentrec bundle; choose another --out or remove it first"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{secrets.token_hex(6)}")
    tmp.mkdir()
    try:
        save_model_weights(model, tmp / WEIGHTS_FILE)
        (tmp / ITEMS_FILE).write_bytes(save_arrays(_live_arrays(live)))
        (tmp / VOCAB_FILE).write_text(vocabs_to_json(item_vocab, label_vocabs), encoding="utf-8")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        files = {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir()) if p.is_file()
        }
        weights_hash = files[WEIGHTS_FILE]["sha256"]
        name = cfg.name or "model"
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "model_version": f"{name}-{weights_hash[:12]}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source,
            "fingerprint": fingerprint,
            "architecture": cfg.model.architecture,
            "variant": cfg.model.variant,
            "config": cfg.to_dict(),
            "spec": {**spec.to_json(), "label_widths": dict(label_widths)},
            "live": _live_to_json(live),
            "item_names": list(item_names),
            "files": files,
            **dict(extra or {}),
        }
        manifest[MANIFEST_DIGEST] = _manifest_digest(manifest)
        (tmp / BUNDLE_FILE).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        swap_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / BUNDLE_FILE
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give the folder written by `intentrec export`")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a directory; a bundle is a folder written by `intentrec export`")
    if not file.is_file():
        hint = (" (it looks like a training run: export it with `intentrec export RUN_DIR --out BUNDLE_DIR`)"
                if (path / "config.json").is_file() else "")
        raise CheckpointError(f"{path} is not an intentrec bundle: {BUNDLE_FILE} is missing{hint}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{file} is not valid JSON ({err}); the bundle is damaged: export it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{file} is not an intentrec bundle manifest (format {BUNDLE_FORMAT!r} expected)")
    version = manifest.get("format_version")
    if version != BUNDLE_VERSION:
        raise CheckpointError(
            f"{path} is a bundle of format version {version}; this intentrec reads version {BUNDLE_VERSION}: "
            "export the run again with this version"
        )
    return manifest


def verify_files(path: Path, manifest: Mapping[str, Any]) -> None:
    """Check every file listed in the manifest exists with its size and sha256.

    Raises:
        CheckpointError: a file is missing, truncated or changed (the message names it).
    """
    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS_FILE not in files:
        raise CheckpointError(f"{path / BUNDLE_FILE} lists no files; the bundle is damaged: export it again")
    for name, meta in files.items():
        file = path / name
        if Path(name).name != name:
            raise CheckpointError(f"{path / BUNDLE_FILE} names a file outside the bundle: {name!r}")
        if not file.is_file():
            raise CheckpointError(f"{file} is missing from the bundle: export it again")
        if file.stat().st_size != meta.get("bytes") or sha256_file(file) != meta.get("sha256"):
            raise CheckpointError(
                f"{file} does not match the checksum in {BUNDLE_FILE} (truncated or modified); refusing to load it. "
                "Export the bundle again from its run."
            )


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Load and verify a bundle (model on the CPU, in eval mode).

    Raises:
        CheckpointError: not a bundle, another format version, a missing/truncated/modified file, an edited
            ``bundle.json``, or weights that do not fit the config.
    """
    root = Path(path)
    manifest = _read_manifest(root)
    verify_files(root, manifest)
    digest = manifest.get(MANIFEST_DIGEST)
    if digest is not None and digest != _manifest_digest(manifest):
        raise CheckpointError(
            f"{root / BUNDLE_FILE} was changed after export (its content no longer matches its own checksum "
            f"{MANIFEST_DIGEST}); refusing to load it. Undo the edit or export the bundle again from its run."
        )
    try:
        cfg = config_from_dict(manifest["config"], str(root / BUNDLE_FILE))
        spec = DataSpec.from_json(manifest["spec"])
        widths = {k: int(v) for k, v in manifest["spec"].get("label_widths", {}).items()}
        item_vocab, label_vocabs = vocabs_from_json((root / VOCAB_FILE).read_text(encoding="utf-8"))
        live = _live_from(manifest["live"], load_arrays((root / ITEMS_FILE).read_bytes()))
    except (KeyError, TypeError, ValueError, ConfigError, VocabError, SafetensorError) as err:
        raise CheckpointError(f"{root} is an unreadable bundle ({type(err).__name__}: {err}); export it again") from None
    if len(item_vocab) != spec.n_items or live.popularity.shape[0] != spec.n_items:
        raise CheckpointError(f"{root}: the vocabulary, item tables and model disagree on the catalogue size")
    model = build_model(cfg.model, spec)
    load_model_weights(model, root / WEIGHTS_FILE)
    model.eval()
    return Bundle(
        path=root,
        cfg=cfg,
        spec=spec,
        label_widths=widths,
        item_vocab=item_vocab,
        label_vocabs=label_vocabs,
        live=live,
        item_names=tuple(manifest.get("item_names", ())),
        model=model,
        model_version=str(manifest.get("model_version", "")),
        fingerprint=str(manifest.get("fingerprint", "")),
        manifest=manifest,
    )
