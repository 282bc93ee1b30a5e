"""Examples -> :class:`~intentrec.structs.SequenceBatch`. The one function training, evaluation and serving share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from intentrec.config import ModelConfig
from intentrec.features.windows import gap_buckets, next_gap_buckets, relative_time, window_starts
from intentrec.structs import DataSpec, SequenceBatch

__all__ = ["CollateSettings", "Example", "collate"]


@dataclass(frozen=True)
class CollateSettings:
    """What collate needs to derive time fields (from the model config and the data spec)."""

    horizon_seconds: float | None
    """H of the short-term window (None = off)."""
    short_window_events: int
    """m: the window in events for untimed data."""
    timed: bool
    """Whether timestamps are real times."""
    gap_buckets: int
    """Number of gap buckets of the timestamp encoding."""
    numeric_dim: int
    """F, the number of numeric features."""
    attributes: tuple[tuple[str, int], ...]
    """(name, labels per event) of each categorical attribute: 0 = single-valued (n,), L = multi-valued (n, L)."""
    intents: tuple[str, ...]
    """Names of the intent attributes (targets)."""

    @classmethod
    def build(cls, cfg: ModelConfig, spec: DataSpec, label_widths: dict[str, int]) -> CollateSettings:
        """Settings for a model config and data spec; ``label_widths`` gives L of each multi-valued attribute."""
        return cls(
            horizon_seconds=cfg.horizon_seconds,
            short_window_events=cfg.short_window_events,
            timed=spec.timed,
            gap_buckets=cfg.gap_buckets,
            numeric_dim=len(spec.numeric),
            attributes=tuple((a.name, label_widths.get(a.name, 0) if a.multi_valued else 0) for a in spec.attributes),
            intents=tuple(a.name for a in spec.intents),
        )


@dataclass(frozen=True)
class Example:
    """One sequence window with next-step targets (numpy, unpadded, length l >= 1)."""

    item_idx: np.ndarray
    """(l,) int64 input items."""
    timestamps: np.ndarray
    """(l,) float64 input event times (or order indices when untimed)."""
    categorical: dict[str, np.ndarray]
    """name -> (l,) or (l, L) int64 attributes of the input events."""
    numeric: np.ndarray
    """(l, F) float32."""
    target_item: np.ndarray
    """(l,) int64 next item per position (0 = no target)."""
    target_intents: dict[str, np.ndarray]
    """intent -> (l,) or (l, L) int64 next label(s) per position (0 = none)."""
    target_weight: np.ndarray
    """(l,) float32 loss weight per position."""
    user_row: int = -1
    """Row of the user in EncodedSequences (-1 for live requests)."""
    next_time: np.ndarray | None = None
    """(l,) float64 when the prediction after each input event is asked for (the next event's time; a live
    request's time at its last event); NaN or None = unknown. Read only by ``model.request_gap``."""


def _pad_left(arrays: Sequence[np.ndarray], n: int, dtype: np.dtype, trailing: tuple[int, ...] = ()) -> np.ndarray:
    out = np.zeros((len(arrays), n, *trailing), dtype=dtype)  # (B, n, ...)
    for b, a in enumerate(arrays):
        if a.shape[0]:
            out[b, n - a.shape[0] :] = a
    return out


def collate(examples: Sequence[Example], settings: CollateSettings) -> SequenceBatch:
    """Left-pad examples to the longest one and derive the time fields.

    Args:
        examples: B examples (any lengths >= 1).
        settings: see :class:`CollateSettings`.

    Returns:
        A :class:`SequenceBatch` with n = the longest example.
    """
    n = max(int(e.item_idx.shape[0]) for e in examples)
    lengths = np.array([e.item_idx.shape[0] for e in examples])  # (B,)
    item_idx = _pad_left([e.item_idx for e in examples], n, np.int64)  # (B, n)
    valid = np.arange(n)[None, :] >= (n - lengths)[:, None]  # (B, n)

    hours, gaps, next_gaps, positions, starts = [], [], [], [], []
    for e in examples:
        ts = e.timestamps
        hours.append(relative_time(ts, settings.timed))
        gaps.append(gap_buckets(ts, settings.gap_buckets, settings.timed))
        nxt = np.full(ts.shape[0], np.nan) if e.next_time is None else e.next_time
        next_gaps.append(next_gap_buckets(ts, nxt, settings.gap_buckets, settings.timed))
        positions.append(np.arange(ts.shape[0], dtype=np.int64))
        starts.append(window_starts(ts, settings.horizon_seconds, settings.timed, settings.short_window_events))
    offset = (n - lengths)[:, None]  # (B, 1): window starts become column indices of the padded row
    window_start = _pad_left(starts, n, np.int64) + offset  # (B, n)
    window_start = np.where(valid, window_start, np.arange(n)[None, :])  # padding rows: the diagonal

    categorical: dict[str, torch.Tensor] = {}
    target_intents: dict[str, torch.Tensor] = {}
    for name, width in settings.attributes:
        trailing = (width,) if width else ()
        if name in examples[0].categorical:
            categorical[name] = torch.from_numpy(
                _pad_left([e.categorical[name] for e in examples], n, np.int64, trailing)
            )
        if name in settings.intents:
            target_intents[name] = torch.from_numpy(
                _pad_left([e.target_intents[name] for e in examples], n, np.int64, trailing)
            )

    return SequenceBatch(
        item_idx=torch.from_numpy(item_idx),
        valid=torch.from_numpy(valid),
        categorical=categorical,
        numeric=torch.from_numpy(
            _pad_left([e.numeric for e in examples], n, np.float32, (settings.numeric_dim,))
        ),  # (B, n, F)
        time_hours=torch.from_numpy(_pad_left(hours, n, np.float32)),
        gap_bucket=torch.from_numpy(_pad_left(gaps, n, np.int64)),
        next_gap_bucket=torch.from_numpy(_pad_left(next_gaps, n, np.int64)),
        position=torch.from_numpy(_pad_left(positions, n, np.int64)),
        window_start=torch.from_numpy(window_start),
        target_item=torch.from_numpy(_pad_left([e.target_item for e in examples], n, np.int64)),
        target_intents=target_intents,
        target_weight=torch.from_numpy(_pad_left([e.target_weight for e in examples], n, np.float32)),
        user_row=torch.tensor([e.user_row for e in examples], dtype=torch.long),
    )
