"""Pure metric functions (EVALUATION.md "Metrics" and "Intent metrics").

Everything here computes with **numpy** (float64) and returns numpy arrays or Python floats. Inputs may be
numpy arrays, sequences, or torch tensors (moved to the CPU and converted); nothing is modified in place.

Item metrics take the 1-based ranks produced by :func:`intentrec.evaluate.ranking.target_ranks` and return
*per-target* values, kept for significance tests (:mod:`intentrec.evaluate.compare`); average them (or call
:func:`summarize`) for the reported numbers. For one target with rank ``r``:

* ``HR@K = Recall@K = [r <= K]``
* ``NDCG@K = 1 / log2(r + 1)`` if ``r <= K`` else 0
* ``MRR = 1 / r`` (over the full list); ``MRR@K = 1 / r`` if ``r <= K`` else 0

Intent metrics: single-label accuracy and macro-F1 over the labels seen in training; multi-label recall@k and
average precision. Class index 0 (PAD) is never a true label nor a prediction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from intentrec.vocab import PAD_IDX

__all__ = [
    "accuracy",
    "hit_at_k",
    "macro_f1",
    "mrr",
    "mrr_at_k",
    "multilabel_average_precision",
    "multilabel_recall_at_k",
    "ndcg_at_k",
    "summarize",
]



def _to_numpy(x: Any) -> np.ndarray:
    """A numpy view/copy of ``x``; torch tensors are detached and moved to the CPU."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
            t = t.to(torch.float32)  # bf16/fp16 have no numpy dtype
        return t.numpy()
    return np.asarray(x)


def _ranks(ranks: Any) -> np.ndarray:
    r = _to_numpy(ranks).astype(np.float64, copy=False).reshape(-1)  # (P,)
    if r.size and (not np.all(np.isfinite(r)) or r.min() < 1):
        raise ValueError("ranks must be finite and >= 1 (1 = the target scored best)")
    return r


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def hit_at_k(ranks: Any, k: int) -> np.ndarray:
    """Per-target hit rate ``[r <= k]`` (= Recall@K with one target).

    Args:
        ranks: (P,) 1-based ranks.
        k: cut-off.

    Returns:
        (P,) float64 array of 0.0 / 1.0.

    Raises:
        ValueError: a rank < 1 or not finite, or ``k < 1``.

    Example:
        >>> hit_at_k([1, 2, 3, 11], 10).tolist()
        [1.0, 1.0, 1.0, 0.0]
    """
    _check_k(k)
    r = _ranks(ranks)
    return (r <= k).astype(np.float64)


def ndcg_at_k(ranks: Any, k: int) -> np.ndarray:
    """Per-target NDCG@K with one relevant item: ``1 / log2(r + 1)`` if ``r <= k`` else 0.

    Args:
        ranks: (P,) 1-based ranks.
        k: cut-off.

    Returns:
        (P,) float64 array in [0, 1].

    Raises:
        ValueError: a rank < 1 or not finite, or ``k < 1``.

    Example:
        >>> ndcg_at_k([1, 2, 3, 11], 10).round(4).tolist()
        [1.0, 0.6309, 0.5, 0.0]
    """
    _check_k(k)
    r = _ranks(ranks)
    return np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)


def mrr(ranks: Any) -> np.ndarray:
    """Per-target reciprocal rank ``1 / r`` over the full list.

    Args:
        ranks: (P,) 1-based ranks.

    Returns:
        (P,) float64 array in (0, 1].

    Raises:
        ValueError: a rank < 1 or not finite.

    Example:
        >>> mrr([1, 2, 4]).tolist()
        [1.0, 0.5, 0.25]
    """
    return 1.0 / _ranks(ranks)


def mrr_at_k(ranks: Any, k: int) -> np.ndarray:
    """Per-target truncated reciprocal rank: ``1 / r`` if ``r <= k`` else 0.

    Args:
        ranks: (P,) 1-based ranks.
        k: cut-off.

    Returns:
        (P,) float64 array in [0, 1].

    Raises:
        ValueError: a rank < 1 or not finite, or ``k < 1``.
    """
    _check_k(k)
    r = _ranks(ranks)
    return np.where(r <= k, 1.0 / r, 0.0)


