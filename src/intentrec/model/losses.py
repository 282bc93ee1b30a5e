"""Losses of IntentRec (PAPER §4, Eqs. 3-4; §10 #12, #13).

* :func:`weighted_cross_entropy` — duration-weighted CE, normalised by the sum of weights (Eq. 3).
* :func:`multi_positive_cross_entropy` — softmax loss with several positive labels and no negatives (§10 #13).
* :class:`IntentRecLoss` — L = L_item + λ Σ_i L_intent_i (Eq. 4), every part returned by name for logging.
* :class:`SampledSoftmax` — the item loss over sampled negatives with the log-Q correction, for catalogues too large
  for a full softmax (PAPER §10 #17); evaluation always ranks the full catalogue.

Only positions with a target are scored: the item head sees (P, D) rows, never a (B, n, I) tensor. A model may
narrow the item positions further with ``ModelOutput.item_loss_weight`` (BERT4Rec: its masked positions only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from intentrec.errors import ConfigError
from intentrec.model.intentrec import N_MASKED_ITEMS
from intentrec.model.layers import (
    MASKED_LOGIT,
    add_attribute_boost,
    add_history_boost,
    attribute_boost_of,
    history_boost_of,
)
from intentrec.structs import ModelOutput, SequenceBatch

__all__ = [
    "HistoryBoosts",
    "IntentRecLoss",
    "ItemScorer",
    "LossOutput",
    "SampledSoftmax",
    "multi_positive_cross_entropy",
    "sampling_log_q",
    "weighted_cross_entropy",
]


class ItemScorer(Protocol):
    """Anything with ``score_items((..., D)) -> (..., I)`` (IntentRec and the baselines)."""

    def score_items(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) hidden rows -> (..., I) item logits."""
        ...


