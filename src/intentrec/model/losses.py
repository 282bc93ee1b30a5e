"""Losses of IntentRec (PAPER §4, Eqs. 3-4; §10 #12, #13).

* :func:`weighted_cross_entropy` — duration-weighted CE, normalised by the sum of weights (Eq. 3).
* :func:`multi_positive_cross_entropy` — softmax loss with several positive labels and no negatives (§10 #13).
* :class:`IntentRecLoss` — L = L_item + λ Σ_i L_intent_i (Eq. 4), every part returned by name for logging.

Only positions with a target are scored: the item head sees (P, D) rows, never a (B, n, I) tensor. A model may
narrow the item positions further with ``ModelOutput.item_loss_weight`` (BERT4Rec: its masked positions only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from intentrec.errors import ConfigError
from intentrec.structs import ModelOutput, SequenceBatch

__all__ = [
    "IntentRecLoss",
    "ItemScorer",
    "LossOutput",
    "multi_positive_cross_entropy",
    "weighted_cross_entropy",
]


class ItemScorer(Protocol):
    """Anything with ``score_items((..., D)) -> (..., I)`` (IntentRec and the baselines)."""

    def score_items(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) hidden rows -> (..., I) item logits."""
        ...


@dataclass(frozen=True)
class LossOutput:
    """A total loss and its named parts.

    Attributes:
        total: scalar to back-propagate.
        parts: ``"item"`` and ``"intent/<name>"`` -> scalar (unweighted by λ), for logging.
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ w·v / Σ w; 0 (still connected to the graph) when Σ w = 0."""
    weight = weight.to(values.dtype)  # (P,)
    return (weight * values).sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)  # ()


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ_p w_p · CE(logits_p, target_p) / Σ_p w_p (PAPER Eq. 3 with d_k = w, §10 #12).

    With all-ones weights this is the plain mean cross-entropy.

    Args:
        logits: (P, C) scores.
        target: (P,) long class indices.
        weight: (P,) non-negative weights.

    Returns:
        Scalar loss (0 when there are no rows or all weights are 0).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> loss = weighted_cross_entropy(logits, torch.tensor([0, 0]), torch.tensor([1.0, 0.0]))
        >>> round(loss.item(), 4)
        0.1269
    """
    ce = F.cross_entropy(logits.float(), target, reduction="none")  # (P,)
    return _weighted_mean(ce, weight)


def multi_positive_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Softmax loss with several positives and no negatives: −(1/|P|) Σ_{j∈P} log softmax(logits)[j] (§10 #13).

    Rows are combined by the weighted mean Σ w·ℓ / Σ w; rows without any positive label are ignored.

    Args:
        logits: (P, C) scores.
        targets: (P, L) long positive class indices, 0-padded (0 is never a positive).
        weight: (P,) non-negative weights.

    Returns:
        Scalar loss (0 when no row has a positive).

    Example:
        >>> import torch
        >>> logits = torch.zeros(1, 4)  # uniform: log p = log(1/4) for every class
        >>> loss = multi_positive_cross_entropy(logits, torch.tensor([[1, 3, 0]]), torch.ones(1))
        >>> round(loss.item(), 4)
        1.3863
    """
    log_p = torch.log_softmax(logits.float(), dim=-1)  # (P, C)
    positive = targets > 0  # (P, L)
    picked = log_p.gather(1, targets.clamp_min(0))  # (P, L)
    n_pos = positive.sum(dim=1)  # (P,)
    per_row = -(picked * positive).sum(dim=1) / n_pos.clamp_min(1)  # (P,)
    return _weighted_mean(per_row, weight * (n_pos > 0))


class IntentRecLoss:
    """L = L_item + λ Σ_i L_intent_i (PAPER Eq. 4).

    * Item: weighted CE at positions with ``batch.target_item > 0`` and a positive item weight; the hidden rows
      there (P, D) go through ``model.score_items`` (P, I). The item weight is ``batch.target_weight``, multiplied
      by ``output.item_loss_weight`` when the model gives one (BERT4Rec: 1 at its masked positions, 0 elsewhere,
      so only those count); it never affects the intent parts.
    * Intents: for every head in ``output.intent_logits``, weighted CE (single-label targets (B, n)) or
      multi-positive CE (multi-label targets (B, n, L)) at positions with a non-zero target, same weights.

    Args:
        lambda_intent: λ, the weight of the summed intent losses (>= 0).

    Raises:
        ValueError: ``lambda_intent`` is negative.
    """

    def __init__(self, lambda_intent: float) -> None:
        if lambda_intent < 0:
            raise ValueError(f"lambda_intent must be >= 0, got {lambda_intent}")
        self.lambda_intent = float(lambda_intent)

    def __call__(self, model: ItemScorer, output: ModelOutput, batch: SequenceBatch) -> LossOutput:
        """Compute the loss of one batch.

        Args:
            model: the model that produced ``output`` (its ``score_items`` scores the item rows).
            output: the model's output on ``batch``.
            batch: the batch, with targets and weights.

        Returns:
            :class:`LossOutput` with ``total`` and parts ``"item"``, ``"intent/<name>"``.

        Raises:
            ConfigError: the model has an intent head for which the batch carries no target.
        """
        weight = batch.target_weight.reshape(-1)  # (B·n,)
        item_weight = weight  # (B·n,)
        if output.item_loss_weight is not None:
            item_weight = weight * output.item_loss_weight.reshape(-1).to(weight.dtype)  # (B·n,)

        has_item = (batch.target_item.reshape(-1) > 0) & (item_weight > 0)  # (B·n,)
        rows = has_item.nonzero().squeeze(1)  # (P,)
        hidden = output.item_hidden.reshape(-1, output.item_hidden.shape[-1])[rows]  # (P, D)
        item_logits = model.score_items(hidden)  # (P, I)
        item_loss = weighted_cross_entropy(item_logits, batch.target_item.reshape(-1)[rows], item_weight[rows])
        parts: dict[str, torch.Tensor] = {"item": item_loss}

        intent_total = item_loss.new_zeros(())
        for name, logits in output.intent_logits.items():
            if name not in batch.target_intents:
                raise ConfigError(
                    f"the model has an intent head {name!r} but the batch has no target for it "
                    f"(targets: {sorted(batch.target_intents)}); check data.intents and model.heads"
                )
            target = batch.target_intents[name]  # (B, n) or (B, n, L)
            flat_logits = logits.reshape(-1, logits.shape[-1])  # (B·n, d_i)
            if target.dim() == 3:
                flat_target = target.reshape(-1, target.shape[-1])  # (B·n, L)
                sel = (flat_target > 0).any(dim=1).nonzero().squeeze(1)  # (P_i,)
                loss = multi_positive_cross_entropy(flat_logits[sel], flat_target[sel], weight[sel])
            else:
                flat_target = target.reshape(-1)  # (B·n,)
                sel = (flat_target > 0).nonzero().squeeze(1)  # (P_i,)
                loss = weighted_cross_entropy(flat_logits[sel], flat_target[sel], weight[sel])
            parts[f"intent/{name}"] = loss
            intent_total = intent_total + loss

        total = item_loss + self.lambda_intent * intent_total if output.intent_logits else item_loss
        return LossOutput(total=total, parts=parts)
