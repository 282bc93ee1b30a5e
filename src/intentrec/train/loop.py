"""The training loop: readable top to bottom (STYLE §4).

``fit`` trains with AdamW + warm-up/cosine, gradient clipping and early stopping on a *validation* metric,
writes the best weights atomically, a resumable state after every epoch and one JSON line per epoch in
``history.jsonl``. Validation is injected as ``validate_fn`` (train and evaluate are siblings).

Under ``torchrun`` (``dist`` enabled) the model is wrapped in DistributedDataParallel, each step's loss is
normalised over the global batch (:func:`intentrec.train.distributed.global_batch_loss`), and rank 0 alone
validates, logs and writes files; its validation metrics and elapsed time are broadcast so that every rank stops
at the same epoch (module docstring of :mod:`intentrec.train.distributed`).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from intentrec.config import TrainConfig
from intentrec.structs import ModelOutput, SequenceBatch
from intentrec.train.checkpoint import (
    CheckpointError,
    atomic_write_text,
    load_training_state,
    recover_training_state,
    save_model_weights,
    save_training_state,
)
from intentrec.train.distributed import (
    DistributedContext,
    broadcast_object,
    global_batch_loss,
    wrap_model,
)
from intentrec.train.ema import WeightEMA
from intentrec.train.optim import build_optimizer, get_lr

__all__ = ["FitResult", "fit", "resolve_device", "seed_everything"]

BEST_WEIGHTS = "model.safetensors"
LAST_STATE = "last"
HISTORY = "history.jsonl"


class LossFn(Protocol):
    """What ``fit`` needs from a loss: ``(model, output, batch) -> object with .total and .parts`` (``LossOutput``)."""

    def __call__(self, model: nn.Module, output: ModelOutput, batch: SequenceBatch) -> Any: ...


@dataclass
class FitResult:
    """Outcome of :func:`fit`."""

    best_epoch: int
    best_metric: float
    epochs_run: int
    stopped_early: bool
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str = "max_epochs"
    """``max_epochs``, ``early_stop`` (patience on validation), ``time_budget`` (``train.max_minutes``) or
    ``fixed_epochs`` (a refit stopped at the epoch chosen on validation)."""


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU falls back to CPU with a warning."""
    if name == "cuda" and not torch.cuda.is_available():
        import warnings

        warnings.warn("train.device=cuda but no CUDA device is available; using the CPU", stacklevel=2)
        return torch.device("cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _autocast(device: torch.device, amp: bool):  # type: ignore[no-untyped-def]
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def fit(
    model: nn.Module,
    make_train_batches: Callable[[int], Iterable[SequenceBatch]],
    steps_per_epoch: int,
    loss_fn: LossFn,
    validate_fn: Callable[[nn.Module], dict[str, float]] | None,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    stop_after: int | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    dist: DistributedContext | None = None,
) -> FitResult:
    """Train ``model`` and keep the weights with the best validation ``cfg.monitor``.

    Args:
        model: the model (already on its device).
        make_train_batches: ``epoch -> iterable of batches`` (shuffled with a seed derived from the epoch); under
            ``torchrun``, this rank's slice of every global batch (the same number of batches on every rank).
        steps_per_epoch: batches per epoch (for the schedule and the progress bar).
        loss_fn: returns an object with ``.total`` (scalar tensor) and ``.parts`` (dict of scalar tensors); when
            distributed, an ``IntentRecLoss`` (its parts are renormalised over the global batch).
        validate_fn: ``model -> metrics`` on the *validation* targets (never test); called on rank 0 only. None
            = no validation (a refit): no early stopping, and the weights after the last epoch are kept.
        cfg: training hyperparameters.
        run_dir: where ``model.safetensors`` (best), ``last/`` (resume state) and ``history.jsonl`` go.
        stop_after: stop after this many epochs of the ``cfg.epochs`` schedule (the learning rate follows the
            schedule of the full ``cfg.epochs``; a refit stops at the epoch that validation chose).
        resume: continue from ``run_dir/last`` when it exists (written by a run of any world size).
        progress: show a progress bar with live loss and throughput (rank 0 only).
        log: where one-line epoch summaries go (rank 0 only).
        dist: the distributed context (None = a single process). Every rank calls ``fit``; rank 0 alone reads
            ``last/``, validates and writes files, and broadcasts what the other ranks need.

    Returns:
        A :class:`FitResult`; the best weights are at ``run_dir / "model.safetensors"``.
    """
    dist = dist if dist is not None else DistributedContext()
    if not dist.is_main:
        progress, log = False, _silent
    device = next(model.parameters()).device
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    if cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    lambda_intent = float(getattr(loss_fn, "lambda_intent", cfg.lambda_intent))

    ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None  # train.ema_decay: validate the average
    start_epoch, step, best, best_epoch, bad_epochs = 0, 0, -math.inf, -1, 0
    elapsed_before = 0.0  # training seconds of earlier (resumed) sessions, for train.max_minutes
    history: list[dict[str, float]] = []
    state_dir = run_dir / LAST_STATE
    if dist.is_main:  # a run killed while saving leaves its states beside last/ (or none in it): repair first
        repaired = recover_training_state(state_dir)
        if repaired:
            log(repaired)
    if broadcast_object(dist, resume and dist.is_main and (state_dir / "manifest.json").exists()):
        scalars = load_training_state(state_dir, model, optimizer) if dist.is_main else {}
        if dist.enabled:  # rank 0's optimizer state and scalars to every rank; its weights travel with DDP below
            opt_state = _to_cpu(optimizer.state_dict()) if dist.is_main else None
            scalars, opt_state = broadcast_object(dist, (scalars, opt_state))
            if not dist.is_main:
                optimizer.load_state_dict(opt_state)
        start_epoch = int(scalars["epoch"]) + 1
        step, best = int(scalars["step"]), float(scalars["best"])
        best_epoch, bad_epochs = int(scalars["best_epoch"]), int(scalars["bad_epochs"])
        elapsed_before = float(scalars.get("elapsed_seconds", 0.0))
        if ema is not None:
            if "ema" not in scalars:
                raise CheckpointError(f"{state_dir} was saved without train.ema_decay: resume with the same setting "
                                      "or start a new run directory")
            ema.load_state(scalars["ema"])
        history = _read_history(run_dir / HISTORY)[:start_epoch] if dist.is_main else []
        if dist.is_main:  # drop the line of an epoch whose state was never saved (killed between the two writes)
            atomic_write_text(run_dir / HISTORY, "".join(json.dumps(record) + "\n" for record in history))
        log(f"resumed from {state_dir} at epoch {start_epoch} (best {cfg.monitor} {best:.4f} at epoch {best_epoch})")
    elif dist.is_main and (run_dir / HISTORY).exists():
        (run_dir / HISTORY).unlink()
    train_model = wrap_model(model, dist)  # DDP under torchrun (broadcasts rank 0's weights), else the model
    if cfg.compile:  # the forward of the training steps; validation and saving use the plain module
        train_model = torch.compile(train_model, dynamic=True)  # type: ignore[assignment]

    t_start = time.perf_counter()
    stopped_early = False
    stop_reason = "max_epochs"
    epoch = start_epoch - 1
    last_epoch = cfg.epochs if stop_after is None else min(stop_after, cfg.epochs)
    for epoch in range(start_epoch, last_epoch):
        torch.manual_seed(_epoch_seed(cfg.seed, epoch, dist.rank))  # per-epoch dropout stream: resume replays it
        train_model.train()
        sums: dict[str, float] = {}
        n_steps, n_targets, t_epoch = 0, 0, time.perf_counter()
        bar = _ProgressBar(steps_per_epoch, f"epoch {epoch + 1}/{last_epoch}", progress)
        for batch in make_train_batches(epoch):
            if n_steps >= steps_per_epoch:
                break
            batch = batch.to(device, non_blocking=True)
            lr = get_lr(step + 1, total_steps, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with _autocast(device, cfg.amp):
                output = train_model(batch)
                loss = global_batch_loss(loss_fn(model, output, batch), output, batch, lambda_intent, dist)
            optimizer.zero_grad(set_to_none=True)
            loss.objective.backward()  # DDP averages the gradients over ranks here
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(model)
            step += 1
            n_steps += 1
            n_targets += loss.n_targets
            for name, value in loss.parts.items():
                sums[name] = sums.get(name, 0.0) + value
            sums["total"] = sums.get("total", 0.0) + loss.total
            rate = n_targets / max(time.perf_counter() - t_epoch, 1e-9)
            bar.update(f"loss {sums['total'] / n_steps:.4f} | {rate:,.0f} targets/s | lr {lr:.2e}")
        bar.close()
        train_time = time.perf_counter() - t_epoch
        record: dict[str, float] = {"epoch": epoch + 1, "step": step, "train_seconds": round(train_time, 3)}
        record.update({f"loss/{k}": v / max(n_steps, 1) for k, v in sums.items()})
        record["targets_per_second"] = round(n_targets / max(train_time, 1e-9), 1)

        if validate_fn is None:
            log(f"epoch {epoch + 1}: loss {record.get('loss/total', float('nan')):.4f} | no validation | "
                f"{train_time:.1f}s")
        elif (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == last_epoch:
            # rank 0 validates while the others wait; everyone gets its metrics (identical decisions below)
            with ema.swapped_in(model) if ema is not None else nullcontext(model):
                metrics = broadcast_object(dist, validate_fn(model) if dist.is_main else {})
                record.update({f"val/{k}": v for k, v in metrics.items()})
                current = metrics[cfg.monitor]
                if current > best:
                    best, best_epoch, bad_epochs = current, epoch + 1, 0
                    if dist.is_main:
                        save_model_weights(model, run_dir / BEST_WEIGHTS)
                else:
                    bad_epochs += 1
            log(
                f"epoch {epoch + 1}: loss {record.get('loss/total', float('nan')):.4f} | val {cfg.monitor} "
                f"{current:.4f} (best {best:.4f} @ {best_epoch}) | {train_time:.1f}s"
            )
        history.append(record)
        elapsed = broadcast_object(dist, elapsed_before + time.perf_counter() - t_start)  # rank 0's clock decides
        scalars = {"epoch": epoch, "step": step, "best": best, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                   "elapsed_seconds": elapsed}
        if ema is not None:
            scalars["ema"] = ema.state()
        if dist.is_main:
            _append_history(run_dir / HISTORY, record)
            save_training_state(state_dir, model, optimizer, scalars)
        if bad_epochs >= cfg.patience:
            stopped_early, stop_reason = True, "early_stop"
            log(f"early stop: no {cfg.monitor} improvement on validation for {cfg.patience} evaluations")
            break
        if cfg.max_minutes is not None and elapsed >= 60.0 * cfg.max_minutes and epoch + 1 < last_epoch:
            stop_reason = "time_budget"
            kept = f"best {cfg.monitor} {best:.4f} at epoch {best_epoch}" if validate_fn else "no validation"
            log(f"time budget of {cfg.max_minutes:g} min used after epoch {epoch + 1}: stopping ({kept})")
            break

    if validate_fn is None:  # a refit keeps the weights of its last epoch
        best_epoch = epoch + 1
        if stop_reason == "max_epochs" and stop_after is not None:
            stop_reason = "fixed_epochs"
    if (best_epoch < 0 or validate_fn is None) and dist.is_main:  # no validation (a refit, or no epochs left)
        with ema.swapped_in(model) if ema is not None else nullcontext(model):
            save_model_weights(model, run_dir / BEST_WEIGHTS)
    return FitResult(
        best_epoch=best_epoch,
        best_metric=best if validate_fn is not None else math.nan,
        epochs_run=epoch + 1,
        stopped_early=stopped_early,
        train_seconds=time.perf_counter() - t_start,
        history=history,
        stop_reason=stop_reason,
    )


def _silent(_message: str) -> None:
    """The log of ranks other than 0."""


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Torch seed of an epoch's dropout stream: rank 0 keeps the single-process seed, other ranks get their own."""
    base = seed * 100_003 + epoch
    if rank == 0:
        return base
    return int(np.random.SeedSequence([base % 2**63, rank]).generate_state(1, np.uint64)[0] >> 1)


def _to_cpu(value: Any) -> Any:
    """A copy of a (nested) optimizer state with every tensor on the CPU (for broadcasting)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _append_history(path: Path, record: dict[str, float]) -> None:
    lines = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, lines + json.dumps(record) + "\n")


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class _ProgressBar:
    """A rich progress bar (or nothing when disabled)."""

    def __init__(self, total: int, description: str, enabled: bool) -> None:
        self._progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(description, total=total, status="")

    def update(self, status: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, status=status)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
