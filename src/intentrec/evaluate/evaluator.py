"""Evaluate a model (and untrained score baselines: popularity, heuristics) on validation or test targets.

Protocol (EVALUATION.md): every item in the catalogue is scored (PAD/UNK excluded); ties count against the
model; the seen-item filter removes items the user engaged with before the target (never the target);
per-target values are kept for significance tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from intentrec.evaluate.metrics import (
    accuracy,
    hit_at_k,
    macro_f1,
    mrr,
    multilabel_average_precision,
    multilabel_recall_at_k,
    ndcg_at_k,
    summarize,
)
from intentrec.evaluate.ranking import target_ranks
from intentrec.model import score_positions
from intentrec.structs import EncodedSequences, SequenceBatch
from intentrec.vocab import PAD_IDX, UNK_IDX

__all__ = [
    "MetricReport",
    "evaluate_model",
    "evaluate_popularity",
    "evaluate_scores",
    "intent_label_counts",
    "item_popularity",
]

TIE_POLICY = "ties count against the model: rank = 1 + #higher + #other items with an equal score"


@dataclass
class MetricReport:
    """Metrics of one model on one set of targets."""

    item: dict[str, float]
    """Item ranking metrics: hr@k, recall@k, ndcg@k, mrr."""
    intents: dict[str, dict[str, float]]
    """Per intent: accuracy + macro_f1 (single-label) or recall@k + map (multi-label)."""
    n_targets: int
    """Number of ranked targets."""
    per_target: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-target values (ndcg@10, hr@10, mrr, rank) in target order, for paired tests."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary (per-target arrays excluded)."""
        return {"item": self.item, "intents": self.intents, "n_targets": self.n_targets}


def item_popularity(data: EncodedSequences) -> np.ndarray:
    """(I,) float64 training-event counts of every item (the popularity baseline's scores)."""
    counts = np.zeros(data.spec.n_items, dtype=np.float64)
    for u in range(data.n_users):
        s = data.user_slice(u)
        idx = data.item_idx[s.start : s.start + int(data.split.train_len[u])]
        np.add.at(counts, idx, 1.0)
    counts[PAD_IDX] = counts[UNK_IDX] = 0.0
    return counts


def intent_label_counts(data: EncodedSequences) -> dict[str, np.ndarray]:
    """Per intent, (d_i,) training counts of each label (majority-label baseline and macro-F1 label set)."""
    train_rows = np.concatenate(
        [np.arange(data.offsets[u], data.offsets[u] + data.split.train_len[u]) for u in range(data.n_users)]
    ).astype(np.int64)
    out: dict[str, np.ndarray] = {}
    for a in data.spec.intents:
        labels = data.categorical[a.name][train_rows]
        out[a.name] = np.bincount(labels.reshape(-1), minlength=a.n_classes).astype(np.float64)
        out[a.name][PAD_IDX] = 0.0
    return out


def _seen_mask(data: EncodedSequences, targets: np.ndarray, n_items: int) -> torch.Tensor:
    mask = torch.zeros((targets.shape[0], n_items), dtype=torch.bool)  # (P, I)
    for row, (u, p) in enumerate(targets.tolist()):
        start = int(data.offsets[u])
        mask[row, torch.as_tensor(np.array(data.item_idx[start : start + p]))] = True
    return mask


