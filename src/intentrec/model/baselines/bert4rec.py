"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional Transformer over item ids trained to fill in masked items
(the Cloze task); item ids in, next item out (PAPER §6.3).

Data flow::

    training (model.train()), the window plus its last target e_n:
      tokens = [e_0, e_1, …, e_{n-1} | target_item[:, -1]]                      (B, n + 1)
      cloze_mask: columns 1..n holding a real item that is also their target (weight > 0), each with
                  prob mask_prob, at least one per row  ──► those tokens = [MASK] (id I)      (B, n)
    evaluation (model.eval()), the history then the slot to predict:
      tokens = [e_0, e_1, …, e_{n-1} | [MASK]]                                  (B, n + 1)
    tokens, position (from the row's first event; max_len + 1 entries)
      ──ItemPositionEmbedding (I + 1 rows: [MASK] = I)──► dropout ──► x          (B, n + 1, D)
    x ──CausalEncoder with bidirectional_mask (pre-LN; every real token sees every real token)──► h  (B, n + 1, D)
    item_hidden = h[:, 1:]: column t is token t + 1, whose item is target_item[:, t]            (B, n, D)
    item_loss_weight = 1 at the masked columns (training) / at the last column (eval), else 0    (B, n)
    score_items(item_hidden[positions]) = FC_item (tied or linear) over the I items only        (P, I)

Only the masked columns are trained: :class:`~intentrec.model.losses.IntentRecLoss` multiplies the target weights
by ``item_loss_weight``. In eval mode the last column of ``item_hidden`` is the prediction for the event after
the history (what the evaluator and serving read); the other columns are outputs at *visible* items, not
predictions, and ``item_loss_weight`` leaves them out of a loss computed in eval mode.

Differences from the original implementation (``FeiSun/BERT4Rec``, TensorFlow), all deliberate:

* trained with full softmax cross-entropy over the catalogue by :class:`~intentrec.model.losses.IntentRecLoss`,
  duration-weighted like every model here (the original also uses a full softmax, unweighted);
* masks are drawn afresh at every forward pass from torch's global RNG (dynamic masking, as in BERT4Rec-VAE and
  RecBole) instead of ``dupe_factor`` pre-masked copies written to disk; the original's extra "last item masked"
  instances become "at least one mask per row" (the last candidate when none was drawn). ``cfg.mask_prob`` is the
  original's ``masked_lm_prob`` (no ``max_predictions_per_seq`` cap); a selected token always becomes [MASK], as
  with the original scripts' ``mask_prob=1.0`` (no BERT-style 80/10/10 random/keep replacement);
* training windows are the framework's (every event a target once, up to ``max_len`` inputs plus the last
  target), not the original's sliding windows; a token is a mask candidate only when it equals its column's
  ``target_item`` (so the Cloze target is the hidden token; UNK and untrained events are never masked);
* the item-id table has ``cfg.item_emb_dim`` columns (+ a Linear to ``cfg.d_model`` when the widths differ) and
  the tied head is IntentRec's (Linear(D → item_emb_dim), dot with the I item rows, + bias), the same head as
  every model in a comparison, instead of the original's GELU projection + LayerNorm before the dot product;
* the shared pre-LN blocks of :mod:`intentrec.model.layers` (GELU FFN) instead of post-LN BERT layers;
* positions count from the row's first real event (``batch.position``), so left padding changes nothing.

