"""Model files: a truncated, bit-flipped, foreign, pickled, edited or missing bundle or run checkpoint fails with a
clear :class:`~intentrec.errors.CheckpointError`, through the library loaders (``load_bundle``, ``load_run``) and
the CLI / HTTP service built on them; nothing is ever unpickled, and ``src/`` holds no code that could.

``tiny_run`` / ``tiny_bundle`` (tests/conftest.py) are copied before each damage, never changed in place.
"""

from __future__ import annotations

import ast
import hashlib
import json
import pathlib
import pickle
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from intentrec import workflows
from intentrec.cli import app
from intentrec.errors import CheckpointError
from intentrec.serve.bundle import BUNDLE_FILE, MANIFEST_DIGEST, load_bundle
from intentrec.train.checkpoint import sha256_file

SRC = Path(__file__).resolve().parents[2] / "src"
WEIGHTS = "model.safetensors"
runner = CliRunner()


class _Bomb:
    """Unpickling this creates the file it names: proof that something unpickled a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """A file that must never appear (created only if a planted pickle is loaded)."""
    path = tmp_path / "UNPICKLED"
    yield path
    assert not path.exists(), "a model file was unpickled"


@pytest.fixture(autouse=True)
def _no_torch_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """``torch.load`` is never the way a model file is read (it unpickles)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"torch.load called with {args} {kwargs}")

    monkeypatch.setattr(torch, "load", refuse)


# ----------------------------------------------------------------------------------------------------------
# damages (each takes the file to damage and the never-to-appear marker)
# ----------------------------------------------------------------------------------------------------------


def _truncate(path: Path, _marker: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_weight_byte(path: Path, _marker: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - 7] ^= 0x01  # inside the tensor bytes, not the header: the file stays readable safetensors
    path.write_bytes(bytes(data))


def _foreign_safetensors(path: Path, _marker: Path) -> None:
    save_file({"encoder.w": torch.randn(3, 5), "head.bias": torch.zeros(11)}, str(path))


def _pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"state_dict": _Bomb(marker)}))


def _torch_save(path: Path, marker: Path) -> None:
    torch.save({"state_dict": _Bomb(marker)}, path)  # a zip archive holding a pickle


DAMAGES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated": (_truncate, "not a readable safetensors file"),
    "one byte flipped": (_flip_a_weight_byte, "is corrupted: its tensor bytes do not match the checksum"),
    "foreign safetensors": (_foreign_safetensors, "none of its 2 tensors ('encoder.w', 'head.bias', ...)"),
    "pickle renamed": (_pickle, "looks like a serialised Python object"),
    "torch.save renamed": (_torch_save, "looks like a zip archive"),
}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _manifest(bundle: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((bundle / BUNDLE_FILE).read_text(encoding="utf-8"))
    return doc


def _rewrite_manifest(bundle: Path, doc: dict[str, Any], *, resign: bool) -> None:
    """Write ``bundle.json``; with ``resign``, as a tool that knows the format would (file checksums and the
    content checksum recomputed), so the deeper checks are reached."""
    if resign:
        for name in doc["files"]:
            doc["files"][name] = {"sha256": sha256_file(bundle / name), "bytes": (bundle / name).stat().st_size}
        body = {k: v for k, v in doc.items() if k != MANIFEST_DIGEST}
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        doc[MANIFEST_DIGEST] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    (bundle / BUNDLE_FILE).write_text(json.dumps(doc), encoding="utf-8")


def _refused(load: Callable[[Path], object], path: Path, *needles: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load(path)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# ----------------------------------------------------------------------------------------------------------
# bundles
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_bundle_weights_fail_the_checksum(tiny_bundle: Path, tmp_path: Path, marker: Path,
                                                  damage: str) -> None:
    bundle = _copy(tiny_bundle, tmp_path / "bundle")
    DAMAGES[damage][0](bundle / WEIGHTS, marker)
    _refused(load_bundle, bundle, str(bundle / WEIGHTS), "does not match the checksum in bundle.json",
             "Export the bundle again")


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_bundle_weights_fail_even_with_a_matching_manifest(tiny_bundle: Path, tmp_path: Path,
                                                                   marker: Path, damage: str) -> None:
    bundle = _copy(tiny_bundle, tmp_path / "bundle")
    damage_fn, needle = DAMAGES[damage]
    damage_fn(bundle / WEIGHTS, marker)
    _rewrite_manifest(bundle, _manifest(bundle), resign=True)
    _refused(load_bundle, bundle, str(bundle / WEIGHTS), needle)


def test_damaged_item_tables_are_refused(tiny_bundle: Path, tmp_path: Path, marker: Path) -> None:
    bundle = _copy(tiny_bundle, tmp_path / "bundle")
    _pickle(bundle / "items.safetensors", marker)
    _refused(load_bundle, bundle, "items.safetensors", "does not match the checksum")
    _rewrite_manifest(bundle, _manifest(bundle), resign=True)
    _refused(load_bundle, bundle, "unreadable bundle", "export it again")


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda doc: doc["config"]["eval"].update(exclude_seen=False), "changed after export"),
    (lambda doc: doc["config"]["model"].update(d_model=64), "changed after export"),
    (lambda doc: doc.pop("live"), "changed after export"),
])
def test_an_edited_manifest_is_refused(tiny_bundle: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], Any],
                                       needle: str) -> None:
    bundle = _copy(tiny_bundle, tmp_path / "bundle")
    doc = _manifest(bundle)
    edit(doc)
    _rewrite_manifest(bundle, doc, resign=False)
    _refused(load_bundle, bundle, str(bundle / BUNDLE_FILE), needle, "export the bundle again")


