"""SASRec (Kang & McAuley, ICDM 2018), the "SASRec+ / full CE" form: item ids in, next item out (PAPER §6.3).

Data flow::

    item_idx ──E_i (I, item_emb_dim) → Linear → D──┐
    position ──P (max_len, D)──────────────────────┴─► + ─► dropout ─► x (B, n, D)
    x ──CausalEncoder (pre-LN, causal mask with the diagonal)──► item_hidden (B, n, D)
    score_items(item_hidden[positions]) = FC_item (tied or linear)               (P, I)

Differences from the original implementation (``pmixer/SASRec.pytorch``), all deliberate:

* trained with full softmax cross-entropy over the catalogue by :class:`~intentrec.model.losses.IntentRecLoss`
  (duration-weighted like every model here) instead of one sampled negative with BCE, the stronger form that
  later work calls SASRec+ / full-CE SASRec;
* the item-id table has ``cfg.item_emb_dim`` columns and a Linear maps it to ``cfg.d_model`` when the widths
  differ, so the tied head is IntentRec's (Linear(D → item_emb_dim), dot with the item table, + bias) and every
  model in a comparison uses the same head; no sqrt(D) scaling of the embedding (both tables start at std 0.02);
* positions count from the row's first real event (``batch.position``), so left padding changes nothing;
* the shared pre-LN blocks of :mod:`intentrec.model.layers` (GELU FFN) instead of SASRec's ReLU point-wise FFN.

No intent heads: ``intent_logits`` is empty and the fusion outputs are None (SASRec is N/A for intents, Table 1).
"""

from __future__ import annotations

import torch
from torch import nn

from intentrec.config import ModelConfig
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch

from ..layers import CausalEncoder, causal_mask, init_weights
from ._common import ItemPositionEmbedding, ItemScoreHead

__all__ = ["SASRec"]


class SASRec(nn.Module):
    """SASRec with a full-softmax item head (see the module docstring).

    Args:
        cfg: hyperparameters (``d_model``, ``n_layers``, ``n_heads``, ``ffn_mult``, ``dropout``,
            ``item_emb_dim``, ``max_len``, ``item_head``); ``variant`` and ``heads`` are ignored.
        spec: data-derived sizes (only ``n_items`` is used: item ids are the only input).

    Attributes:
        head_names: always ``()`` (no intent heads).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        self.head_names: tuple[str, ...] = ()
        self.embedder = ItemPositionEmbedding(cfg, spec)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.encoder = CausalEncoder(cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout)
        self.item_output = ItemScoreHead(cfg, spec, cfg.d_model)
        self.apply(init_weights)

    @property
    def item_embedding(self) -> nn.Embedding:
        """The (I, item_emb_dim) item-id embedding of the input (shared with a tied item head)."""
        return self.embedder.item_embedding

    def forward(self, batch: SequenceBatch) -> ModelOutput:
        """Run the model on a left-padded batch.

        Args:
            batch: inputs (``item_idx``, ``valid``, ``position``); targets are not read.

        Returns:
            :class:`ModelOutput` with ``item_hidden`` (B, n, d_model), empty ``intent_logits`` and None fusion
            outputs. Values at padding positions are finite and meaningless.
        """
        x = self.input_dropout(self.embedder(batch))  # (B, n, D)
        hidden = self.encoder(x, causal_mask(batch.valid))  # (B, n, D)
        return ModelOutput(item_hidden=hidden, intent_logits={}, intent_attention=None, intent_embedding=None)

    def score_items(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the whole catalogue, PAD and UNK masked.

        Args:
            item_hidden: (..., D) rows of ``ModelOutput.item_hidden``.

        Returns:
            (..., I) logits; columns 0 (PAD) and 1 (UNK) equal ``MASKED_LOGIT``.
        """
        return self.item_output(item_hidden, self.item_embedding)  # (..., I)
