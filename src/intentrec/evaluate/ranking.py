"""Full-catalogue ranking with an explicit tie policy and an optional seen-item filter (EVALUATION.md).

Every function here is vectorised over rows (no Python loop over evaluation targets) and works on any device.

Conventions shared by all functions:

* ``scores`` is a ``(P, I)`` float tensor: one row per evaluation target, one column per item index
  (column ``j`` = item index ``j``; ``I = len(ItemVocab)`` including PAD and UNK).
* ``invalid_columns`` (default ``(0, 1)`` = ``PAD_IDX``, ``UNK_IDX``) are never ranked: padding is not an item
  and the unknown index stands for every out-of-vocabulary item at once.
* ``exclude`` is an optional ``(P, I)`` bool mask of items removed from a row's ranking (the seen-item filter,
  built with :func:`seen_mask`). The target itself is never removed, even when it is marked.
* **NaN scores are treated as** ``-inf``: a NaN item ranks below every finite score and ties with other
  ``-inf``/NaN items; a NaN *target* ties with every other ranked item whose score is ``-inf`` or NaN, so it
  gets the worst rank its row allows. A model producing NaN therefore never looks better than it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["seen_mask", "target_ranks", "topk_items"]

_DEFAULT_INVALID: tuple[int, ...] = (0, 1)


def _check_scores(scores: Tensor) -> None:
    if scores.dim() != 2:
        raise ValueError(f"scores must be a 2-D (P, I) tensor, got shape {tuple(scores.shape)}")


def _float_scores(scores: Tensor) -> Tensor:
    """Scores as a floating tensor with NaN replaced by -inf (half precisions kept: ties stay as they are)."""
    if not scores.is_floating_point():
        scores = scores.to(torch.float32)
    return torch.where(torch.isnan(scores), torch.full_like(scores, float("-inf")), scores)  # (P, I)


def _removed_mask(
    scores: Tensor, exclude: Tensor | None, invalid_columns: Sequence[int]
) -> Tensor:
    """(P, I) bool: True where an item is not ranked (invalid column or excluded)."""
    n_rows, n_cols = scores.shape
    cols = [int(c) for c in invalid_columns]
    bad = [c for c in cols if not 0 <= c < n_cols]
    if bad:
        raise ValueError(f"invalid_columns {bad} are outside the {n_cols} score columns")
    removed = torch.zeros(n_cols, dtype=torch.bool, device=scores.device)  # (I,)
    if cols:
        removed[cols] = True
    removed = removed.unsqueeze(0).expand(n_rows, n_cols)  # (P, I)
    if exclude is not None:
        if exclude.shape != scores.shape:
            raise ValueError(
                f"exclude must have the shape of scores {tuple(scores.shape)}, got {tuple(exclude.shape)}"
            )
        if exclude.dtype != torch.bool:
            raise ValueError(f"exclude must be a bool tensor, got {exclude.dtype}")
        removed = removed | exclude.to(scores.device)  # (P, I)
    return removed


def target_ranks(
    scores: Tensor,
    targets: Tensor,
    exclude: Tensor | None = None,
    invalid_columns: Sequence[int] = _DEFAULT_INVALID,
) -> Tensor:
    """Rank of each target over the full catalogue; ties count against the model.

    ``rank = 1 + #{ranked items with a strictly higher score} + #{other ranked items with an equal score}``,
    where the ranked items of a row are all columns except ``invalid_columns`` and the row's ``exclude``d
    items (the target always stays ranked). NaN scores count as ``-inf`` (see the module docstring).

    Args:
        scores: (P, I) item scores, one row per evaluation target.
        targets: (P,) long item index of each row's target; must not be one of ``invalid_columns``.
        exclude: optional (P, I) bool, True = remove the item from that row's ranking (seen-item filter).
            A True at the target's own column is ignored.
        invalid_columns: columns never ranked (default PAD = 0 and UNK = 1).

    Returns:
        (P,) long ranks, ``1 <= rank <= I - len(invalid_columns)`` (fewer when items are excluded).

    Raises:
        ValueError: bad shapes, a target outside ``[0, I)`` or a target in ``invalid_columns``.

    Example:
        >>> s = torch.tensor([[9.0, 9.0, 0.5, 0.7, 0.5, 0.5]])
        >>> target_ranks(s, torch.tensor([2]))  # items 4 and 5 tie with the target; item 3 is higher
        tensor([4])
        >>> target_ranks(s, torch.tensor([2]), exclude=torch.tensor([[0, 0, 0, 1, 0, 0]], dtype=torch.bool))
        tensor([3])
    """
    _check_scores(scores)
    n_rows, n_cols = scores.shape
    if targets.shape != (n_rows,):
        raise ValueError(f"targets must have shape ({n_rows},) to match scores, got {tuple(targets.shape)}")
    targets = targets.to(device=scores.device, dtype=torch.long)  # (P,)
    if n_rows == 0:
        return torch.zeros(0, dtype=torch.long, device=scores.device)
    if bool(((targets < 0) | (targets >= n_cols)).any()):
        raise ValueError(f"targets must be item indices in [0, {n_cols}); got values outside that range")
    invalid = torch.tensor([int(c) for c in invalid_columns], dtype=torch.long, device=scores.device)
    if invalid.numel() and bool(torch.isin(targets, invalid).any()):
        raise ValueError(
            f"a target is one of the never-ranked columns {list(invalid_columns)} (PAD/UNK): "
            "drop those evaluation targets before ranking (they cannot be ranked; count them separately)"
        )
    s = _float_scores(scores)  # (P, I)
    ranked = ~_removed_mask(s, exclude, invalid_columns)  # (P, I)
    ranked = ranked.scatter(1, targets.unsqueeze(1), True)  # (P, I) the target is never removed
    target_score = s.gather(1, targets.unsqueeze(1))  # (P, 1)
    # higher-or-equal among ranked items, the target included: 1 + #higher + #other-equal
    return ((s >= target_score) & ranked).sum(dim=1)  # (P,)


def seen_mask(history_items: Tensor, n_items: int) -> Tensor:
    """Boolean mask of the items in each row's history (the seen-item filter).

    Args:
        history_items: (P, n) long item indices, 0-padded (PAD = 0 is ignored).
        n_items: I, the width of the score matrix (``len(ItemVocab)``).

    Returns:
        (P, I) bool, True where the item occurs in the row's history; column 0 is always False.

    Raises:
        ValueError: a history index outside ``[0, n_items)`` or a non-2-D history.

    Example:
        >>> seen_mask(torch.tensor([[0, 0, 3, 2, 3]]), 5)
        tensor([[False, False,  True,  True, False]])
    """
    if history_items.dim() != 2:
        raise ValueError(f"history_items must be 2-D (P, n), got shape {tuple(history_items.shape)}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    hist = history_items.to(torch.long)  # (P, n)
    if hist.numel() and bool(((hist < 0) | (hist >= n_items)).any()):
        raise ValueError(f"history_items must be item indices in [0, {n_items})")
    mask = torch.zeros(hist.shape[0], n_items, dtype=torch.bool, device=hist.device)  # (P, I)
    mask.scatter_(1, hist, True)  # (P, I)
    mask[:, 0] = False  # PAD is not an item
    return mask


def topk_items(
    scores: Tensor,
    k: int,
    exclude: Tensor | None = None,
    invalid_columns: Sequence[int] = _DEFAULT_INVALID,
) -> tuple[Tensor, Tensor]:
    """Top-k items per row, never returning ``invalid_columns``; deterministic tie order (lower index first).

    Excluded items and invalid columns get score ``-inf``; NaN scores count as ``-inf``. When a row has
    fewer than ``k`` rankable items its tail holds removed items with value ``-inf``: callers that must
    return only rankable items keep ``values > -inf``. Invalid columns are never returned.

    Args:
        scores: (P, I) item scores.
        k: number of items per row, ``1 <= k <= I - len(invalid_columns)``.
        exclude: optional (P, I) bool, True = never recommend (e.g. already seen).
        invalid_columns: columns never returned (default PAD = 0 and UNK = 1).

    Returns:
        ``(values, indices)``: (P, k) float scores (``-inf`` where removed) and (P, k) long item indices,
        best first.

    Raises:
        ValueError: bad shapes or ``k`` out of range.

    Example:
        >>> values, idx = topk_items(torch.tensor([[5.0, 4.0, 1.0, 3.0, 3.0]]), k=2)
        >>> idx
        tensor([[3, 4]])
    """
    _check_scores(scores)
    n_cols = scores.shape[1]
    n_invalid = len({int(c) for c in invalid_columns})
    if not 1 <= k <= n_cols - n_invalid:
        raise ValueError(f"k must be in [1, {n_cols - n_invalid}] (the catalogue size), got {k}")
    s = _float_scores(scores)  # (P, I)
    removed = _removed_mask(s, exclude, invalid_columns)  # (P, I)
    s = s.masked_fill(removed, float("-inf"))  # (P, I)
    keep = torch.ones(n_cols, dtype=torch.bool, device=s.device)  # (I,)
    if n_invalid:
        keep[[int(c) for c in invalid_columns]] = False
    cols = keep.nonzero().squeeze(1)  # (I',) the rankable columns, ascending
    sub = s[:, cols]  # (P, I')
    values, pos = torch.sort(sub, dim=1, descending=True, stable=True)  # (P, I')
    return values[:, :k], cols[pos[:, :k]]  # (P, k), (P, k)