@pytest.mark.parametrize(("edit", "needles"), [
    (lambda doc: doc["config"]["model"].update(d_model=64), ("do not fit IntentRec", "size mismatch")),
    (lambda doc: doc["spec"].update(n_items=doc["spec"]["n_items"] + 3), ("disagree on the catalogue size",)),
    (lambda doc: doc.pop("live"), ("unreadable bundle (KeyError: 'live')",)),
    (lambda doc: doc["spec"].update(label_widths={"genre": "wide"}), ("unreadable bundle (ValueError",)),
    (lambda doc: doc["config"]["model"].update(d_model=-4), ("unreadable bundle", "'model.d_model'")),
])
def test_an_inconsistent_resigned_manifest_is_refused(tiny_bundle: Path, tmp_path: Path,
                                                      edit: Callable[[dict[str, Any]], Any],
                                                      needles: tuple[str, ...]) -> None:
    bundle = _copy(tiny_bundle, tmp_path / "bundle")
    doc = _manifest(bundle)
    edit(doc)
    _rewrite_manifest(bundle, doc, resign=True)
    _refused(load_bundle, bundle, str(bundle), *needles)


@pytest.mark.parametrize(("damage", "needle"), [
    (lambda p: p.unlink(), "bundle.json is missing"),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), "is not valid JSON"),
    (lambda p: p.write_bytes(b"\xff\xfe{}"), "is not valid JSON"),
    (lambda p: p.write_text("[]"), "is not an intentrec bundle manifest"),
    (lambda p: p.write_text('{"format": "intentrec-bundle", "format_version": 1}'), "lists no files"),
])
def test_a_missing_or_broken_manifest_is_refused(tiny_bundle: Path, tmp_path: Path,
                                                 damage: Callable[[Path], Any], needle: str) -> None:
    bundle = _copy(tiny_bundle, tmp_path / "bundle")
    damage(bundle / BUNDLE_FILE)
    _refused(load_bundle, bundle, str(bundle), needle)


def test_things_that_are_not_bundles(tmp_path: Path) -> None:
    _refused(load_bundle, tmp_path / "nowhere", "does not exist")
    (tmp_path / "file.safetensors").write_bytes(b"x")
    _refused(load_bundle, tmp_path / "file.safetensors", "is not a directory")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8\xff")
    _refused(load_bundle, folder, "is not an intentrec bundle: bundle.json is missing")


def test_the_cli_and_the_service_refuse_a_damaged_bundle(tiny_bundle: Path, tmp_path: Path, marker: Path) -> None:
    bundle = _copy(tiny_bundle, tmp_path / "bundle")
    _pickle(bundle / WEIGHTS, marker)
    _rewrite_manifest(bundle, _manifest(bundle), resign=True)
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,timestamp\nu,1,1\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", str(bundle), "--input", str(events), "--out", str(tmp_path / "o.parquet"),
                                 "--no-progress"])
    text = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2 and "serialised Python object" in text, result.output
    assert "Traceback" not in result.output and not (tmp_path / "o.parquet").exists()
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from intentrec.serve.http import create_app

    with pytest.raises(CheckpointError, match="serialised Python object"), TestClient(create_app(bundle)):
        pass  # the lifespan loads the bundle once, at start-up: a damaged one stops the service from starting


