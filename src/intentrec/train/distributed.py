"""Multi-process training under ``torchrun``: environment -> process group, global-batch sharding, the loss
normalisation that makes N processes train exactly like one, and rank-0-only side effects.

How a distributed run stays equal to a single-process run with the same ``train.batch_size``:

* **Same global batches everywhere.** Every rank draws the epoch's global batches from the same seeded
  ``bucketed_batches`` call, so the sequence of global batches depends on the seed and the epoch only, never on
  the world size (this is also why a run can resume with any number of processes). Rank ``r`` takes the windows
  ``batch[r::world_size]`` of each global batch (:func:`shard_batch`); no ``DistributedSampler`` is used because
  its per-rank shuffling would tie the batches to the world size. Every rank performs the same number of steps:
  a rank whose slice is empty (a global batch smaller than the world size) runs one window with its targets
  removed (:func:`without_targets`), contributing a zero gradient to DDP's all-reduce.
* **Global weighted means.** Each loss part is a weighted mean Σw·ℓ / Σw over the batch's target positions.
  DDP averages gradients over ranks, and the mean of per-rank means is not the global mean when ranks hold
  different weight sums. :func:`global_batch_loss` all-reduces each part's weight sum W and scales the rank's
  part by ``world_size · W_rank / W_global``, so the averaged gradient is exactly the gradient of the
  single-process loss; the logged parts are the global means a single process would log.
* **Rank 0 does the side effects.** Only rank 0 writes files, logs, shows progress, validates and tests; the
  others wait in :func:`broadcast_object` and receive its decisions (validation metrics, elapsed time), so
  early stopping and time budgets end every rank at the same epoch.

Nothing happens at import time: the environment is read by :meth:`DistributedContext.from_env` and the process
group created by :func:`init_distributed`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from intentrec.errors import ConfigError
from intentrec.structs import ModelOutput, SequenceBatch

__all__ = [
    "ENV_VARS",
    "DistributedContext",
    "GlobalLoss",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "global_batch_loss",
    "init_distributed",
    "local_loss",
    "rank_batches",
    "shard_batch",
    "shutdown",
    "without_targets",
    "wrap_model",
]

ENV_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
"""The variables ``torchrun`` sets for every worker (with ``MASTER_ADDR`` / ``MASTER_PORT`` for the rendezvous)."""

T = TypeVar("T")


class _LossOutput(Protocol):
    total: torch.Tensor
    parts: dict[str, torch.Tensor]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 .. world_size - 1).
        local_rank: rank on this node (picks the CUDA device).
        world_size: number of processes.
        device: the device this rank trains on.
        backend: ``"gloo"`` / ``"nccl"`` when a process group is in use, None for a plain single process.
        owns_group: True when :func:`init_distributed` created the process group (and :func:`shutdown` ends it).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that logs and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when a process group is in use (launched by ``torchrun``)."""
        return self.backend is not None

    @staticmethod
    def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
        """Whether the torchrun variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``) are set."""
        env = os.environ if environ is None else environ
        return any(name in env for name in ENV_VARS)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, device: torch.device | None = None
    ) -> DistributedContext:
        """Read ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (no process group is created).

        Args:
            environ: the environment (default ``os.environ``).
            device: the device of a single-process run (default CPU); under torchrun the caller picks the
                rank's device (:func:`init_distributed`).

        Returns:
            A single-process context (rank 0 of 1, no backend) when none of the variables is set, else the
            rank's position with ``backend`` still None.

        Raises:
            ConfigError: only some of the variables are set, or they are not consistent integers.

        Example:
            >>> ctx = DistributedContext.from_env({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
            >>> (ctx.rank, ctx.local_rank, ctx.world_size, ctx.is_main)
            (1, 1, 2, False)
            >>> DistributedContext.from_env({}).world_size
            1
        """
        env = os.environ if environ is None else environ
        base = cls(device=device if device is not None else torch.device("cpu"))
        if not cls.launched_by_torchrun(env):
            return base
        missing = [name for name in ENV_VARS if name not in env]
        if missing:
            raise ConfigError(
                f"distributed launch: {', '.join(missing)} not set (found {', '.join(n for n in ENV_VARS if n in env)}); "
                "launch with `torchrun --nproc-per-node N -m intentrec train ...` or `intentrec train --nproc N ...`, "
                "or unset the variables for a single process"
            )
        try:
            rank, local_rank, world = (int(env[name]) for name in ENV_VARS)
        except ValueError:
            raise ConfigError(
                "distributed launch: RANK, LOCAL_RANK and WORLD_SIZE must be integers, got "
                + ", ".join(f"{n}={env[n]!r}" for n in ENV_VARS)
            ) from None
        if world < 1 or not 0 <= rank < world or local_rank < 0:
            raise ConfigError(
                f"distributed launch: need WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0, got "
                f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world}"
            )
        return replace(base, rank=rank, local_rank=local_rank, world_size=world)