class _Accumulator:
    """Collects ranks and intent predictions batch by batch."""

    def __init__(self, data: EncodedSequences, label_counts: dict[str, np.ndarray]) -> None:
        self.data = data
        self.label_counts = label_counts
        self.ranks: list[torch.Tensor] = []
        self.intent_pred: dict[str, list[np.ndarray]] = {a.name: [] for a in data.spec.intents}
        self.intent_true: dict[str, list[np.ndarray]] = {a.name: [] for a in data.spec.intents}
        self.intent_scores: dict[str, list[np.ndarray]] = {a.name: [] for a in data.spec.intents}

    def add_items(self, ranks: torch.Tensor) -> None:
        self.ranks.append(ranks.cpu())

    def add_intent(self, name: str, scores: torch.Tensor, target: torch.Tensor) -> None:
        """scores (P, d_i) at the evaluated positions; target (P,) or (P, L)."""
        self.intent_scores[name].append(scores.float().cpu().numpy())
        self.intent_pred[name].append(scores.argmax(-1).cpu().numpy())
        self.intent_true[name].append(target.cpu().numpy())

    def report(self, ks: tuple[int, ...], intent_topk: int) -> MetricReport:
        ranks = torch.cat(self.ranks).numpy() if self.ranks else np.zeros(0, dtype=np.int64)
        item = summarize(ranks, ks) if ranks.size else {}
        per_target = {"rank": ranks}
        if ranks.size:
            per_target.update({"ndcg@10": ndcg_at_k(ranks, 10), "hr@10": hit_at_k(ranks, 10), "mrr": mrr(ranks)})
        intents: dict[str, dict[str, float]] = {}
        for a in self.data.spec.intents:
            if not self.intent_true[a.name]:
                continue
            true = np.concatenate(self.intent_true[a.name])
            scores = np.concatenate(self.intent_scores[a.name])
            seen_labels = np.flatnonzero(self.label_counts[a.name] > 0).tolist()
            if a.multi_valued:
                keep = (true > 0).any(axis=1)
                if not keep.any():
                    continue
                intents[a.name] = {
                    f"recall@{intent_topk}": float(np.mean(multilabel_recall_at_k(scores[keep], true[keep], intent_topk))),
                    "map": float(np.mean(multilabel_average_precision(scores[keep], true[keep]))),
                    "n": int(keep.sum()),
                }
            else:
                keep = true > 0
                if not keep.any():
                    continue
                pred = np.concatenate(self.intent_pred[a.name])[keep]
                intents[a.name] = {
                    "accuracy": float(np.mean(accuracy(pred, true[keep]))),
                    "macro_f1": float(macro_f1(pred, true[keep], seen_labels)),
                    "n": int(keep.sum()),
                }
        return MetricReport(item=item, intents=intents, n_targets=int(ranks.size), per_target=per_target)


def _last_position_rows(batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) indices of the last column (every evaluation example has its target there)."""
    b = torch.arange(batch.batch_size)
    return b, torch.full_like(b, batch.item_idx.shape[1] - 1)


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    batches: Iterable[SequenceBatch],
    data: EncodedSequences,
    targets: np.ndarray,
    *,
    exclude_seen: bool,
    ks: tuple[int, ...],
    intent_topk: int,
    label_counts: dict[str, np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None,
) -> MetricReport:
    """Rank the full catalogue for every target and score each intent head.

    Args:
        model: a model with ``forward(batch) -> ModelOutput`` and ``score_items(hidden)``.
        batches: evaluation batches in the order of ``targets`` (no shuffling), target at the last column.
        data: the encoded data (for seen items).
        targets: (T, 2) the (user_row, position) of every target, in batch order.
        exclude_seen: remove items the user engaged with before the target from the ranking.
        ks: cut-offs of HR/NDCG.
        intent_topk: k of multi-label recall@k.
        label_counts: training label counts per intent (computed when None).
        progress: called with the number of targets done after each batch.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    acc = _Accumulator(data, label_counts if label_counts is not None else intent_label_counts(data))
    done = 0
    for batch in batches:
        batch = batch.to(device)
        out = model(batch)
        rows, cols = _last_position_rows(batch)
        scores = score_positions(model, out, batch, rows, cols).float()  # (B, I)
        batch_targets = targets[done : done + batch.batch_size]
        target_item = batch.target_item[rows, cols]  # (B,)
        exclude = _seen_mask(data, batch_targets, scores.shape[1]).to(scores.device) if exclude_seen else None
        acc.add_items(target_ranks(scores, target_item, exclude))
        for name, logits in out.intent_logits.items():
            acc.add_intent(name, logits[rows, cols], batch.target_intents[name][rows, cols])
        done += batch.batch_size
        if progress is not None:
            progress(done)
    model.train(was_training)
    return acc.report(ks, intent_topk)


