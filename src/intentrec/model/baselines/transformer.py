"""The "Transformer with intent heads" baseline: one causal encoder over item ids, parallel heads (PAPER §6.3).

Data flow::

    item_idx, position ──ItemPositionEmbedding──► dropout ──► x (B, n, D)       # as SASRec
    x ──CausalEncoder (pre-LN, causal mask)──► item_hidden (B, n, D)
    logits_i = FC_i(item_hidden), PAD class masked                             (B, n, d_i)
    score_items(item_hidden[positions]) = FC_item (tied or linear)             (P, I)

PAPER §6.3: "we add multiple intent prediction heads to each encoder" (simple multi-task learning) and the
baselines see item ids only. The body is SASRec's; the difference is the intent heads, trained jointly by
:class:`~intentrec.model.losses.IntentRecLoss` (L = L_item + λ Σ L_intent). The intent predictions are not fed
back into the item path (no fusion: ``intent_attention`` and ``intent_embedding`` are None).
"""

from __future__ import annotations

from torch import nn

from intentrec.config import ModelConfig
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch

from ..intentrec import IntentHeads
from ..layers import CausalEncoder, causal_mask, weight_initializer
from ._common import BaselineModel, ItemPositionEmbedding, ItemScoreHead, baseline_heads

__all__ = ["TransformerRec"]


class TransformerRec(BaselineModel):
    """A causal Transformer over item ids with an item head and one linear head per intent.

    Args:
        cfg: hyperparameters (``d_model``, ``n_layers``, ``n_heads``, ``ffn_mult``, ``dropout``,
            ``item_emb_dim``, ``max_len``, ``item_head``, ``heads``); ``variant`` is ignored.
        spec: data-derived sizes (``n_items`` and the intents; attributes are never inputs).
        with_intent_heads: False gives SASRec (item head only).

    Raises:
        ConfigError: ``cfg.heads`` names an attribute that is not an intent of ``spec``, or repeats a name.

    Attributes:
        head_names: intent heads in the order of ``intent_logits`` (empty when the data has no intents).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec, *, with_intent_heads: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        heads = baseline_heads(cfg, spec) if with_intent_heads else ()
        self.head_names = tuple(a.name for a in heads)
        self.embedder = ItemPositionEmbedding(cfg, spec)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.encoder = CausalEncoder(cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout)
        self.intent_heads = IntentHeads(cfg.d_model, heads) if heads else None
        self.item_output = ItemScoreHead(cfg, spec, cfg.d_model)
        self.apply(weight_initializer(cfg.init))

    @property
    def item_embedding(self) -> nn.Embedding:
        """The (I, item_emb_dim) item-id embedding of the input (shared with a tied item head)."""
        return self.embedder.item_embedding

    def forward(self, batch: SequenceBatch) -> ModelOutput:
        """Run the model on a left-padded batch.

        Args:
            batch: inputs (``item_idx``, ``valid``, ``position``); targets are not read.

        Returns:
            :class:`ModelOutput` with ``item_hidden`` (B, n, d_model), ``intent_logits`` name -> (B, n, d_i)
            with the PAD class masked, and None fusion outputs. Values at padding positions are finite and
            meaningless.
        """
        x = self.input_dropout(self.embedder(batch))  # (B, n, D)
        hidden = self.encoder(x, causal_mask(batch.valid))  # (B, n, D)
        return self.heads_output(hidden, valid=batch.valid, batch=batch)

