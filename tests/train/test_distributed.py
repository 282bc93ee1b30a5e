"""Multi-process training: the torchrun context, global-batch sharding, the loss normalisation across ranks, and
2-process CPU (gloo) runs that match a single process and resume with another number of processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from intentrec import workflows
from intentrec.cli import app
from intentrec.config import load_config
from intentrec.errors import ConfigError
from intentrec.model import build_model
from intentrec.model.losses import IntentRecLoss
from intentrec.structs import SequenceBatch
from intentrec.testing import random_batch, random_spec, tiny_model_config
from intentrec.train import distributed
from intentrec.train.distributed import (
    DistributedContext,
    global_batch_loss,
    rank_batches,
    shard_batch,
    without_targets,
)

REPO = Path(__file__).resolve().parents[2]
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
                 "TORCHELASTIC_RUN_ID")


# ----------------------------------------------------------------------------------------------------------
# the context from torchrun's environment (no process group)
# ----------------------------------------------------------------------------------------------------------


def test_context_from_torchrun_variables() -> None:
    ctx = DistributedContext.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "MASTER_PORT": "1"})
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.is_main, ctx.enabled) == (3, 1, 4, False, False)
    assert DistributedContext.from_env({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}).is_main


def test_no_variables_is_a_single_process() -> None:
    ctx = DistributedContext.from_env({"PATH": "/bin"}, device=torch.device("cpu"))
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.enabled, ctx.backend) == (0, 1, True, False, None)
    assert not DistributedContext.launched_by_torchrun({})


@pytest.mark.parametrize(("env", "message"), [
    ({"RANK": "0", "WORLD_SIZE": "2"}, "LOCAL_RANK not set"),
    ({"RANK": "x", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, "must be integers"),
    ({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, "RANK < WORLD_SIZE"),
])
def test_inconsistent_variables_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DistributedContext.from_env(env)


def test_init_without_torchrun_is_the_single_process_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    ctx = distributed.init_distributed(torch.device("cpu"))
    assert not ctx.enabled and ctx.world_size == 1 and not torch.distributed.is_initialized()
    distributed.shutdown(ctx)  # no-op
    assert distributed.broadcast_object(ctx, {"a": 1}) == {"a": 1}
    distributed.barrier(ctx)


def test_nproc_inside_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RANK", "0")
    result = CliRunner().invoke(app, ["train", "--config", str(REPO / "configs" / "tiny.yaml"),
                                      "--out", str(tmp_path / "r"), "--nproc", "2"])
    assert result.exit_code == 2 and "drop it" in result.output


# ----------------------------------------------------------------------------------------------------------
# sharding of global batches
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("size", [1, 2, 7, 16])
def test_every_window_of_a_global_batch_goes_to_exactly_one_rank(world: int, size: int) -> None:
    batch = np.random.default_rng(size).permutation(100)[:size]
    shards = [shard_batch(batch, r, world) for r in range(world)]
    assert sorted(np.concatenate(shards).tolist()) == sorted(batch.tolist())
    assert max(s.size for s in shards) - min(s.size for s in shards) <= 1  # balanced
    assert sum(s.size == 0 for s in shards) == max(0, world - size)


class _Windows(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> int:
        return i


def _collate(items: list[int]) -> SequenceBatch:
    spec = random_spec(n_items=12)
    batch = random_batch(spec, len(items), 4, seed=0, pad_left=0)
    return replace(batch, user_row=torch.tensor(items))


def test_every_rank_gets_one_batch_per_global_batch_and_an_empty_slice_has_no_targets() -> None:
    global_batches = [np.array([0, 1, 2]), np.array([3]), np.array([4, 5, 6, 7, 8, 9])]
    per_rank = [list(rank_batches(_Windows(), global_batches, _collate, DistributedContext(rank=r, world_size=2)))
                for r in range(2)]
    assert [len(b) for b in per_rank] == [3, 3]  # the same number of steps on every rank
    assert [b.user_row.tolist() for b in per_rank[0]] == [[0, 2], [3], [4, 6, 8]]
    assert [b.user_row.tolist() for b in per_rank[1]] == [[1], [3], [5, 7, 9]]  # [3]: a placeholder ...
    empty = per_rank[1][1]
    assert not empty.target_item.any() and not empty.target_weight.any()  # ... without targets
    assert all(not t.any() for t in empty.target_intents.values())
    assert torch.equal(empty.item_idx, per_rank[0][1].item_idx)  # same inputs: a real forward/backward


# ----------------------------------------------------------------------------------------------------------
# loss normalisation: N simulated ranks average to the single-process gradient
# ----------------------------------------------------------------------------------------------------------


def _rows(batch: SequenceBatch, idx: np.ndarray) -> SequenceBatch:
    index = torch.as_tensor(idx, dtype=torch.long)

    def take(value: object) -> object:
        if isinstance(value, dict):
            return {k: v[index] for k, v in value.items()}
        return value[index]  # type: ignore[index]

    return replace(batch, **{f.name: take(getattr(batch, f.name)) for f in fields(batch)})


def _uneven_batch(size: int) -> SequenceBatch:
    """A batch whose rows hold very different weight sums (random durations, some targets missing)."""
    spec = random_spec(n_items=30)
    batch = random_batch(spec, size, 6, seed=size)
    gen = torch.Generator().manual_seed(size)
    has_target = batch.target_item > 0
    weight = torch.rand(batch.target_weight.shape, generator=gen) * 5 * has_target  # (B, n)
    intents = dict(batch.target_intents)
    name = next(iter(intents))
    intents[name] = intents[name] * (torch.rand(intents[name].shape[:2], generator=gen) > 0.5).long().reshape(
        intents[name].shape[:2] + (1,) * (intents[name].dim() - 2))  # drop half of one intent's targets
    return replace(batch, target_weight=weight, target_intents=intents)


@pytest.mark.parametrize(("size", "world"), [(5, 2), (7, 3), (2, 3)])  # (2, 3): rank 2 has an empty slice
def test_rescaled_rank_losses_average_to_the_global_batch_gradient(
    size: int, world: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    spec = random_spec(n_items=30)
    model = build_model(tiny_model_config(), spec)
    loss_fn = IntentRecLoss(0.7)
    batch = _uneven_batch(size)

    def grads() -> list[torch.Tensor]:
        out = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
        model.zero_grad(set_to_none=True)
        return out

    single = loss_fn(model, model(batch), batch)
    single.total.backward()
    expected = grads()

    shards = []
    for r in range(world):
        idx = shard_batch(np.arange(size), r, world)
        shards.append(_rows(batch, idx) if idx.size else without_targets(_rows(batch, np.arange(1))))
    # pass 1 collects every rank's reduction vector; pass 2 hands each rank their sum (what all_reduce returns)
    vectors: list[torch.Tensor] = []
    monkeypatch.setattr(distributed, "all_reduce_sum", lambda ctx, t: vectors.append(t.clone()) or t)
    for r, shard in enumerate(shards):
        out = model(shard)
        global_batch_loss(loss_fn(model, out, shard), out, shard, 0.7, DistributedContext(r, r, world, backend="gloo"))
    total_vector = torch.stack(vectors).sum(0)
    monkeypatch.setattr(distributed, "all_reduce_sum", lambda ctx, t: total_vector.clone())
    averaged = [torch.zeros_like(p) for p in model.parameters()]
    for r, shard in enumerate(shards):
        out = model(shard)
        loss = global_batch_loss(loss_fn(model, out, shard), out, shard, 0.7,
                                 DistributedContext(r, r, world, backend="gloo"))
        loss.objective.backward()
        averaged = [a + g / world for a, g in zip(averaged, grads(), strict=True)]  # DDP's gradient averaging
        assert loss.total == pytest.approx(float(single.total.detach()), rel=1e-5)  # every rank logs the global loss
        assert loss.parts == pytest.approx({k: float(v.detach()) for k, v in single.parts.items()}, rel=1e-5)
        assert loss.n_targets == int((batch.target_item > 0).sum())
    for got, want in zip(averaged, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_an_unknown_loss_part_is_refused() -> None:
    spec = random_spec(n_items=30)
    model = build_model(tiny_model_config(), spec)
    batch = random_batch(spec, 2, 4, seed=0)
    out = model(batch)
    loss = IntentRecLoss(1.0)(model, out, batch)
    extra = replace(loss, parts={**loss.parts, "contrastive": loss.total})
    with pytest.raises(ConfigError, match="contrastive"):
        global_batch_loss(extra, out, batch, 1.0, DistributedContext(0, 0, 2, backend="gloo"))


# ----------------------------------------------------------------------------------------------------------
# 2 CPU processes (gloo) through the real launcher vs 1 process; resume with another world size
# ----------------------------------------------------------------------------------------------------------

EPOCHS = 2
STEPS = 3


def _overrides(cache: Path, *extra: str) -> list[str]:
    return [f"train.epochs={EPOCHS}", f"train.max_steps_per_epoch={STEPS}", "train.batch_size=33",
            "model.dropout=0", "train.patience=5", "train.num_threads=1", f"data.cache_dir={cache}", *extra]


FIRST_EPOCH_ONLY = "train.max_minutes=0.000001"  # the time budget ends the run after epoch 1 (same lr schedule)


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "intentrec", "train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def _two_processes(out: Path, overrides: list[str], *, resume: bool = False) -> str:
    args = ["--config", str(REPO / "configs" / "tiny.yaml"), "--out", str(out), "--no-progress", "--nproc", "2"]
    args += [a for o in overrides for a in ("--set", o)] + (["--resume"] if resume else [])
    result = _launch(args, out.parent)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def _one_process(out: Path, overrides: list[str], *, resume: bool = False) -> None:
    cfg = load_config(REPO / "configs" / "tiny.yaml", overrides)
    workflows.train(cfg, out, resume=resume, progress=False, log=lambda _: None)


def _history(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def _losses(run: Path) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k.startswith("loss/")} for h in _history(run)]


def _metrics(run: Path, name: str = "metrics.json") -> dict[str, object]:
    doc = json.loads((run / name).read_text())
    return {"item": doc["item"], "intents": doc["intents"], "n_targets": doc["n_targets"]}


def _assert_same_weights(a: Path, b: Path) -> float:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    diff = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert diff < 1e-5, diff
    return diff


def _assert_same_losses(a: Path, b: Path) -> None:
    la, lb = _losses(a), _losses(b)
    assert len(la) == len(lb) and la[0].keys() == lb[0].keys()
    for ea, eb in zip(la, lb, strict=True):
        assert ea == pytest.approx(eb, rel=1e-5)


def _assert_same_metrics(a: Path, b: Path, name: str = "metrics.json") -> None:
    ma, mb = _metrics(a, name), _metrics(b, name)
    assert ma["n_targets"] == mb["n_targets"]
    assert ma["item"] == pytest.approx(mb["item"], abs=1e-6)
    for intent, values in ma["intents"].items():  # type: ignore[attr-defined]
        assert mb["intents"][intent] == pytest.approx(values, abs=1e-6)  # type: ignore[index]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Single-process runs (2 epochs straight; 1 epoch) and a 2-process run of the first epoch."""
    work = tmp_path_factory.mktemp("distributed")
    cache = work / "cache"
    paths = {"straight": work / "straight", "one_first": work / "one_first", "two_first": work / "two_first"}
    threads = torch.get_num_threads()
    try:
        _one_process(paths["straight"], _overrides(cache))  # train.num_threads=1, like each worker below
        _one_process(paths["one_first"], _overrides(cache, FIRST_EPOCH_ONLY))
    finally:
        torch.set_num_threads(threads)
    stdout = _two_processes(paths["two_first"], _overrides(cache, FIRST_EPOCH_ONLY))
    assert "torch.distributed.run --standalone --nproc-per-node=2 -m intentrec train" in stdout
    assert "distributed: 2 processes (gloo)" in stdout
    return paths