def evaluate_scores(
    score_fn: Callable[[np.ndarray], torch.Tensor],
    data: EncodedSequences,
    targets: np.ndarray,
    *,
    exclude_seen: bool,
    ks: tuple[int, ...],
    intent_topk: int,
    batch_size: int = 1024,
    label_counts: dict[str, np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None,
) -> MetricReport:
    """Rank the full catalogue with untrained item scores; intents by the training label prior.

    The one ranking loop of every untrained baseline (popularity, and the heuristics of
    :mod:`intentrec.evaluate.heuristics`): the same :func:`target_ranks` tie policy and seen-item filter as
    :func:`evaluate_model`, and intents "predicted" by the training label counts (the majority label for
    single-label intents; the most frequent labels for multi-label ones).

    Args:
        score_fn: maps a chunk of targets, (P, 2) (user_row, position), to (P, I) float item scores
            (higher = better) computed from each target's history, events ``[0, position)`` of the user.
        data: the encoded data (targets' items, intent labels and seen items).
        targets: (T, 2) the (user_row, position) of every target.
        exclude_seen: remove items the user engaged with before the target from the ranking.
        ks: cut-offs of HR/NDCG.
        intent_topk: k of multi-label recall@k.
        batch_size: targets scored per chunk (memory: a (batch_size, I) score matrix).
        label_counts: training label counts per intent (computed when None).
        progress: called with the number of targets done after each chunk.

    Returns:
        The report; ``per_target`` arrays are in the order of ``targets``.

    Raises:
        ValueError: ``batch_size`` < 1, or ``score_fn`` returned scores of the wrong shape.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    counts = label_counts if label_counts is not None else intent_label_counts(data)
    acc = _Accumulator(data, counts)
    n_items = data.spec.n_items
    for start in range(0, targets.shape[0], batch_size):
        chunk = targets[start : start + batch_size]  # (P, 2)
        rows = data.offsets[chunk[:, 0]] + chunk[:, 1]  # (P,) event rows of the targets
        target_item = torch.from_numpy(data.item_idx[rows])  # (P,)
        scores = score_fn(chunk)  # (P, I)
        if tuple(scores.shape) != (chunk.shape[0], n_items):
            raise ValueError(
                f"score_fn returned shape {tuple(scores.shape)}, expected ({chunk.shape[0]}, {n_items}) = (P, I)"
            )
        exclude = _seen_mask(data, chunk, n_items) if exclude_seen else None  # (P, I)
        acc.add_items(target_ranks(scores, target_item, exclude))
        for a in data.spec.intents:
            prior = torch.from_numpy(counts[a.name]).expand(chunk.shape[0], -1)  # (P, d_i)
            acc.add_intent(a.name, prior, torch.from_numpy(data.categorical[a.name][rows]))
        if progress is not None:
            progress(start + chunk.shape[0])
    return acc.report(ks, intent_topk)


def evaluate_popularity(
    data: EncodedSequences,
    targets: np.ndarray,
    *,
    exclude_seen: bool,
    ks: tuple[int, ...],
    intent_topk: int,
    batch_size: int = 1024,
) -> MetricReport:
    """The popularity floor on the same targets: items ranked by training counts, intents by the majority label."""
    pop = torch.from_numpy(item_popularity(data))  # (I,)
    return evaluate_scores(
        lambda chunk: pop.expand(chunk.shape[0], -1),  # (P, I)
        data,
        targets,
        exclude_seen=exclude_seen,
        ks=ks,
        intent_topk=intent_topk,
        batch_size=batch_size,
    )
