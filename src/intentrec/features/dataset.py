"""Torch datasets over :class:`~intentrec.structs.EncodedSequences`: training windows and evaluation targets."""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from intentrec.features.collate import Example
from intentrec.structs import EncodedSequences
from intentrec.vocab import UNK_IDX

__all__ = ["EvalTargets", "TrainingWindows", "bucketed_batches", "duration_weights", "example_from_events"]

DurationMode = Literal["target", "input", "none"]


def duration_weights(duration: np.ndarray, median: float, mode: DurationMode) -> np.ndarray:
    """Loss weight d_k per target from the engagement column (PAPER §4, §10 #12).

    ``clip(duration / median, 0.1, 10)``; the loss normalises by the weight sum, so only ratios matter.

    Args:
        duration: (l,) engagement of the events whose duration defines each weight.
        median: the training median (the unit weight).
        mode: ``none`` returns ones.

    Example:
        >>> duration_weights(np.array([1.0, 4.0, 1000.0, 0.0]), 2.0, "target").tolist()
        [0.5, 2.0, 10.0, 0.10000000149011612]
    """
    if mode == "none":
        return np.ones(duration.shape[0], dtype=np.float32)
    scale = median if median > 0 else 1.0
    return np.clip(duration / scale, 0.1, 10.0).astype(np.float32)


def example_from_events(
    data: EncodedSequences,
    user_row: int,
    start: int,
    end: int,
    target_positions: Literal["all", "last"],
    duration_mode: DurationMode,
) -> Example:
    """Inputs = user events ``[start, end - 1)``; targets = events ``[start + 1, end)`` (the next event of each input).

    With ``target_positions == "last"`` only the final input position carries targets (evaluation).
    Items unknown to the vocabulary are never item targets (their intent labels still are).
    """
    base = int(data.offsets[user_row])
    inp = slice(base + start, base + end - 1)
    tgt = slice(base + start + 1, base + end)
    target_item = data.item_idx[tgt].copy()  # (l,)
    target_item[target_item == UNK_IDX] = 0
    target_intents = {a.name: data.categorical[a.name][tgt].copy() for a in data.spec.intents}
    weight_source = data.duration[tgt] if duration_mode == "target" else data.duration[inp]
    weight = duration_weights(weight_source, data.duration_median, duration_mode)  # (l,)
    if target_positions == "last":
        target_item[:-1] = 0
        for arr in target_intents.values():
            arr[:-1] = 0
        weight[:-1] = 0.0
    weight[(target_item == 0) & ~_any_intent_target(target_intents)] = 0.0
    return Example(
        item_idx=data.item_idx[inp],
        timestamps=data.timestamps[inp],
        categorical={a.name: data.categorical[a.name][inp] for a in data.spec.inputs},
        numeric=data.numeric[inp],
        target_item=target_item,
        target_intents=target_intents,
        target_weight=weight,
        user_row=user_row,
        next_time=data.timestamps[tgt],
    )


def _any_intent_target(target_intents: dict[str, np.ndarray]) -> np.ndarray:
    out: np.ndarray | None = None
    for arr in target_intents.values():
        has = arr > 0 if arr.ndim == 1 else (arr > 0).any(axis=1)
        out = has if out is None else (out | has)
    if out is None:
        return np.zeros(0, dtype=bool)
    return out


class TrainingWindows(Dataset[Example]):
    """Every training event as a target exactly once: each user's training prefix cut into windows of n + 1.

    Windows tile the prefix from its end: ``[e - n - 1, e)``, then ``[e' - n - 1, e')`` with ``e' = e - n``, ...
    so that every event at position >= 1 of the prefix is a target once, with up to n events of context.
    """

    def __init__(self, data: EncodedSequences, max_len: int, duration_mode: DurationMode) -> None:
        self.data = data
        self.duration_mode: DurationMode = duration_mode
        windows: list[tuple[int, int, int]] = []
        for u, length in enumerate(data.split.train_len.tolist()):
            end = int(length)
            while end >= 2:
                start = max(0, end - max_len - 1)
                windows.append((u, start, end))
                end = start + 1
        self.windows = np.asarray(windows, dtype=np.int64).reshape(-1, 3)  # (W, 3)

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def __getitem__(self, i: int) -> Example:
        u, start, end = (int(x) for x in self.windows[i])
        return example_from_events(self.data, u, start, end, "all", self.duration_mode)

    @property
    def lengths(self) -> np.ndarray:
        """(W,) input length of every window."""
        return self.windows[:, 2] - self.windows[:, 1] - 1

    @property
    def n_targets(self) -> int:
        """Number of training targets (positions with a next event)."""
        return int(self.lengths.sum())


class EvalTargets(Dataset[Example]):
    """One example per evaluation target (user_row, position): the latest n events before it, target last."""

    def __init__(self, data: EncodedSequences, targets: np.ndarray, max_len: int) -> None:
        self.data = data
        self.targets = np.asarray(targets, dtype=np.int64).reshape(-1, 2)  # (T, 2)
        self.max_len = max_len

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, i: int) -> Example:
        u, p = (int(x) for x in self.targets[i])
        return example_from_events(self.data, u, max(0, p - self.max_len), p + 1, "last", "none")


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket_batches: int = 50
) -> list[np.ndarray]:
    """Shuffled batches of similar-length examples (length bucketing: far less padding).

    Examples are shuffled, cut into chunks of ``batch_size * bucket_batches``, sorted by length inside each
    chunk, split into batches, and the batches are shuffled again. Every example appears exactly once.

    Args:
        lengths: (W,) example lengths.
        batch_size: examples per batch.
        rng: the epoch's random generator.
        bucket_batches: batches per sorting chunk (1 = plain shuffling).

    Returns:
        A list of (<= batch_size,) int64 index arrays.
    """
    perm = rng.permutation(lengths.shape[0])  # (W,)
    chunk = batch_size * max(1, bucket_batches)
    batches: list[np.ndarray] = []
    for start in range(0, perm.shape[0], chunk):
        idx = perm[start : start + chunk]
        idx = idx[np.argsort(lengths[idx], kind="stable")]  # similar lengths side by side
        batches.extend(idx[i : i + batch_size] for i in range(0, idx.shape[0], batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]