No intent heads: ``intent_logits`` is empty and the fusion outputs are None (BERT4Rec is N/A for intents,
PAPER Table 1).
"""

from __future__ import annotations

import torch
from torch import nn

from intentrec.config import ModelConfig
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch

from ..intentrec import N_MASKED_ITEMS
from ..layers import CausalEncoder, bidirectional_mask, weight_initializer
from ._common import BaselineModel, ItemPositionEmbedding, ItemScoreHead

__all__ = ["BERT4Rec", "cloze_mask"]


def cloze_mask(tokens: torch.Tensor, batch: SequenceBatch, mask_prob: float) -> torch.Tensor:
    """Draw the masked positions of one training batch (the Cloze task).

    Column ``t`` stands for token ``t + 1`` of the (B, n + 1) token row, whose item is ``batch.target_item[:, t]``.
    A column is a candidate iff that token is a real item (>= 2, not PAD/UNK), equals ``target_item[:, t]`` and
    ``target_weight[:, t] > 0``. Each candidate is masked with probability ``mask_prob`` (torch's global RNG);
    a row with candidates but no draw gets its last candidate masked (the position BERT4Rec is evaluated on).

    Args:
        tokens: (B, n) long item ids of tokens 1..n (``[e_1, …, e_n]``).
        batch: the batch (``target_item``, ``target_weight``).
        mask_prob: probability of masking a candidate, in (0, 1).

    Returns:
        (B, n) bool, True where the token is replaced by [MASK]; every row with a candidate has at least one.
    """
    n = tokens.shape[1]
    candidate = (tokens >= N_MASKED_ITEMS) & (tokens == batch.target_item) & (batch.target_weight > 0)  # (B, n)
    drawn = torch.rand(candidate.shape, device=tokens.device) < mask_prob  # (B, n)
    masked = candidate & drawn  # (B, n)
    column = torch.arange(1, n + 1, device=tokens.device)  # (n,)
    last = (candidate * column).argmax(dim=1, keepdim=True)  # (B, 1) column of the last candidate
    needs_one = candidate.any(dim=1, keepdim=True) & ~masked.any(dim=1, keepdim=True)  # (B, 1)
    return masked | torch.zeros_like(masked).scatter(1, last, needs_one)  # (B, n)


class BERT4Rec(BaselineModel):
    """BERT4Rec with a full-softmax item head (see the module docstring).

    ``forward`` depends on the mode: in training it masks random items of the window and its last target and
    returns ``item_loss_weight`` = 1 at the masked columns; in eval mode it appends one [MASK] after the history
    and ``item_hidden[:, -1]`` is the next-item prediction (``item_loss_weight`` = 1 at the last column only).

    Args:
        cfg: hyperparameters (``d_model``, ``n_layers``, ``n_heads``, ``ffn_mult``, ``dropout``,
            ``item_emb_dim``, ``max_len``, ``item_head``, ``mask_prob``); ``variant`` and ``heads`` are ignored.
        spec: data-derived sizes (only ``n_items`` is used: item ids are the only input).

    Attributes:
        head_names: always ``()`` (no intent heads).
        mask_idx: the [MASK] token id (= I, the extra last row of ``item_embedding``; never scored).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        self.head_names: tuple[str, ...] = ()
        self.mask_idx = spec.n_items
        self.mask_prob = cfg.mask_prob
        # one extra token ([MASK]) and one extra position (n history events + the slot to predict)
        self.embedder = ItemPositionEmbedding(cfg, spec, extra_tokens=1, extra_positions=1)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.encoder = CausalEncoder(cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout)
        self.intent_heads = None
        self.item_output = ItemScoreHead(cfg, spec, cfg.d_model)
        self.apply(weight_initializer(cfg.init))

    @property
    def item_embedding(self) -> nn.Embedding:
        """The (I + 1, item_emb_dim) token embedding: the I items, then [MASK] (the tied head uses the I items)."""
        return self.embedder.item_embedding

    def forward(self, batch: SequenceBatch) -> ModelOutput:
        """Run the model on a left-padded batch.

        Args:
            batch: inputs (``item_idx``, ``valid``, ``position``); in training mode also ``target_item`` and
                ``target_weight`` (the last target is the final token, and masks go only where targets are).

        Returns:
            :class:`ModelOutput` with ``item_hidden`` (B, n, d_model) aligned with ``target_item``,
            ``item_loss_weight`` (B, n), empty ``intent_logits`` and None fusion outputs. Values at padding
            positions are finite and meaningless.
        """
        B, n = batch.item_idx.shape
        if self.training:
            last_target = batch.target_item[:, -1:]  # (B, 1) e_n, 0 when there is none
            tokens = torch.cat([batch.item_idx, last_target], dim=1)  # (B, n + 1)
            token_valid = torch.cat([batch.valid, last_target > 0], dim=1)  # (B, n + 1)
            masked = cloze_mask(tokens[:, 1:], batch, self.mask_prob)  # (B, n)
            tokens = torch.cat(
                [tokens[:, :1], tokens[:, 1:].masked_fill(masked, self.mask_idx)], dim=1
            )  # (B, n + 1)
            item_loss_weight = masked.float()  # (B, n)
        else:
            slot = batch.item_idx.new_full((B, 1), self.mask_idx)  # (B, 1) [MASK] after the history
            tokens = torch.cat([batch.item_idx, slot], dim=1)  # (B, n + 1)
            token_valid = torch.cat([batch.valid, torch.ones_like(batch.valid[:, :1])], dim=1)  # (B, n + 1)
            last = torch.arange(n, device=tokens.device) == n - 1  # (n,)
            item_loss_weight = last.float().expand(B, n)  # (B, n) the [MASK] column only
        # the appended token is the event after the last one: one past the last position (0 in an empty row)
        next_position = batch.position[:, -1:] + batch.valid[:, -1:].long()  # (B, 1)
        position = torch.cat([batch.position, next_position], dim=1)  # (B, n + 1)
        x = self.input_dropout(self.embedder.embed(tokens, position, token_valid))  # (B, n + 1, D)
        hidden = self.encoder(x, bidirectional_mask(token_valid))  # (B, n + 1, D)
        return self.heads_output(hidden[:, 1:], item_loss_weight=item_loss_weight)  # item_hidden (B, n, D)