# ----------------------------------------------------------------------------------------------------------
# run checkpoints
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_run_weights_are_refused(tiny_run: Path, tmp_path: Path, marker: Path, damage: str) -> None:
    run = _copy(tiny_run, tmp_path / "run")
    damage_fn, needle = DAMAGES[damage]
    damage_fn(run / WEIGHTS, marker)
    _refused(workflows.load_run, run, str(run / WEIGHTS), needle)


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


@pytest.mark.parametrize(("damage", "needles"), [
    (lambda run: (run / "config.json").unlink(), ("is not a finished training run: config.json is missing",)),
    (lambda run: (run / WEIGHTS).unlink(), ("is not a finished training run: model.safetensors is missing",)),
    (lambda run: (run / "config.json").write_text("{oops"), ("config.json is unreadable",)),
    (lambda run: _edit_json(run / "config.json", lambda d: d["train"].update(lr=-1)),
     ("config.json is unreadable", "'train.lr'")),
    (lambda run: _edit_json(run / "config.json", lambda d: d["model"].update(d_model=64, item_emb_dim=64)),
     ("do not fit IntentRec", "size mismatch")),
    (lambda run: _edit_json(run / "data_spec.json", lambda d: d.update(n_items=d["n_items"] + 1)),
     ("no longer matches the trained model",)),
])
def test_missing_or_edited_run_metadata_is_refused(tiny_run: Path, tmp_path: Path,
                                                   damage: Callable[[Path], Any], needles: tuple[str, ...]) -> None:
    run = _copy(tiny_run, tmp_path / "run")
    damage(run)
    _refused(workflows.load_run, run, str(run), *needles)


@pytest.mark.parametrize("content", ["{oops", '{"n_items": 5}'])
def test_a_damaged_data_spec_is_a_checkpoint_error(tiny_run: Path, tmp_path: Path, content: str) -> None:
    run = _copy(tiny_run, tmp_path / "run")
    (run / "data_spec.json").write_text(content, encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"data_spec\.json"):
        workflows.load_run(run)


def test_things_that_are_not_runs(tiny_bundle: Path, tmp_path: Path) -> None:
    _refused(workflows.load_run, tmp_path / "nowhere", "is not a finished training run")
    _refused(workflows.load_run, tiny_bundle, "is not a finished training run: config.json is missing")


def test_the_cli_refuses_a_damaged_run(tiny_run: Path, tmp_path: Path, marker: Path) -> None:
    run = _copy(tiny_run, tmp_path / "run")
    _torch_save(run / WEIGHTS, marker)
    for args in (["recommend", str(run), "--user", "1"], ["evaluate", str(run)],
                 ["export", str(run), "--out", str(tmp_path / "b")]):
        result = runner.invoke(app, args)
        text = " ".join(result.output.split())  # rich wraps long lines
        assert result.exit_code == 2, (args, result.output)
        assert "zip archive" in text and "Traceback" not in text
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------------------------------------
# the source never deserialises Python objects
# ----------------------------------------------------------------------------------------------------------

_FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _call_name(node: ast.Call) -> str:
    parts: list[str] = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _keyword_is(node: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in node.keywords)


def test_src_never_unpickles() -> None:
    problems: list[str] = []
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        where = path.relative_to(SRC)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    if name.split(".")[0] in _FORBIDDEN_MODULES:
                        problems.append(f"{where}:{node.lineno}: imports {name}")
            elif isinstance(node, ast.Call):
                name = _call_name(node)
                if name.endswith(("torch.load", "serialization.load")) and not _keyword_is(node, "weights_only", True):
                    problems.append(f"{where}:{node.lineno}: {name}() without weights_only=True")
                if name.endswith("torch.save"):
                    problems.append(f"{where}:{node.lineno}: torch.save() (use safetensors)")
                if _keyword_is(node, "allow_pickle", True):
                    problems.append(f"{where}:{node.lineno}: {name}(allow_pickle=True)")
        text = path.read_text(encoding="utf-8")
        for needle in ("allow_pickle=True", "weights_only=False", "pickle.load", "torch.load("):
            if needle in text:
                problems.append(f"{where}: contains {needle!r}")
    assert problems == []
