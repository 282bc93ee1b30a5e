"""AdamW with decay / no-decay parameter groups, and the learning-rate schedule (warm-up + cosine).

The schedule is a plain function of the step (nanoGPT style): the training loop sets
``group["lr"] = get_lr(step, ...)`` on every group before each optimiser step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["NO_DECAY_MODULES", "build_optimizer", "get_lr"]

NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)
"""Module types none of whose parameters are weight-decayed (embeddings and normalisation layers)."""


def _no_decay_param_ids(model: nn.Module) -> set[int]:
    """ids of parameters owned (directly) by an embedding or normalisation module."""
    ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, NO_DECAY_MODULES):
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``, split into two groups.

    * group 0, ``name="decay"``, ``weight_decay=weight_decay``: parameters with ``ndim >= 2`` (weights of
      ``nn.Linear`` and of other matrix-weight layers such as RNNs and attention projections) that are not owned
      by an embedding or normalisation module.
    * group 1, ``name="no_decay"``, ``weight_decay=0``: biases and other 1-D parameters, and every parameter
      of a module in :data:`NO_DECAY_MODULES` (``nn.Embedding``, ``nn.LayerNorm``, ...), detected by module
      type, not by parameter name.

    A parameter shared between modules (an output ``Linear`` tied to an ``Embedding``) appears once and
    follows the embedding: no decay. Frozen parameters (``requires_grad=False``) are left out. Group order
    and parameter order (``model.named_parameters()``) are deterministic, which the checkpoint relies on.

    Args:
        model: the module to optimise.
        lr: initial learning rate (the schedule overwrites it every step).
        weight_decay: decoupled weight decay of the ``decay`` group (>= 0).

    Returns:
        A ``torch.optim.AdamW`` with the two groups (either may be empty).

    Raises:
        ValueError: ``lr <= 0``, ``weight_decay < 0`` or no trainable parameters.

    Example:
        >>> m = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3), nn.LayerNorm(3))
        >>> opt = build_optimizer(m, lr=1e-3, weight_decay=0.01)
        >>> [(g["name"], len(g["params"]), g["weight_decay"]) for g in opt.param_groups]
        [('decay', 1, 0.01), ('no_decay', 4, 0.0)]
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    no_decay_ids = _no_decay_param_ids(model)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, param in model.named_parameters():  # shared parameters are yielded once
        if not param.requires_grad:
            continue
        if param.ndim >= 2 and id(param) not in no_decay_ids:
            decay.append(param)
        else:
            no_decay.append(param)
    if not decay and not no_decay:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    groups = [
        {"params": decay, "weight_decay": float(weight_decay), "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return torch.optim.AdamW(groups, lr=float(lr))


def get_lr(step: int, total_steps: int, peak_lr: float, warmup_steps: int, min_lr_ratio: float) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to ``min_lr_ratio * peak_lr``.

    * warm-up length ``w = min(warmup_steps, floor(0.1 * total_steps))``;
    * ``step < w``: ``peak_lr * step / w`` (0 at step 0, ``peak_lr`` at step ``w``);
    * ``w <= step <= total_steps``: ``min + (peak - min) * (1 + cos(pi * (step - w) / (total_steps - w))) / 2``;
    * ``step > total_steps``: ``min_lr_ratio * peak_lr`` (clamped).

    Args:
        step: optimiser steps taken so far (>= 0).
        total_steps: planned number of optimiser steps (>= 1).
        peak_lr: the learning rate at the end of warm-up (> 0).
        warmup_steps: requested warm-up steps (>= 0); capped at 10% of ``total_steps``.
        min_lr_ratio: final learning rate as a fraction of ``peak_lr``, in [0, 1].

    Returns:
        The learning rate.

    Raises:
        ValueError: an argument outside its range.

    Example:
        >>> get_lr(0, 100, 1.0, 10, 0.1), get_lr(5, 100, 1.0, 10, 0.1), get_lr(10, 100, 1.0, 10, 0.1)
        (0.0, 0.5, 1.0)
        >>> round(get_lr(100, 100, 1.0, 10, 0.1), 6), round(get_lr(10**6, 100, 1.0, 10, 0.1), 6)
        (0.1, 0.1)
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not peak_lr > 0:
        raise ValueError(f"peak_lr must be > 0, got {peak_lr}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    warmup = min(int(warmup_steps), int(0.1 * total_steps))
    min_lr = min_lr_ratio * peak_lr
    if step < warmup:
        return peak_lr * step / warmup
    if step >= total_steps:
        return min_lr
    progress = (step - warmup) / (total_steps - warmup)  # in [0, 1)
    return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
