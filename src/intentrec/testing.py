"""Helpers for tests and examples: synthetic data specs and model-ready batches.

Nothing here runs at import time; every function is deterministic given its ``seed``.

* :func:`random_spec` — a small :class:`~intentrec.structs.DataSpec` (single- and multi-label intents, an
  input-only attribute, numeric features; timed or untimed).
* :func:`random_batch` — a valid left-padded :class:`~intentrec.structs.SequenceBatch` for a spec, with
  consistent ``valid`` / ``position`` / ``gap_bucket`` / ``time_hours`` / ``window_start`` and next-step targets.
* :func:`with_left_padding` — the same batch with extra padding columns on the left.
* :func:`tiny_model_config` — a :class:`~intentrec.config.ModelConfig` small enough for CPU tests (seconds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from intentrec.config import ModelConfig
from intentrec.structs import AttributeSpec, DataSpec, SequenceBatch

__all__ = [
    "OverfitResult",
    "overfit",
    "random_batch",
    "random_spec",
    "score_every_position",
    "tiny_model_config",
    "with_left_padding",
]

DEFAULT_INTENTS: tuple[tuple[str, int, bool], ...] = (("action", 6, False), ("genre", 8, True))
"""(name, n_classes incl. PAD and other, multi_valued) of the default intents of :func:`random_spec`."""
DEFAULT_INPUTS: tuple[tuple[str, int, bool], ...] = (("country", 5, False),)
"""(name, n_classes, multi_valued) of the default input-only attributes of :func:`random_spec`."""


def random_spec(
    n_items: int = 40,
    *,
    timed: bool = True,
    intents: Sequence[tuple[str, int, bool]] = DEFAULT_INTENTS,
    inputs: Sequence[tuple[str, int, bool]] = DEFAULT_INPUTS,
    n_numeric: int = 2,
    intents_as_input: bool = True,
) -> DataSpec:
    """A small synthetic data spec.

    Args:
        n_items: item vocabulary size I (incl. PAD and UNK).
        timed: whether timestamps are real times.
        intents: (name, n_classes, multi_valued) of each intent attribute.
        inputs: (name, n_classes, multi_valued) of each input-only attribute.
        n_numeric: number of numeric input features (named ``num0``, ``num1``, ...).
        intents_as_input: whether intent attributes are also input features (PAPER §3.2 "used as both").

    Returns:
        The spec; intents come first in ``attributes``, then input-only attributes.

    Example:
        >>> spec = random_spec(n_items=10)
        >>> [a.name for a in spec.intents], [a.name for a in spec.inputs], spec.numeric
        (['action', 'genre'], ['action', 'genre', 'country'], ('num0', 'num1'))
    """
    attributes = [
        AttributeSpec(name, k, multi, is_input=intents_as_input, is_intent=True) for name, k, multi in intents
    ]
    attributes += [AttributeSpec(name, k, multi, is_input=True, is_intent=False) for name, k, multi in inputs]
    return DataSpec(
        n_items=n_items,
        attributes=tuple(attributes),
        numeric=tuple(f"num{j}" for j in range(n_numeric)),
        timed=timed,
        dataset="synthetic",
    )


def _gap_bucket(gap_seconds: float, n_buckets: int) -> int:
    """1 + floor(log2(1 + gap in minutes)), capped at ``n_buckets - 1`` (0 is kept for first event/padding)."""
    return int(min(n_buckets - 1, 1 + math.floor(math.log2(1.0 + gap_seconds / 60.0))))


def random_batch(
    spec: DataSpec,
    batch_size: int,
    length: int,
    seed: int,
    pad_left: int | Sequence[int] | None = None,
    *,
    horizon_seconds: float | None = 7 * 86400.0,
    short_window_events: int = 10,
    gap_buckets: int = 32,
    max_labels: int = 3,
) -> SequenceBatch:
    """A valid, left-padded batch of random events for ``spec``.

    Each row holds ``length - pad_left[b]`` real events followed by one more (held-out) event that provides the
    last target; every real position has targets (the labels of the next event) and a positive weight.
    Times: random gaps from minutes to weeks; ``time_hours`` counts from the row's first event (the event order
    when ``spec.timed`` is False). ``window_start`` is the column of the earliest event with T_k - T_i <= H
    (timed data; the first event when ``horizon_seconds`` is None) or of the event ``short_window_events - 1``
    before k (untimed); at padding it is the column itself.

    Args:
        spec: sizes and attributes.
        batch_size: B.
        length: n (columns).
        seed: random seed.
        pad_left: padding columns per row: an int for all rows, one int per row, or None for random
            (0 .. length - 1). ``length`` gives an all-padding row.
        horizon_seconds: H of the short-term window for timed data.
        short_window_events: m, the window of untimed data.
        gap_buckets: number of gap buckets (values lie in [0, gap_buckets)).
        max_labels: L, the label slots of multi-valued attributes.

    Returns:
        The batch (CPU tensors).

    Raises:
        ValueError: a padding count is outside [0, length].
    """
    rng = np.random.default_rng(seed)
    B, n = batch_size, length
    if pad_left is None:
        pads = rng.integers(0, n, size=B)
    elif isinstance(pad_left, int):
        pads = np.full(B, pad_left)
    else:
        pads = np.asarray(pad_left, dtype=np.int64)
    if pads.shape != (B,) or (pads < 0).any() or (pads > n).any():
        raise ValueError(f"pad_left must be an int or {B} ints in [0, {n}], got {pad_left!r}")

    item_idx = np.zeros((B, n), np.int64)
    valid = np.zeros((B, n), bool)
    time_hours = np.zeros((B, n), np.float32)
    gap_bucket = np.zeros((B, n), np.int64)
    next_gap_bucket = np.zeros((B, n), np.int64)
    position = np.zeros((B, n), np.int64)
    window_start = np.tile(np.arange(n, dtype=np.int64), (B, 1))
    target_item = np.zeros((B, n), np.int64)
    target_weight = np.zeros((B, n), np.float32)
    numeric = np.zeros((B, n, len(spec.numeric)), np.float32)

    def labels(a: AttributeSpec, count: int) -> np.ndarray:
        if not a.multi_valued:
            return rng.integers(1, a.n_classes, size=count)  # (count,)
        out = np.zeros((count, max_labels), np.int64)  # (count, L)
        for e in range(count):
            k = int(rng.integers(1, min(max_labels, a.n_classes - 1) + 1))
            out[e, :k] = rng.choice(np.arange(1, a.n_classes), size=k, replace=False)
        return out

    def zeros(a: AttributeSpec) -> np.ndarray:
        return np.zeros((B, n, max_labels) if a.multi_valued else (B, n), np.int64)  # (B, n) or (B, n, L)

    categorical = {a.name: zeros(a) for a in spec.inputs}
    target_intents = {a.name: zeros(a) for a in spec.intents}

    for b in range(B):
        start = int(pads[b])
        real = n - start
        if real == 0:
            continue
        cols = np.arange(start, n)  # (real,)
        events = real + 1  # the last one is only a target
        items = rng.integers(2, spec.n_items, size=events)  # (real + 1,)
        # gaps: minutes, hours, days or weeks
        scale = rng.choice([120.0, 7200.0, 86400.0, 8 * 86400.0], size=events)
        gaps = rng.exponential(scale)  # (real + 1,)
        gaps[0] = 0.0
        times = np.cumsum(gaps) if spec.timed else np.arange(events, dtype=np.float64)  # (real + 1,) seconds/order

        item_idx[b, cols] = items[:real]
        valid[b, cols] = True
        position[b, cols] = np.arange(real)
        time_hours[b, cols] = (times[:real] - times[0]) / (3600.0 if spec.timed else 1.0)
        if spec.timed:
            gap_bucket[b, cols[1:]] = [_gap_bucket(g, gap_buckets) for g in gaps[1:real]]
            next_gap_bucket[b, cols] = [_gap_bucket(g, gap_buckets) for g in gaps[1:]]  # to the target's time
        else:
            gap_bucket[b, cols[1:]] = 1
            next_gap_bucket[b, cols] = 1
        for j in range(real):
            if spec.timed:
                if horizon_seconds is None:
                    first = 0
                else:
                    first = int(np.searchsorted(times[:real], times[j] - horizon_seconds, side="left"))
            else:
                first = max(0, j - short_window_events + 1)
            window_start[b, start + j] = start + first
        target_item[b, cols] = items[1:]
        target_weight[b, cols] = rng.uniform(0.2, 2.0, size=real)
        numeric[b, cols] = rng.uniform(0.0, 1.0, size=(real, len(spec.numeric)))

        for a in spec.attributes:
            event_labels = labels(a, events)  # (real + 1,) or (real + 1, L)
            if a.is_input:
                categorical[a.name][b, cols] = event_labels[:real]
            if a.is_intent:
                target_intents[a.name][b, cols] = event_labels[1:]

    return SequenceBatch(
        item_idx=torch.from_numpy(item_idx),
        valid=torch.from_numpy(valid),
        categorical={k: torch.from_numpy(v) for k, v in categorical.items()},
        numeric=torch.from_numpy(numeric),
        time_hours=torch.from_numpy(time_hours),
        gap_bucket=torch.from_numpy(gap_bucket),
        next_gap_bucket=torch.from_numpy(next_gap_bucket),
        position=torch.from_numpy(position),
        window_start=torch.from_numpy(window_start),
        target_item=torch.from_numpy(target_item),
        target_intents={k: torch.from_numpy(v) for k, v in target_intents.items()},
        target_weight=torch.from_numpy(target_weight),
        user_row=torch.arange(B),
    )


def with_left_padding(batch: SequenceBatch, extra: int) -> SequenceBatch:
    """The same events with ``extra`` more padding columns on the left (``window_start`` shifted to match).

    Args:
        batch: a left-padded batch.
        extra: padding columns to add (>= 0).

    Returns:
        A batch of length n + extra whose last n columns equal ``batch`` (``window_start`` + extra).
    """

    def pad(t: torch.Tensor) -> torch.Tensor:
        shape = (t.shape[0], extra, *t.shape[2:])
        return torch.cat([torch.zeros(shape, dtype=t.dtype), t], dim=1)  # (B, n + extra, ...)

    n = batch.item_idx.shape[1]
    new_cols = torch.arange(extra).expand(batch.batch_size, extra)  # (B, extra) padding: the column itself
    return replace(
        batch,
        item_idx=pad(batch.item_idx),
        valid=pad(batch.valid),
        categorical={k: pad(v) for k, v in batch.categorical.items()},
        numeric=pad(batch.numeric),
        time_hours=pad(batch.time_hours),
        gap_bucket=pad(batch.gap_bucket),
        next_gap_bucket=pad(batch.next_gap_bucket),
        position=pad(batch.position),
        window_start=torch.cat([new_cols, batch.window_start + extra], dim=1)[:, : n + extra],  # (B, n + extra)
        target_item=pad(batch.target_item),
        target_intents={k: pad(v) for k, v in batch.target_intents.items()},
        target_weight=pad(batch.target_weight),
    )


def tiny_model_config(**overrides: object) -> ModelConfig:
    """A tiny :class:`ModelConfig` for CPU tests (D = 32, 1 layer, 2 heads, dropout 0); keys override it.

    Example:
        >>> tiny_model_config(variant="V2").d_model
        32
    """
    values: dict[str, object] = {
        "d_model": 32,
        "n_layers": 1,
        "n_heads": 2,
        "ffn_mult": 2,
        "dropout": 0.0,
        "item_emb_dim": 16,
        "cat_emb_dim": 8,
        "d_proj": 16,
        "d_short": 16,
        "short_heads": 2,
        "max_len": 32,
        "gap_buckets": 32,
    }
    values.update(overrides)
    return ModelConfig.model_validate(values)


@dataclass(frozen=True)
class OverfitResult:
    """What :func:`overfit` measured."""

    first_loss: float
    """Training loss of the first step."""
    last_train_loss: float
    """Training-mode loss of the last step."""
    eval_loss: float
    """Loss on the same batch in eval mode after training."""
    item_accuracy: float
    """Top-1 item accuracy at the target positions the eval-mode loss counts (all of them unless the model gives an
    ``item_loss_weight``, e.g. BERT4Rec: the last column)."""
    intent_accuracy: dict[str, float]
    """Top-1 accuracy of every single-label intent head (eval mode)."""


def overfit(model: torch.nn.Module, batch: SequenceBatch, steps: int, lr: float = 1e-2) -> OverfitResult:
    """Train ``model`` with Adam on one fixed batch (L = item + 0.3 Σ intent) and measure how well it memorised it.

    Used by the "a tiny model overfits a tiny dataset" tests of every architecture.
    """
    from intentrec.model import IntentRecLoss, score_positions  # the testing layer may import any stage

    loss_fn = IntentRecLoss(0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    model.train()
    for _ in range(steps):
        loss = loss_fn(model, model(batch), batch)
        optimizer.zero_grad()
        loss.total.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.total.detach()))
    model.eval()
    with torch.no_grad():
        out = model(batch)
        final = float(loss_fn(model, out, batch).total)
        sel = batch.target_item > 0  # (B, n)
        if out.item_loss_weight is not None:
            sel = sel & (out.item_loss_weight > 0)  # (B, n) only where the model predicts (BERT4Rec: last column)
        rows, cols = sel.nonzero(as_tuple=True)  # (P,), (P,)
        predicted = score_positions(model, out, batch, rows, cols).argmax(dim=-1)  # (P,)
        item_acc = float((predicted == batch.target_item[sel]).float().mean())
        intents = {
            name: float((logits[sel].argmax(dim=-1) == batch.target_intents[name][sel]).float().mean())
            for name, logits in out.intent_logits.items()
            if batch.target_intents[name].dim() == 2
        }
    return OverfitResult(losses[0], losses[-1], final, item_acc, intents)


def score_every_position(model: torch.nn.Module, batch: SequenceBatch) -> torch.Tensor:
    """(B, n, I) :func:`intentrec.model.score_positions` at every position of ``batch`` (head and repeat boosts).

    Example:
        >>> from intentrec.model import build_model
        >>> spec = random_spec(n_items=10)
        >>> model = build_model(tiny_model_config(), spec).eval()
        >>> tuple(score_every_position(model, random_batch(spec, 2, 5, seed=0)).shape)
        (2, 5, 10)
    """
    from intentrec.model import score_positions  # the testing layer may import any stage

    out = model(batch)
    B, n = batch.item_idx.shape
    rows = torch.arange(B).repeat_interleave(n)  # (B·n,)
    cols = torch.arange(n).repeat(B)  # (B·n,)
    return score_positions(model, out, batch, rows, cols).reshape(B, n, -1)  # (B, n, I)