@dataclass(frozen=True)
class HistoryBoosts:
    """The repeat boosts of the scored rows (``cfg.repeat_boost``, ``cfg.repeat_boost_attributes``), row-aligned.

    Attributes:
        items: (P, n) long input item ids of each row's sequence.
        item_boost: (P, n) the item-level boost per input position, or None.
        attributes: ``(boost (P, n), codes (I,), n_classes)`` per boosted attribute.
    """

    items: torch.Tensor
    item_boost: torch.Tensor | None
    attributes: tuple[tuple[torch.Tensor, torch.Tensor, int], ...]

    @staticmethod
    def of_rows(output: ModelOutput, batch: SequenceBatch, rows: torch.Tensor) -> HistoryBoosts | None:
        """The boosts at flat positions ``rows`` (indices into B·n) of ``output``; None when it has none."""
        if output.history_boost is None and not output.attribute_boosts:
            return None
        n = batch.item_idx.shape[1]
        item_boost = None if output.history_boost is None else output.history_boost.reshape(-1, n)[rows]  # (P, n)
        attributes = tuple((a.boost.reshape(-1, n)[rows], a.codes, a.n_classes) for a in output.attribute_boosts)
        return HistoryBoosts(batch.item_idx[rows // n], item_boost, attributes)  # items (P, n)

    def add(self, scores: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """(P, C) ``scores`` (column c = item ``c + offset``) plus every boost."""
        if self.item_boost is not None:
            scores = add_history_boost(scores, self.items, self.item_boost, n_masked=N_MASKED_ITEMS, offset=offset)
        for boost, codes, n_classes in self.attributes:
            scores = add_attribute_boost(scores, self.items, boost, codes, n_classes, offset=offset)
        return scores  # (P, C)

    def of(self, candidates: torch.Tensor) -> torch.Tensor:
        """(P, C) the summed boosts of candidate items ((P, C) or (C,) long ids)."""
        out = None
        if self.item_boost is not None:
            out = history_boost_of(candidates, self.items, self.item_boost, n_masked=N_MASKED_ITEMS)  # (P, C)
        for boost, codes, _ in self.attributes:
            part = attribute_boost_of(candidates, self.items, boost, codes)  # (P, C)
            out = part if out is None else out + part
        assert out is not None  # built only with at least one boost
        return out


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


def sampling_log_q(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """log q of the negative-sampling distribution q_j ∝ (count_j + 1)^alpha over the real items.

    Args:
        counts: (I,) training-event count of every item index (PAD and UNK get probability 0).
        alpha: 0 = uniform, 1 = popularity, 0.75 = the usual flattened popularity.

    Returns:
        (I,) float32 log-probabilities summing (in probability) to 1; ``-inf`` for indices 0 and 1.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    weights = (counts.double().clamp_min(0) + 1.0) ** alpha  # (I,)
    weights[:N_MASKED_ITEMS] = 0.0
    return torch.log(weights / weights.sum()).float()  # (I,)


class SampledSoftmax:
    """Item loss over ``n_negatives`` negatives drawn from q with replacement, with the log-Q correction
    (Bengio & Senécal 2008; Yi et al. 2019): every logit s_j becomes s_j − log q_j, so the sampled softmax is
    consistent for the full one as n grows. Negatives equal to a row's target ("accidental hits") are removed
    from that row. PAPER §10 #17: full softmax up to ~100k items, this beyond.

    The negatives are shared by every row of the batch (``per_row=False``: one (N, E) gather and a matmul), or
    drawn afresh for every scored row (``per_row=True``, as RecTools' SASRec does for the recalculated SASRec+SS
    numbers in ANCHORS.md, so each step pushes down far more distinct items): a (P, N, E) gather, or, when the
    P·N draws outnumber the items, every item scored once and the draws' logits gathered (the same loss, cheaper).

    Args:
        log_q: (I,) log-probabilities of the sampling distribution (:func:`sampling_log_q`).
        n_negatives: negatives per step (``per_row=False``) or per scored row (``per_row=True``).
        generator: optional torch generator for the draws (reproducibility).
        per_row: draw each row's own negatives instead of one set per step.
    """

    def __init__(
        self, log_q: torch.Tensor, n_negatives: int, generator: torch.Generator | None = None, *,
        per_row: bool = False,
    ) -> None:
        if n_negatives < 1:
            raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
        self.log_q = log_q.float()
        self.probs = log_q.detach().float().exp().cpu()  # sampled on the CPU (a CPU generator is portable)
        self.n_negatives = int(n_negatives)
        self.generator = generator
        self.per_row = bool(per_row)

    def sample(self, device: torch.device, rows: int = 1) -> torch.Tensor:
        """Item indices drawn from q (on the CPU with the seeded generator, then moved to ``device``): (N,) shared
        negatives, or (rows, N) with ``per_row``."""
        count = self.n_negatives * (rows if self.per_row else 1)
        neg = torch.multinomial(self.probs, count, replacement=True, generator=self.generator)  # (rows·N,) | (N,)
        if self.per_row:
            neg = neg.reshape(rows, self.n_negatives)  # (P, N)
        return neg.to(device, non_blocking=True)

    def __call__(
        self, model: ItemScorer, hidden: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
        negatives: torch.Tensor | None = None, history: HistoryBoosts | None = None,
    ) -> torch.Tensor:
        """Weighted mean sampled-softmax CE.

        Args:
            model: has ``item_query(hidden) -> (P, E)`` and ``item_table() -> (weight (I, E), bias (I,) | None)``.
            hidden: (P, D) item-head rows at the target positions.
            target: (P,) target item indices (>= 2).
            weight: (P,) non-negative weights.
            negatives: (N,) shared or (P, N) per-row negatives to use instead of sampling (tests).
            history: the repeat boosts of each row (``cfg.repeat_boost``, ``cfg.repeat_boost_attributes``), added
                to the target and negative scores; None = no boost.

        Returns:
            Scalar loss.
        """
        query = model.item_query(hidden)  # type: ignore[attr-defined]  # (P, E)
        table, bias = model.item_table()  # type: ignore[attr-defined]  # (I, E), (I,) | None
        neg = self.sample(query.device, query.shape[0]) if negatives is None else negatives.to(query.device)
        if self.log_q.device != query.device:
            self.log_q = self.log_q.to(query.device)
        pos = (query * table[target]).sum(dim=-1)  # (P,)
        if neg.dim() == 1:  # (N,) shared by every row
            neg_logits = query @ table[neg].T  # (P, N)
            hit = neg[None, :] == target[:, None]  # (P, N)
        elif neg.numel() >= table.shape[0]:  # (P, N) a set per row, more draws than items: score every item once
            neg_logits = (query @ table.T).gather(1, neg)  # (P, I) -> (P, N); two matmuls beat a (P, N, E) gather
            hit = neg == target[:, None]  # (P, N)
        else:  # (P, N) a set per row from a large catalogue
            neg_logits = torch.bmm(table[neg], query[:, :, None]).squeeze(-1)  # (P, N, E) @ (P, E, 1) -> (P, N)
            hit = neg == target[:, None]  # (P, N)
        if bias is not None:
            pos = pos + bias[target]
            neg_logits = neg_logits + bias[neg]
        if history is not None:
            pos = pos + history.of(target[:, None])[:, 0].to(pos.dtype)  # (P,)
            neg_logits = neg_logits + history.of(neg).to(neg_logits.dtype)  # (P, N)
        pos = pos - self.log_q[target]  # (P,) log-Q correction
        neg_logits = neg_logits - self.log_q[neg]  # (P, N)
        neg_logits = neg_logits.masked_fill(hit, MASKED_LOGIT)  # accidental hits
        logits = torch.cat([pos[:, None], neg_logits], dim=1).float()  # (P, 1 + N), the target in column 0
        return weighted_cross_entropy(logits, torch.zeros_like(target), weight)


class IntentRecLoss:
    """L = L_item + λ Σ_i L_intent_i (PAPER Eq. 4).

    * Item: weighted CE at positions with ``batch.target_item > 0`` and a positive item weight; the hidden rows
      there (P, D) go through ``model.catalogue_logits`` (P, I - 2: the real items, PAD/UNK never computed) when
      the model has it, else ``model.score_items`` (P, I) with PAD/UNK masked — the same loss either way. The item weight is ``batch.target_weight``, multiplied
      by ``output.item_loss_weight`` when the model gives one (BERT4Rec: 1 at its masked positions, 0 elsewhere,
      so only those count); it never affects the intent parts.
    * Intents: for every head in ``output.intent_logits``, weighted CE (single-label targets (B, n)) or
      multi-positive CE (multi-label targets (B, n, L)) at positions with a non-zero target, same weights.

    Args:
        lambda_intent: λ, the weight of the summed intent losses (>= 0).
        item_sampler: a :class:`SampledSoftmax` for the item part (default: the full softmax).

    Raises:
        ValueError: ``lambda_intent`` is negative.
    """

    def __init__(self, lambda_intent: float, item_sampler: SampledSoftmax | None = None) -> None:
        if lambda_intent < 0:
            raise ValueError(f"lambda_intent must be >= 0, got {lambda_intent}")
        self.lambda_intent = float(lambda_intent)
        self.item_sampler = item_sampler

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
        item_target = batch.target_item.reshape(-1)[rows]  # (P,)
        history = HistoryBoosts.of_rows(output, batch, rows)  # None without repeat boosts
        catalogue = getattr(model, "catalogue_logits", None)
        if self.item_sampler is not None:
            item_loss = self.item_sampler(model, hidden, item_target, item_weight[rows], history=history)
        elif catalogue is not None:  # real items only: no (P, I) masking pass over PAD/UNK
            item_logits = catalogue(hidden)  # (P, I - 2), column j = item j + 2
            if history is not None:
                item_logits = history.add(item_logits, offset=N_MASKED_ITEMS)
            item_loss = weighted_cross_entropy(item_logits, item_target - N_MASKED_ITEMS, item_weight[rows])
        else:
            item_logits = model.score_items(hidden)  # (P, I)
            if history is not None:
                item_logits = history.add(item_logits)
            item_loss = weighted_cross_entropy(item_logits, item_target, item_weight[rows])
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