def test_two_processes_train_and_evaluate_like_one_process_with_the_same_global_batch(runs: dict[str, Path]) -> None:
    one, two = runs["one_first"], runs["two_first"]
    assert [h["epoch"] for h in _history(two)] == [1] and _history(two)[0]["step"] == STEPS  # rank 0 wrote once
    _assert_same_losses(one, two)
    _assert_same_weights(one, two)
    _assert_same_metrics(one, two)  # test split
    _assert_same_metrics(one, two, "metrics_validation.json")
    assert (two / "last" / "manifest.json").is_file()
    assert not [p.name for p in two.iterdir() if ".tmp" in p.name or ".trash" in p.name]


def test_resume_with_a_different_number_of_processes_continues_the_same_run(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    cache = runs["straight"].parent / "cache"
    two_then_one = tmp_path / "two_then_one"
    shutil.copytree(runs["two_first"], two_then_one)
    _one_process(two_then_one, _overrides(cache, FIRST_EPOCH_ONLY), resume=True)
    one_then_two = tmp_path / "one_then_two"
    shutil.copytree(runs["one_first"], one_then_two)
    stdout = _two_processes(one_then_two, _overrides(cache, FIRST_EPOCH_ONLY), resume=True)
    assert "resumed from" in stdout

    straight = runs["straight"]
    for resumed in (two_then_one, one_then_two):
        assert [h["epoch"] for h in _history(resumed)] == [1, 2]
        assert [h["step"] for h in _history(resumed)] == [STEPS, 2 * STEPS]
        _assert_same_losses(straight, resumed)
        _assert_same_weights(straight, resumed)
        _assert_same_metrics(straight, resumed)
        assert json.loads((resumed / "metrics.json").read_text())["training"]["epochs_run"] == EPOCHS
