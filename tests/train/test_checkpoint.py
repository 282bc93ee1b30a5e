"""Checkpoint I/O: tied weights, exact AdamW resume, corruption detection, atomicity, no pickle."""

from __future__ import annotations

import inspect
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from intentrec.errors import CheckpointError
from intentrec.train import checkpoint
from intentrec.train.checkpoint import (
    MANIFEST_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    atomic_write_bytes,
    atomic_write_text,
    load_model_weights,
    load_training_state,
    save_model_weights,
    save_training_state,
)
from intentrec.train.optim import build_optimizer


class TiedLM(nn.Module):
    """Embedding + LayerNorm + Linear, output layer tied to the embedding."""

    def __init__(self, n_items: int = 30, dim: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(n_items, dim)
        self.hidden = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(dim, n_items)
        self.out.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)  # (B, n, D)
        h = self.drop(torch.relu(self.norm(self.hidden(h))))  # (B, n, D)
        return self.out(h)  # (B, n, I)


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 30, (4, 6), generator=g)
    y = torch.randint(0, 30, (4, 6), generator=g)
    return x, y


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    x, y = _batch(seed)
    loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _fresh(seed: int) -> tuple[TiedLM, torch.optim.AdamW]:
    torch.manual_seed(seed)
    model = TiedLM()
    return model, build_optimizer(model, lr=1e-2, weight_decay=0.1)


# ------------------------------------------------------------------------------------------------------
# no pickle
# ------------------------------------------------------------------------------------------------------


def test_no_pickle_in_module_source() -> None:
    source = inspect.getsource(checkpoint)
    assert "pickle" not in source.lower()
    # torch.save / torch.load are forbidden; safetensors.torch.save_model / load_model are the allowed API
    assert re.search(r"(?<!safetensors\.)\btorch\.(save|load)\b", source) is None
    assert "import torch.serialization" not in source


# ------------------------------------------------------------------------------------------------------
# atomic writes
# ------------------------------------------------------------------------------------------------------