def init_distributed(device: torch.device, timeout_minutes: float = 60.0) -> DistributedContext:
    """Join the process group when launched by ``torchrun``; a plain process gets a single-process context.

    The backend is NCCL when ``device`` is CUDA (each rank then trains on ``cuda:LOCAL_RANK``) and gloo on CPU.
    An existing process group (e.g. created by the caller's own script) is reused and left open.

    Args:
        device: the resolved ``train.device`` (``cpu`` or ``cuda``).
        timeout_minutes: how long a rank waits at a collective; ranks wait while rank 0 prepares data and
            validates, so this must exceed the longest of those.

    Returns:
        The rank's :class:`DistributedContext`.

    Raises:
        ConfigError: bad torchrun variables, or more ranks on a node than visible CUDA devices.
    """
    ctx = DistributedContext.from_env(device=device)
    if not DistributedContext.launched_by_torchrun():
        return ctx
    if device.type == "cuda":
        n_gpus = torch.cuda.device_count()
        if ctx.local_rank >= n_gpus:
            raise ConfigError(
                f"LOCAL_RANK {ctx.local_rank} needs CUDA device {ctx.local_rank} but only {n_gpus} are visible: "
                f"use --nproc-per-node <= {n_gpus} (one process per GPU), or train.device=cpu"
            )
        torch.cuda.set_device(ctx.local_rank)
        ctx = replace(ctx, device=torch.device("cuda", ctx.local_rank))
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {}
        if backend == "nccl":
            kwargs["device_id"] = ctx.device  # bind the communicator to this rank's GPU
        dist.init_process_group(backend, init_method="env://", rank=ctx.rank, world_size=ctx.world_size,
                                timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
        owns = True
    elif dist.get_world_size() != ctx.world_size or dist.get_rank() != ctx.rank:
        raise ConfigError(
            f"the existing process group (rank {dist.get_rank()} of {dist.get_world_size()}) does not match "
            f"RANK={ctx.rank} / WORLD_SIZE={ctx.world_size}"
        )
    else:
        backend = str(dist.get_backend())
    return replace(ctx, backend=backend, owns_group=owns)


def shutdown(ctx: DistributedContext) -> None:
    """Destroy the process group created by :func:`init_distributed` (no-op otherwise)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistributedContext) -> None:
    """Wait for every rank (no-op for a single process)."""
    if not ctx.enabled:
        return
    if ctx.backend == "nccl":
        dist.barrier(device_ids=[ctx.local_rank])
    else:
        dist.barrier()


def broadcast_object(ctx: DistributedContext, obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (picklable values only; returned unchanged for a single process)."""
    if not ctx.enabled:
        return obj
    box = [obj if ctx.rank == src else None]
    dist.broadcast_object_list(box, src=src, device=ctx.device if ctx.backend == "nccl" else None)
    return box[0]  # type: ignore[return-value]


def all_reduce_sum(ctx: DistributedContext, tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks, in place (on the rank's device for NCCL); unchanged for one process."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap_model(model: nn.Module, ctx: DistributedContext) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model``.

    DDP broadcasts rank 0's parameters and buffers at construction (so a state loaded on rank 0 alone reaches
    every rank) and averages gradients in the backward pass. Every parameter must receive a gradient at every
    step (true for all models here: a batch without targets still back-propagates zeros through every head), so
    ``find_unused_parameters`` stays off; the item head is called by the loss outside ``forward``, which DDP's
    gradient hooks handle because they fire on the parameters, not on the forward graph.
    """
    if not ctx.enabled:
        return model
    device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)


# ------------------------------------------------------------------------------------------------------
# sharding of global batches
# ------------------------------------------------------------------------------------------------------


def shard_batch(indices: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s windows of one global batch: ``indices[rank::world_size]`` (empty when the batch is smaller
    than the world size). Strided, so every rank gets a similar mix of the (length-sorted) windows.

    Example:
        >>> import numpy as np
        >>> [shard_batch(np.arange(5), r, 2).tolist() for r in range(2)]
        [[0, 2, 4], [1, 3]]
    """
    return indices[rank::world_size]


def without_targets(batch: SequenceBatch) -> SequenceBatch:
    """The same inputs with every target and weight zeroed: a forward/backward with zero loss and zero gradients
    (what a rank with an empty slice of a global batch runs, so it still joins the gradient all-reduce)."""
    return replace(
        batch,
        target_item=torch.zeros_like(batch.target_item),
        target_intents={k: torch.zeros_like(v) for k, v in batch.target_intents.items()},
        target_weight=torch.zeros_like(batch.target_weight),
    )


def rank_batches(
    dataset: Dataset[Any], global_batches: Sequence[np.ndarray], collate_fn: Any, ctx: DistributedContext,
    num_workers: int = 0,
) -> Iterator[SequenceBatch]:
    """Collate this rank's slice of every global batch (one batch per global batch, on every rank).

    For a single process this is ``DataLoader(dataset, batch_sampler=global_batches, collate_fn=collate_fn)``;
    ``num_workers`` worker processes build the batches ahead (pinned memory on CUDA).
    """
    slices = [shard_batch(b, ctx.rank, ctx.world_size) for b in global_batches]
    sampler = [s if s.size else b[:1] for s, b in zip(slices, global_batches, strict=True)]  # empty -> placeholder
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
                        pin_memory=num_workers > 0 and ctx.device.type == "cuda",
                        persistent_workers=False)
    for s, batch in zip(slices, loader, strict=True):
        yield batch if s.size else without_targets(batch)


# ------------------------------------------------------------------------------------------------------
# loss normalisation across ranks
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GlobalLoss:
    """One training step's loss, seen from one rank.

    Attributes:
        objective: the scalar this rank back-propagates (after DDP's gradient averaging, the gradient of the
            global-batch loss).
        total: the global-batch total loss, as a single process would log it.
        parts: the global-batch loss parts (``"item"``, ``"intent/<name>"``), as a single process would log them.
        n_targets: item targets in the global batch.
    """

    objective: torch.Tensor
    total: float
    parts: dict[str, float]
    n_targets: int


def local_loss(loss: _LossOutput, batch: SequenceBatch) -> GlobalLoss:
    """A single process's :class:`GlobalLoss`: the loss itself."""
    return GlobalLoss(
        objective=loss.total,
        total=float(loss.total.detach()),
        parts={name: float(value.detach()) for name, value in loss.parts.items()},
        n_targets=int((batch.target_item > 0).sum()),
    )


def _part_weight(name: str, output: ModelOutput, batch: SequenceBatch) -> torch.Tensor:
    """Σ w over the positions a loss part averages (the selection of ``IntentRecLoss``)."""
    weight = batch.target_weight.reshape(-1).float()  # (B·n,)
    if name == "item":
        if output.item_loss_weight is not None:
            weight = weight * output.item_loss_weight.reshape(-1).float()  # (B·n,)
        keep = (batch.target_item.reshape(-1) > 0) & (weight > 0)  # (B·n,)
        return weight[keep].sum()
    intent = name.removeprefix("intent/")
    if not name.startswith("intent/") or intent not in batch.target_intents:
        raise ConfigError(
            f"distributed training normalises the loss parts 'item' and 'intent/<name>' of IntentRecLoss; the loss "
            f"returned an unknown part {name!r}"
        )
    target = batch.target_intents[intent]  # (B, n) or (B, n, L)
    keep = (target > 0).any(dim=-1) if target.dim() == 3 else target > 0  # (B, n)
    return weight[keep.reshape(-1)].sum()


def global_batch_loss(
    loss: _LossOutput, output: ModelOutput, batch: SequenceBatch, lambda_intent: float, ctx: DistributedContext
) -> GlobalLoss:
    """Rescale one rank's ``IntentRecLoss`` so that DDP's averaged gradient is the global-batch gradient.

    Each part p is a weighted mean L_p = N_p / W_p (N_p = Σ w·ℓ, W_p = Σ w over the rank's positions). With
    W_p^global = Σ_ranks W_p (one all-reduce, together with the logged numerators and the target count), the rank
    back-propagates Σ_p c_p · L_p · world_size · W_p / W_p^global (c_item = 1, c_intent = λ): averaged over the
    ranks, that is the gradient of Σ_p c_p · N_p^global / W_p^global, the loss of one process on the whole
    global batch. A part with no weight anywhere contributes 0, as in a single process.

    Args:
        loss: this rank's ``LossOutput`` (``total`` = item + λ Σ intents, ``parts`` by name).
        output: the model output the loss was computed from (``item_loss_weight``).
        batch: this rank's batch.
        lambda_intent: λ of the loss.
        ctx: the distributed context (a single process returns :func:`local_loss`).

    Returns:
        The :class:`GlobalLoss` of the step.

    Raises:
        ConfigError: a loss part is neither ``item`` nor ``intent/<name>`` of an intent in the batch.
    """
    if not ctx.enabled:
        return local_loss(loss, batch)
    names = list(loss.parts)
    device = loss.total.device
    weights = torch.stack([_part_weight(n, output, batch).to(device, torch.float64) for n in names])  # (K,)
    numerators = torch.stack([loss.parts[n].detach().to(torch.float64) for n in names]) * weights  # (K,)
    n_targets = (batch.target_item > 0).sum().to(device, torch.float64).reshape(1)  # (1,)
    reduced = all_reduce_sum(ctx, torch.cat([weights, numerators, n_targets]))  # (2K + 1,)
    local_w = weights.tolist()
    global_w, global_n = reduced[: len(names)].tolist(), reduced[len(names) : 2 * len(names)].tolist()

    objective = loss.total.new_zeros(())
    parts: dict[str, float] = {}
    for name, w, w_all, n_all in zip(names, local_w, global_w, global_n, strict=True):
        coef = 1.0 if name == "item" else lambda_intent
        scale = ctx.world_size * w / w_all if w_all > 0 else 0.0
        objective = objective + coef * scale * loss.parts[name]
        parts[name] = n_all / w_all if w_all > 0 else 0.0
    total = sum(v if n == "item" else lambda_intent * v for n, v in parts.items())
    return GlobalLoss(objective=objective, total=float(total), parts=parts, n_targets=int(reduced[-1].item()))
