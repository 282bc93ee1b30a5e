"""The bundle: a round trip gives the trained model's outputs; damaged or foreign bundles fail clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from intentrec import workflows
from intentrec.errors import CheckpointError
from intentrec.serve.bundle import BUNDLE_FILE, load_bundle, write_bundle


def test_round_trip_equals_trained_model(tiny_run: Path, tiny_bundle: Path) -> None:
    art = workflows.load_run(tiny_run)
    bundle = load_bundle(tiny_bundle)
    trained, loaded = art.model.state_dict(), bundle.model.state_dict()
    assert trained.keys() == loaded.keys()
    for key, value in trained.items():
        assert torch.equal(value, loaded[key]), key
    assert bundle.item_vocab == art.data.item_vocab and bundle.label_vocabs == art.data.label_vocabs
    assert bundle.spec == art.data.spec and bundle.fingerprint == art.data.fingerprint
    assert bundle.model_version.startswith("tiny-") and len(bundle.model_version) == len("tiny-") + 12
    assert bundle.head_names == ("genre", "recency")
    manifest = json.loads((tiny_bundle / BUNDLE_FILE).read_text())
    assert manifest["format_version"] == 1 and set(manifest["files"]) == {
        "model.safetensors", "items.safetensors", "vocabs.json"}
    assert not any(p.suffix in {".pt", ".pth", ".pkl", ".pickle"} for p in tiny_bundle.iterdir())


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_tampered_truncated_and_missing_files_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    tampered = _copy(tiny_bundle, tmp_path / "tampered")
    data = bytearray((tampered / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tampered / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_bundle(tampered)
    truncated = _copy(tiny_bundle, tmp_path / "truncated")
    blob = (truncated / "items.safetensors").read_bytes()
    (truncated / "items.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=r"items\.safetensors"):
        load_bundle(truncated)
    missing = _copy(tiny_bundle, tmp_path / "missing")
    (missing / "vocabs.json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_bundle(missing)


def test_foreign_and_wrong_version_bundles_are_refused(tiny_run: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="export it with"):
        load_bundle(tiny_run)  # a run directory, not a bundle
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"bundle\.json is missing"):
        load_bundle(tmp_path / "empty")
    for doc, pattern in (("{not json", "not valid JSON"), ('{"format": "other"}', "not an intentrec bundle"),
                         ('{"format": "intentrec-bundle", "format_version": 99}', "version 99")):
        bad = _copy(tiny_bundle, tmp_path / f"bad{len(pattern)}")
        (bad / BUNDLE_FILE).write_text(doc)
        with pytest.raises(CheckpointError, match=pattern):
            load_bundle(bad)
    escape = _copy(tiny_bundle, tmp_path / "escape")
    manifest = json.loads((escape / BUNDLE_FILE).read_text())
    manifest["files"]["../outside"] = {"sha256": "0", "bytes": 0}
    (escape / BUNDLE_FILE).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="outside the bundle"):
        load_bundle(escape)


def test_export_replaces_bundles_only(tiny_run: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    other = tmp_path / "not-a-bundle"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not an intentrec bundle"):
        workflows.export(tiny_run, other)
    assert (other / "notes.txt").read_text() == "keep me"
    again = workflows.export(tiny_run, _copy(tiny_bundle, tmp_path / "again"))  # an existing bundle is replaced
    assert load_bundle(again).model_version == load_bundle(tiny_bundle).model_version
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".trash-" in p.name] == []


def test_write_bundle_rejects_a_file_target(tiny_bundle: Path, tmp_path: Path) -> None:
    b = load_bundle(tiny_bundle)
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(CheckpointError, match="not an intentrec bundle"):
        write_bundle(target, model=b.model, cfg=b.cfg, spec=b.spec, label_widths=b.label_widths,
                     item_vocab=b.item_vocab, label_vocabs=b.label_vocabs, live=b.live)


def test_heuristic_runs_cannot_be_exported(tmp_path: Path) -> None:
    from intentrec.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml",
                      ["model.architecture=popularity", f"data.cache_dir={tmp_path / 'cache'}"])
    workflows.train(cfg, tmp_path / "pop", progress=False, log=lambda _: None)
    with pytest.raises(CheckpointError, match="no model to load"):
        workflows.export(tmp_path / "pop", tmp_path / "b")