def test_atomic_write_text_and_bytes(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def boom(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(checkpoint.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


# ------------------------------------------------------------------------------------------------------
# model weights
# ------------------------------------------------------------------------------------------------------


def test_tied_weights_round_trip(tmp_path: Path) -> None:
    model, _ = _fresh(0)
    path = tmp_path / "w" / "model.safetensors"
    save_model_weights(model, path)
    other, _ = _fresh(1)
    assert not torch.equal(other.emb.weight, model.emb.weight)
    missing, unexpected = load_model_weights(other, path)
    assert missing == [] and unexpected == []
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert other.out.weight is other.emb.weight  # the tie survives loading
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp files left


def test_weights_errors_are_checkpoint_errors(tmp_path: Path) -> None:
    model, _ = _fresh(0)
    path = tmp_path / "model.safetensors"
    save_model_weights(model, path)

    with pytest.raises(CheckpointError, match="does not exist"):
        load_model_weights(model, tmp_path / "nope.safetensors")

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=r"truncated\.safetensors"):
        load_model_weights(model, truncated)

    foreign = tmp_path / "foreign.safetensors"
    foreign.write_text(json.dumps({"not": "weights"}))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model_weights(model, foreign)

    with pytest.raises(CheckpointError, match="do not fit"):
        load_model_weights(TiedLM(n_items=31), path)  # shape mismatch
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model_weights(nn.Linear(8, 8), path)  # missing / unexpected keys
    missing, unexpected = load_model_weights(nn.Linear(8, 8), path, strict=False)
    assert set(missing) == {"weight", "bias"} and unexpected


# ------------------------------------------------------------------------------------------------------
# training state
# ------------------------------------------------------------------------------------------------------


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    model, opt = _fresh(0)
    for step in range(3):
        _train_step(model, opt, seed=step)
    ckpt = tmp_path / "last"
    gen = torch.Generator().manual_seed(123)
    scalars = {
        "epoch": 2,
        "step": 3,
        "best": float("-inf"),
        "seeds": [1, 2, 3],
        "pair": (0.5, "x"),
        "nested": {"gen_state": gen.get_state()},
    }
    save_training_state(ckpt, model, opt, scalars)
    assert sorted(p.name for p in ckpt.iterdir()) == sorted([MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, MANIFEST_FILE])

    # continue the original run for two more steps (dropout consumes the global RNG)
    for step in range(3, 5):
        _train_step(model, opt, seed=step)
    rng_after_original = torch.rand(3)

    torch.manual_seed(999)  # scramble the RNG; the checkpoint restores it
    resumed, resumed_opt = _fresh(7)
    restored = load_training_state(ckpt, resumed, resumed_opt)
    for step in range(3, 5):
        _train_step(resumed, resumed_opt, seed=step)

    for (name, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(torch.rand(3), rng_after_original)
    for pa, pb in zip(opt.state.values(), resumed_opt.state.values(), strict=True):
        for key in pa:
            assert torch.equal(pa[key], pb[key]), key
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in resumed_opt.param_groups]
    assert resumed_opt.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    assert isinstance(resumed_opt.param_groups[0]["betas"], tuple)

    assert restored["epoch"] == 2 and restored["step"] == 3 and restored["best"] == float("-inf")
    assert restored["seeds"] == [1, 2, 3] and restored["pair"] == (0.5, "x")
    assert torch.equal(restored["nested"]["gen_state"], gen.get_state())


def test_python_and_numpy_rng_restored(tmp_path: Path) -> None:
    model, opt = _fresh(0)
    random.seed(5)
    np.random.seed(5)
    save_training_state(tmp_path / "c", model, opt, {})
    expected = (random.random(), float(np.random.rand()))
    random.seed(0)
    np.random.seed(0)
    load_training_state(tmp_path / "c", model, opt)
    assert (random.random(), float(np.random.rand())) == expected
    # restore_rng=False leaves the RNG alone
    random.seed(1)
    want = random.random()
    random.seed(1)
    load_training_state(tmp_path / "c", model, opt, restore_rng=False)
    assert random.random() == want


def test_optimizer_without_state_round_trips(tmp_path: Path) -> None:
    model, opt = _fresh(0)
    save_training_state(tmp_path / "c", model, opt, {"epoch": -1}, capture_rng=False)
    m2, o2 = _fresh(1)
    assert load_training_state(tmp_path / "c", m2, o2) == {"epoch": -1}
    assert torch.equal(m2.emb.weight, model.emb.weight)


def _saved(tmp_path: Path) -> tuple[Path, TiedLM, torch.optim.AdamW]:
    model, opt = _fresh(0)
    _train_step(model, opt, seed=0)
    ckpt = tmp_path / "ckpt"
    save_training_state(ckpt, model, opt, {"epoch": 0})
    return ckpt, model, opt


@pytest.mark.parametrize("name", [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE])
def test_flipped_byte_is_detected(tmp_path: Path, name: str) -> None:
    ckpt, model, opt = _saved(tmp_path)
    path = ckpt / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_training_state(ckpt, model, opt)


def test_truncated_file_is_detected(tmp_path: Path) -> None:
    ckpt, model, opt = _saved(tmp_path)
    path = ckpt / OPTIMIZER_FILE
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CheckpointError, match="truncated"):
        load_training_state(ckpt, model, opt)


def test_missing_manifest_or_dir(tmp_path: Path) -> None:
    ckpt, model, opt = _saved(tmp_path)
    (ckpt / MANIFEST_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"no manifest\.json"):
        load_training_state(ckpt, model, opt)
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        load_training_state(tmp_path / "absent", model, opt)


def test_missing_listed_file(tmp_path: Path) -> None:
    ckpt, model, opt = _saved(tmp_path)
    (ckpt / MODEL_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_training_state(ckpt, model, opt)


def test_mismatched_model_or_optimizer(tmp_path: Path) -> None:
    ckpt, _, _ = _saved(tmp_path)
    other = TiedLM(n_items=31)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_training_state(ckpt, other, build_optimizer(other, 1e-2, 0.1))
    lin = nn.Sequential(nn.Linear(8, 8))
    with pytest.raises(CheckpointError, match="groups of sizes"):
        load_training_state(ckpt, lin, build_optimizer(lin, 1e-2, 0.1))
    model = TiedLM()
    with pytest.raises(CheckpointError, match="AdamW"):
        load_training_state(ckpt, model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_overwrite_is_clean_and_refuses_foreign_dirs(tmp_path: Path) -> None:
    ckpt, model, opt = _saved(tmp_path)
    _train_step(model, opt, seed=1)
    save_training_state(ckpt, model, opt, {"epoch": 1})
    assert load_training_state(ckpt, TiedLM(), build_optimizer(TiedLM(), 1e-2, 0.1))["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no tmp/trash siblings left

    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("do not delete")
    with pytest.raises(CheckpointError, match="refusing to replace"):
        save_training_state(foreign, model, opt, {})
    assert (foreign / "thesis.txt").read_text() == "do not delete"


def test_failed_write_keeps_the_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt, model, opt = _saved(tmp_path)
    before = (ckpt / MANIFEST_FILE).read_bytes()

    def boom(*args: object, **kwargs: object) -> bytes:
        raise OSError("no space left")

    monkeypatch.setattr(checkpoint, "save", boom)
    with pytest.raises(OSError, match="no space left"):
        save_training_state(ckpt, model, opt, {"epoch": 5})
    assert (ckpt / MANIFEST_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_unsupported_scalar_is_rejected(tmp_path: Path) -> None:
    model, opt = _fresh(0)
    with pytest.raises(CheckpointError, match="cannot store"):
        save_training_state(tmp_path / "c", model, opt, {"bad": object()})
    with pytest.raises(CheckpointError, match="keys must be strings"):
        save_training_state(tmp_path / "c", model, opt, {"bad": {1: 2}})
    assert not any(tmp_path.iterdir())


def test_manifest_written_and_lists_hashes(tmp_path: Path) -> None:
    ckpt, _, _ = _saved(tmp_path)
    manifest = json.loads((ckpt / MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {MODEL_FILE, OPTIMIZER_FILE, STATE_FILE}
    for name, entry in manifest["files"].items():
        assert entry["bytes"] == os.path.getsize(ckpt / name)
        assert len(entry["sha256"]) == 64
    state = json.loads((ckpt / STATE_FILE).read_text())
    assert state["optimizer"]["class"] == "AdamW"
    assert state["optimizer"]["state"]  # per-parameter entries reference tensors
