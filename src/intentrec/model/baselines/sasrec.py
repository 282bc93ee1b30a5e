"""SASRec (Kang & McAuley, ICDM 2018), the "SASRec+ / full CE" form: item ids in, next item out (PAPER §6.3).

Data flow::

    item_idx ──E_i (I, item_emb_dim) → Linear → D──┐
    position ──P (max_len, D)──────────────────────┴─► + ─► LayerNorm ─► dropout ─► x (B, n, D)
    x ──CausalEncoder (pre-LN, causal mask with the diagonal)──► item_hidden (B, n, D)
    score_items(item_hidden[positions]) = FC_item (tied or linear)               (P, I)

Differences from the original implementation (``pmixer/SASRec.pytorch``), all deliberate:

* trained with full softmax cross-entropy over the catalogue by :class:`~intentrec.model.losses.IntentRecLoss`
  (duration-weighted like every model here) instead of one sampled negative with BCE, the stronger form that
  later work calls SASRec+ / full-CE SASRec;
* the item-id table has ``cfg.item_emb_dim`` columns and a Linear maps it to ``cfg.d_model`` when the widths
  differ, so the tied head is IntentRec's (Linear(D → item_emb_dim), dot with the item table, + bias) and every
  model in a comparison uses the same head (``item_head: dot`` drops the Linear, as the original does); the
  embedding sum is layer-normalised (as in RecBole) instead of scaling the item embedding by sqrt(D);
* positions count from the row's first real event (``batch.position``), so left padding changes nothing;
* the shared pre-LN blocks of :mod:`intentrec.model.layers` (GELU FFN) instead of SASRec's ReLU point-wise FFN.

No intent heads: ``intent_logits`` is empty and the fusion outputs are None (SASRec is N/A for intents, Table 1).
"""

from __future__ import annotations

from intentrec.config import ModelConfig
from intentrec.structs import DataSpec

from .transformer import TransformerRec

__all__ = ["SASRec"]


class SASRec(TransformerRec):
    """SASRec with a full-softmax item head (see the module docstring).

    Args:
        cfg: hyperparameters (``d_model``, ``n_layers``, ``n_heads``, ``ffn_mult``, ``dropout``,
            ``item_emb_dim``, ``max_len``, ``item_head``); ``variant`` and ``heads`` are ignored.
        spec: data-derived sizes (only ``n_items`` is used: item ids are the only input).

    Attributes:
        head_names: always ``()`` (no intent heads).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec, with_intent_heads=False)