def summarize(ranks: Any, ks: Iterable[int]) -> dict[str, float]:
    """Mean item metrics over all targets.

    Args:
        ranks: (P,) 1-based ranks, P >= 1.
        ks: cut-offs.

    Returns:
        ``{"hr@k", "recall@k", "ndcg@k", "mrr@k"}`` for every ``k`` in ``ks`` (``recall@k == hr@k``: one target
        per row) plus ``"mrr"`` (full list), as Python floats.

    Raises:
        ValueError: no ranks, a rank < 1, or a bad ``k``.

    Example:
        >>> m = summarize([1, 2, 3, 11], ks=(10,))
        >>> m["hr@10"], round(m["ndcg@10"], 4), round(m["mrr"], 4)
        (0.75, 0.5327, 0.4811)
    """
    r = _ranks(ranks)
    if r.size == 0:
        raise ValueError("cannot summarize zero evaluation targets")
    out: dict[str, float] = {}
    for k in sorted(set(ks)):
        hr = float(hit_at_k(r, k).mean())
        out[f"hr@{k}"] = hr
        out[f"recall@{k}"] = hr
        out[f"ndcg@{k}"] = float(ndcg_at_k(r, k).mean())
        out[f"mrr@{k}"] = float(mrr_at_k(r, k).mean())
    out["mrr"] = float(mrr(r).mean())
    return out


# ------------------------------------------------------------------------------------------------------
# intent metrics
# ------------------------------------------------------------------------------------------------------


def _labels_1d(pred: Any, target: Any, ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    p = _to_numpy(pred).reshape(-1)  # (P,)
    t = _to_numpy(target).reshape(-1)  # (P,)
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same number of rows, got {p.shape} and {t.shape}")
    if ignore_index is not None:
        keep = t != ignore_index  # (P,)
        p, t = p[keep], t[keep]
    return p.astype(np.int64), t.astype(np.int64)


def accuracy(pred: Any, target: Any, ignore_index: int | None = PAD_IDX) -> float:
    """Top-1 accuracy of single-label intent predictions.

    Args:
        pred: (P,) predicted class indices (e.g. ``logits.argmax(-1)``).
        target: (P,) true class indices.
        ignore_index: rows whose target equals it are dropped (default PAD = 0, "no label"); None keeps all.

    Returns:
        The fraction of correct rows, or NaN when no row is left.

    Raises:
        ValueError: ``pred`` and ``target`` differ in length.

    Example:
        >>> accuracy([2, 3, 2, 5], [2, 2, 2, 0])  # the last row has no label
        0.6666666666666666
    """
    p, t = _labels_1d(pred, target, ignore_index)
    if t.size == 0:
        return float("nan")
    return float(np.mean(p == t))


def macro_f1(pred: Any, target: Any, labels: Sequence[int], ignore_index: int | None = PAD_IDX) -> float:
    """Macro-averaged F1 over a fixed label set (the labels seen in training).

    Per label ``l``: ``F1 = 2 TP / (2 TP + FP + FN)``; when ``2 TP + FP + FN = 0`` (no support and never
    predicted) the label's F1 is **0** — scikit-learn's ``f1_score(average="macro", labels=labels,
    zero_division=0)`` convention. The macro value is the unweighted mean over ``labels``. Predictions of a
    class outside ``labels`` still count as false negatives of the true label.

    Args:
        pred: (P,) predicted class indices.
        target: (P,) true class indices.
        labels: the classes to average over (e.g. every training label; normally excludes PAD).
        ignore_index: rows whose target equals it are dropped (default PAD = 0); None keeps all.

    Returns:
        Macro-F1 in [0, 1], or NaN when ``labels`` is empty or no row is left.

    Raises:
        ValueError: ``pred`` and ``target`` differ in length.

    Example:
        >>> round(macro_f1([2, 2, 3, 3], [2, 3, 3, 3], labels=[2, 3, 4]), 4)  # F1: 2/3, 4/5, 0
        0.4889
    """
    p, t = _labels_1d(pred, target, ignore_index)
    labs = np.asarray(sorted({int(x) for x in labels}), dtype=np.int64)  # (L,)
    if labs.size == 0 or t.size == 0:
        return float("nan")
    is_pred = p[None, :] == labs[:, None]  # (L, P)
    is_true = t[None, :] == labs[:, None]  # (L, P)
    tp = np.sum(is_pred & is_true, axis=1)  # (L,)
    fp = np.sum(is_pred & ~is_true, axis=1)  # (L,)
    fn = np.sum(~is_pred & is_true, axis=1)  # (L,)
    denom = 2 * tp + fp + fn  # (L,)
    f1 = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)  # (L,)
    return float(f1.mean())


def _multilabel_inputs(scores: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    """(P, C-1) float scores without the PAD column (NaN -> -inf) and (P, C-1) bool true-label mask."""
    s = _to_numpy(scores).astype(np.float64)  # (P, C)
    t = _to_numpy(targets).astype(np.int64)  # (P, L)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (P, C), got shape {s.shape}")
    if t.ndim == 1:
        t = t[:, None]  # (P, 1) a single label per row
    if t.ndim != 2 or t.shape[0] != s.shape[0]:
        raise ValueError(f"targets must be (P, L) with P = {s.shape[0]}, got shape {t.shape}")
    n_rows, n_classes = s.shape
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        raise ValueError(f"targets must be class indices in [0, {n_classes}) (0 = padding)")
    true = np.zeros((n_rows, n_classes), dtype=bool)  # (P, C)
    true[np.arange(n_rows)[:, None], t] = True  # (P, C)
    s = np.where(np.isnan(s), -np.inf, s)  # (P, C)
    return s[:, PAD_IDX + 1 :], true[:, PAD_IDX + 1 :]  # (P, C-1), (P, C-1)


def _label_counts(s: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every (row, class c): #classes j with s_j >= s_c, and #true classes j with s_j >= s_c.

    Both include c itself; ties count against the model (as in item ranking). The first comes from a
    per-row "min" rank (O(C log C) per row); the second is only filled at true classes (0 elsewhere) from a
    (rows, L, L) comparison among the few true labels of each row.
    """
    n_rows, n_classes = s.shape
    if n_rows == 0 or n_classes == 0:
        return np.zeros((n_rows, n_classes), np.int64), np.zeros((n_rows, n_classes), np.int64)
    below = rankdata(s, method="min", axis=1).astype(np.int64) - 1  # (P, C') classes scoring strictly lower
    at_or_above = n_classes - below  # (P, C')
    true_at_or_above = np.zeros((n_rows, n_classes), dtype=np.int64)  # (P, C')
    width = int(true.sum(axis=1).max())
    if width:
        order = np.argsort(~true, axis=1, kind="stable")[:, :width]  # (P, L) true classes first
        is_true = np.take_along_axis(true, order, axis=1)  # (P, L)
        ts = np.take_along_axis(s, order, axis=1)  # (P, L)
        ge = (ts[:, None, :] >= ts[:, :, None]) & is_true[:, None, :]  # (P, L, L): [p, c, j] = s_j >= s_c
        counts = np.where(is_true, ge.sum(axis=2), 0)  # (P, L)
        np.put_along_axis(true_at_or_above, order, counts, axis=1)
    return at_or_above, true_at_or_above


def multilabel_recall_at_k(scores: Any, targets: Any, k: int) -> np.ndarray:
    """Per-row recall@k of the true label set among the top-k predicted labels.

    ``|true ∩ top-k| / |true|``. A true label is in the top k when its rank ``1 + #higher + #other equal``
    (ties count against the model, as in item ranking) is ``<= k``. Class 0 (PAD) is neither predicted
    (its score is ignored) nor true (0 in ``targets`` is padding).

    Args:
        scores: (P, C) class scores or logits.
        targets: (P, L) true class indices, 0-padded (or (P,) for one label per row).
        k: cut-off.

    Returns:
        (P,) float64 recall per row; **NaN for rows without any true label** (use ``np.nanmean``).

    Raises:
        ValueError: bad shapes, a class index out of range, or ``k < 1``.

    Example:
        >>> scores = [[9.0, 0.9, 0.8, 0.1, 0.7]]  # PAD (col 0) is ignored even though it scores highest
        >>> multilabel_recall_at_k(scores, [[2, 3, 0]], k=2).tolist()
        [0.5]
    """
    _check_k(k)
    s, true = _multilabel_inputs(scores, targets)  # (P, C'), (P, C')
    at_or_above, _ = _label_counts(s, true)  # (P, C')
    n_true = true.sum(axis=1)  # (P,)
    hits = (true & (at_or_above <= k)).sum(axis=1)  # (P,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_true > 0, hits / n_true, np.nan)


def multilabel_average_precision(scores: Any, targets: Any) -> np.ndarray:
    """Per-row average precision of the true label set; ``mAP = np.nanmean(...)``.

    ``AP = mean over true labels t of |{true j : s_j >= s_t}| / |{j : s_j >= s_t}|`` — precision at the
    rank of each true label with ties counted against the model (scikit-learn's
    ``label_ranking_average_precision_score`` per row). Class 0 (PAD) is ignored.

    Args:
        scores: (P, C) class scores or logits.
        targets: (P, L) true class indices, 0-padded (or (P,) for one label per row).

    Returns:
        (P,) float64 AP in (0, 1]; **NaN for rows without any true label**.

    Raises:
        ValueError: bad shapes or a class index out of range.

    Example:
        >>> scores = [[0.0, 0.9, 0.8, 0.1, 0.7]]  # classes 1..4 ranked 1, 2, 4, 3
        >>> round(float(multilabel_average_precision(scores, [[2, 3]])[0]), 4)  # (1/2 + 2/4) / 2
        0.5
    """
    s, true = _multilabel_inputs(scores, targets)  # (P, C'), (P, C')
    at_or_above, true_at_or_above = _label_counts(s, true)  # (P, C')
    precision = true_at_or_above / at_or_above  # (P, C') at_or_above >= 1 (the class itself)
    n_true = true.sum(axis=1)  # (P,)
    total = np.where(true, precision, 0.0).sum(axis=1)  # (P,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_true > 0, total / n_true, np.nan)
