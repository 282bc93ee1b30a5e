"""IntentRec (FM-Intent) and its ablations V0-V3, selected by ``ModelConfig.variant`` (PAPER §3, §6.5).

Data flow of the full model (V3; PAPER §3.4), with the names used in this module::

    batch ──FeatureEmbedder──► F (B, n, d_full)                                     # PAPER §2
    F ──ShortTermEncoder (FCNorm → +E_t → 1 layer, window_mask [pos_k, k])──► S (B, n, d_short)   # Eq. 1
    X = [F ; S]                                                        (B, n, d_full + d_short)
    X ──intent_encoder (FCNorm → +E_t(T) → causal Transformer)──► E_int (B, n, D)  # §3.1 steps 1-2
    logits_i = IntentHeads_i(E_int), PAD class masked                  (B, n, d_i)  # §3.1 step 3
    p_i = softmax(logits_i);  P_i = Proj_i(p_i)                        (B, n, d_proj)   # step 4
    a_i = FC_att(P_i)                                                  (B, n, 1)        # step 5
    w = softmax_i(a_1..a_M)  = intent_attention                        (B, n, M)
    Z = Σ_i w_i P_i          = intent_embedding                        (B, n, d_proj)   # step 6, Eq. 2
    Y = [X ; Z]                                                        (B, n, d_full + d_short + d_proj)
    Y ──item_encoder (FCNorm → +E_t(T) → causal Transformer)──► E_item = item_hidden (B, n, D)  # §3.2 7-9
    score_items(E_item[positions]) = FC_item (linear or tied)          (P, I)           # §3.2 step 10

Variants share this code:

* **V0** — no S, no heads: ``F → item_encoder → item_hidden``.
* **V1** — one shared encoder (``item_encoder``) over F; intent heads and the item head both read its output.
* **V2** — the diagram without S (``X = F``).
* **V3** — the diagram; S is off (V3 = V2) when the data is timed and ``cfg.horizon`` is ``off``.

Options that are not in the paper (off by default, each starting as the model without it): ``cfg.request_gap``
adds E_gap(T_request − T_k) (:class:`~intentrec.model.layers.RequestGapEmbedding`) to E_int before the heads and to
E_item; ``cfg.repeat_boost`` / ``cfg.repeat_boost_attributes`` add history scores read from E_item;
``cfg.output_attributes`` adds attribute embeddings to FC_item's rows; ``cfg.input_block_norm`` LayerNorms each block
of X and Z before the encoders' input projections; ``cfg.zero_side_inputs`` starts the projection columns of every
block but the item id at zero; ``cfg.short_stop_gradient`` computes S from F without back-propagating into F.

The item loss back-propagates through Z into the heads and the intent encoder (no stop-gradient, PAPER §3.3).
The model returns :class:`~intentrec.structs.ModelOutput`; item scores over the catalogue are computed only by
:meth:`IntentRec.score_items` on the rows that need them (losses live in :mod:`intentrec.model.losses`).
"""

from __future__ import annotations

import torch
from torch import nn

from intentrec.config import ModelConfig
from intentrec.errors import ConfigError
from intentrec.structs import AttributeBoost, AttributeSpec, DataSpec, ModelOutput, SequenceBatch

from .layers import (
    BlockLayerNorm,
    CausalEncoder,
    FCNorm,
    FeatureEmbedder,
    RepeatBoost,
    TimestampEncoding,
    attribute_repeat_boost,
    catalogue_linear,
    causal_mask,
    item_attribute_table,
    mask_leading_classes,
    pad_masked_classes,
    request_gap_embedding,
    weight_initializer,
    window_mask,
)

__all__ = [
    "IntentFusion",
    "IntentHeads",
    "IntentRec",
    "SequenceEncoder",
    "ShortTermEncoder",
    "select_heads",
]

N_MASKED_ITEMS = 2
"""Item columns never ranked: PAD (0) and UNK (1)."""


def select_heads(cfg: ModelConfig, spec: DataSpec) -> tuple[AttributeSpec, ...]:
    """The intents that get a head: ``cfg.heads`` in that order, or every intent of ``spec`` when None.

    Raises:
        ConfigError: ``cfg.heads`` names an attribute that is not an intent of ``spec``, repeats a name, or the
            variant needs heads and none are available.
    """
    if cfg.variant == "V0":
        return ()
    intents = {a.name: a for a in spec.intents}
    if cfg.heads is None:
        heads = tuple(spec.intents)
    else:
        unknown = [h for h in cfg.heads if h not in intents]
        if unknown:
            raise ConfigError(
                f"model.heads names {unknown}, which are not intents of the data; available intents: "
                f"{sorted(intents)} (fix model.heads or data.intents)"
            )
        if len(set(cfg.heads)) != len(cfg.heads):
            raise ConfigError(f"model.heads repeats a name: {list(cfg.heads)}")
        heads = tuple(intents[h] for h in cfg.heads)
    if not heads:
        raise ConfigError(
            f"model.variant {cfg.variant} needs at least one intent head, but the data has no intents "
            "(add data.intents or use variant V0)"
        )
    return heads


class SequenceEncoder(nn.Module):
    """FC + Norm → + timestamp encoding → dropout → Transformer (PAPER §3.1 steps 1-2, §3.2 steps 8-9).

    Used as the intent encoder, the item encoder (causal mask) and inside the short-term encoder (window mask).

    Args:
        cfg: hyperparameters (``ffn_mult``, ``dropout``, time-encoding sizes).
        spec: data sizes (``timed`` selects the time encoding).
        d_in: width of the input features.
        d_model: Transformer width.
        n_layers: Transformer blocks.
        n_heads: attention heads per block.
    """

    def __init__(
        self, cfg: ModelConfig, spec: DataSpec, d_in: int, d_model: int, n_layers: int, n_heads: int
    ) -> None:
        super().__init__()
        self.input_proj = FCNorm(d_in, d_model)
        self.time_encoding = TimestampEncoding(cfg, spec, d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.transformer = CausalEncoder(d_model, n_layers, n_heads, cfg.ffn_mult, cfg.dropout)

    def forward(self, features: torch.Tensor, batch: SequenceBatch, attn_mask: torch.Tensor) -> torch.Tensor:
        """Encode a feature sequence.

        Args:
            features: (B, n, d_in).
            batch: the batch (time fields for the positional encoding).
            attn_mask: (B, 1, n, n) bool, ``True`` = may attend.

        Returns:
            (B, n, d_model).
        """
        x = self.input_proj(features) + self.time_encoding(batch)  # (B, n, d_model)  PAPER §10 #7, #8
        return self.transformer(self.dropout(x), attn_mask)  # (B, n, d_model)


class ShortTermEncoder(nn.Module):
    """S_k = Enc(F_pos, ..., F_k): short-term interest (PAPER §2 Eq. 1, §10 #4).

    Linear + LayerNorm (d_full → d_short), its own timestamp encoding, then one pre-LN Transformer layer
    (``cfg.short_heads`` heads) whose attention is restricted to the band ``[batch.window_start[k], k]``; S_k is
    the output at k, so all S_k come from one pass.

    Args:
        cfg: hyperparameters (``d_short``, ``short_heads``).
        spec: data sizes.
        d_in: width of F (``FeatureEmbedder.d_full``).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec, d_in: int) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(cfg, spec, d_in, cfg.d_short, 1, cfg.short_heads)

    def forward(self, features: torch.Tensor, batch: SequenceBatch) -> torch.Tensor:
        """(B, n, d_in) features -> (B, n, d_short) short-term interest S."""
        mask = window_mask(batch.valid, batch.window_start)  # (B, 1, n, n)  band [pos_k, k]
        return self.encoder(features, batch, mask)  # (B, n, d_short)


class IntentHeads(nn.Module):
    """FC_i: one linear head per intent, logits of the next event's label (PAPER §3.1 step 3).

    Class 0 (PAD) is masked to :data:`~intentrec.model.layers.MASKED_LOGIT` so it never gets probability.
    Multi-label intents use the same softmax head (trained with the multi-positive loss, PAPER §10 #13).

    Args:
        d_model: encoder width.
        heads: the intents, in output order.
    """

    def __init__(self, d_model: int, heads: tuple[AttributeSpec, ...]) -> None:
        super().__init__()
        self.names = tuple(a.name for a in heads)
        # a list, not a dict: a name such as "items" or "keys" would clash with nn.ModuleDict attributes
        self.fc = nn.ModuleList(nn.Linear(d_model, a.n_classes) for a in heads)

    def forward(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, n, D) -> intent name -> (B, n, d_i) logits with the PAD class masked."""
        return {
            name: mask_leading_classes(fc(hidden), 1)  # (B, n, d_i)
            for name, fc in zip(self.names, self.fc, strict=True)
        }


class IntentFusion(nn.Module):
    """Z = Σ_i softmax_i(FC_att(Proj_i(p_i))) · Proj_i(p_i) (PAPER §3.1 steps 4-6, Eq. 2, §10 #10).

    Args:
        heads: the intents, in the order of :class:`IntentHeads`.
        d_proj: width of Proj_i outputs and of Z.
    """

    def __init__(self, heads: tuple[AttributeSpec, ...], d_proj: int) -> None:
        super().__init__()
        self.names = tuple(a.name for a in heads)
        self.proj = nn.ModuleList(nn.Linear(a.n_classes, d_proj) for a in heads)
        self.fc_att = nn.Linear(d_proj, 1)  # shared across heads, with bias

    def forward(self, logits: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse the head predictions.

        Args:
            logits: intent name -> (B, n, d_i) masked logits.

        Returns:
            ``(intent_attention, intent_embedding)``: (B, n, M) softmax weights over heads and (B, n, d_proj) Z.
        """
        projected = torch.stack(
            [proj(torch.softmax(logits[name], dim=-1)) for name, proj in zip(self.names, self.proj, strict=True)],
            dim=-2,
        )  # (B, n, M, d_proj)  P_i = Proj_i(p_i), step 4
        alpha = self.fc_att(projected).squeeze(-1)  # (B, n, M)  step 5
        weights = torch.softmax(alpha, dim=-1)  # (B, n, M)  softmax over heads
        z = (weights[..., None] * projected).sum(dim=-2)  # (B, n, d_proj)  Eq. 2
        return weights, z


class IntentRec(nn.Module):
    """IntentRec V0-V3 (see the module docstring for the data flow).

    Args:
        cfg: model hyperparameters; ``cfg.variant`` picks the architecture, ``cfg.heads`` the intent heads.
        spec: data-derived sizes.

    Raises:
        ConfigError: the heads in ``cfg.heads`` are not intents of ``spec``, or a variant with heads has none.

    Attributes:
        head_names: intent heads in the order of the last axis of ``intent_attention``.
        uses_short_term: whether S_k is computed (V3 with a horizon, or untimed data).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        self.variant = cfg.variant
        heads = select_heads(cfg, spec)
        self.head_names = tuple(a.name for a in heads)
        D = cfg.d_model

        self.embedder = FeatureEmbedder(cfg, spec)
        self.input_dropout = nn.Dropout(cfg.dropout if cfg.feature_dropout is None else cfg.feature_dropout)
        d_x = self.embedder.d_full  # width of X = F or [F ; S]

        self.uses_short_term = cfg.variant == "V3" and (not spec.timed or cfg.horizon_seconds is not None)
        self.short_encoder: ShortTermEncoder | None = None
        if self.uses_short_term:
            self.short_encoder = ShortTermEncoder(cfg, spec, self.embedder.d_full)
            d_x += cfg.d_short

        # model.input_block_norm: one LayerNorm per block of X = [item; attributes; numeric; S] and one for Z
        self.input_norm: BlockLayerNorm | None = None
        self.z_norm: nn.Module = nn.Identity()
        if cfg.input_block_norm:
            blocks = [(cfg.item_emb_dim, True), *((cfg.cat_emb_dim, True) for _ in self.embedder.attributes)]
            blocks += [(self.embedder.n_numeric, False)] if self.embedder.n_numeric else []
            blocks += [(cfg.d_short, True)] if self.uses_short_term else []
            self.input_norm = BlockLayerNorm(tuple(blocks))
            self.z_norm = nn.LayerNorm(cfg.d_proj)

        self.intent_encoder: SequenceEncoder | None = None
        self.intent_heads: IntentHeads | None = None
        self.intent_fusion: IntentFusion | None = None
        d_item_in = d_x
        if cfg.variant in ("V2", "V3"):
            self.intent_encoder = SequenceEncoder(cfg, spec, d_x, D, cfg.n_layers, cfg.n_heads)
            self.intent_fusion = IntentFusion(heads, cfg.d_proj)
            d_item_in += cfg.d_proj
        if cfg.variant != "V0":
            self.intent_heads = IntentHeads(D, heads)
        # V1: this is the shared encoder read by both the intent heads and the item head
        self.item_encoder = SequenceEncoder(cfg, spec, d_item_in, D, cfg.n_layers, cfg.n_heads)

        self.item_head = cfg.item_head
        if cfg.item_head == "tied":
            self.item_proj = nn.Linear(D, cfg.item_emb_dim)
        if cfg.item_head in ("tied", "dot"):  # ModelConfig checks item_emb_dim == D for "dot"
            self.item_bias = nn.Parameter(torch.zeros(spec.n_items))
        else:
            self.item_out = nn.Linear(D, spec.n_items)
        # model.output_attributes: attribute embeddings added to every item's row (None = the paper's FC_item)
        self.item_attributes = item_attribute_table(cfg, spec, D if cfg.item_head == "linear" else cfg.item_emb_dim)
        # model.repeat_boost: a learned score for the items already in the input (None = the paper's head alone)
        self.repeat_boost = RepeatBoost(D, cfg.max_len) if cfg.repeat_boost else None
        # model.repeat_boost_attributes: the same at the level of an item attribute such as a show (None = off)
        self.attribute_boost = attribute_repeat_boost(cfg, spec, D)
        # model.request_gap: the time to the request, added to the rows the intent heads and the item head read
        self.request_gap_intent = request_gap_embedding(cfg, D) if cfg.variant in ("V2", "V3") else None
        self.request_gap_item = request_gap_embedding(cfg, D)

        self.apply(weight_initializer(cfg.init))
        for encoder in (self.intent_encoder, self.item_encoder):
            if encoder is None:
                continue
            weight = encoder.input_proj.linear.weight  # (D, d_in); the item-id block of F comes first (FeatureEmbedder)
            with torch.no_grad():
                if cfg.identity_init:
                    weight[:, : cfg.item_emb_dim] = torch.eye(cfg.item_emb_dim)
                if cfg.zero_side_inputs:  # attributes, numerics, S, Z: learned from zero
                    weight[:, cfg.item_emb_dim :] = 0.0

    @property
    def item_embedding(self) -> nn.Embedding:
        """The (I, item_emb_dim) item-id embedding of the input features (shared with the tied item head)."""
        return self.embedder.item_embedding

    def forward(self, batch: SequenceBatch) -> ModelOutput:
        """Run the model on a left-padded batch.

        Args:
            batch: inputs; targets are not read.

        Returns:
            :class:`ModelOutput` with ``item_hidden`` (B, n, d_model); ``intent_logits`` name -> (B, n, d_i)
            (empty for V0); ``intent_attention`` (B, n, M) and ``intent_embedding`` (B, n, d_proj) for V2/V3,
            else None. Values at padding positions are finite and meaningless.
        """
        features = self.input_dropout(self.embedder(batch))  # (B, n, d_full)  F, PAPER §2
        mask = causal_mask(batch.valid)  # (B, 1, n, n)  PAPER §3.1 step 2, §10 #9
        x = features
        if self.short_encoder is not None:
            short_in = features.detach() if self.cfg.short_stop_gradient else features  # (B, n, d_full)
            short = self.short_encoder(short_in, batch)  # (B, n, d_short)  S, PAPER Eq. 1
            x = torch.cat([features, short], dim=-1)  # (B, n, d_full + d_short)  F ⊕ S
        if self.input_norm is not None:
            x = self.input_norm(x)  # (B, n, d_x)  every block at unit scale

        if self.intent_encoder is None:  # V0, V1: a single encoder
            hidden = self.item_encoder(x, batch, mask)  # (B, n, D)
            if self.request_gap_item is not None:
                hidden = hidden + self.request_gap_item(batch)  # (B, n, D)  + E_gap(T_request − T_k)
            logits = {} if self.intent_heads is None else self.intent_heads(hidden)  # name -> (B, n, d_i)
            return ModelOutput(
                item_hidden=hidden, intent_logits=logits, intent_attention=None, intent_embedding=None,
                history_boost=self._history_boost(hidden, batch),
                attribute_boosts=self._attribute_boosts(hidden, batch),
            )

        assert self.intent_heads is not None and self.intent_fusion is not None  # set together in __init__
        intent_hidden = self.intent_encoder(x, batch, mask)  # (B, n, D)  E^intent
        if self.request_gap_intent is not None:
            intent_hidden = intent_hidden + self.request_gap_intent(batch)  # (B, n, D)  + E_gap(T_request − T_k)
        logits = self.intent_heads(intent_hidden)  # name -> (B, n, d_i)  PAPER §3.1 step 3
        attention, z = self.intent_fusion(logits)  # (B, n, M), (B, n, d_proj)  PAPER Eq. 2
        y = torch.cat([x, self.z_norm(z)], dim=-1)  # (B, n, d_x + d_proj)  F ⊕ S ⊕ Z, PAPER §3.2 step 7
        item_hidden = self.item_encoder(y, batch, mask)  # (B, n, D)  E^item, steps 8-9
        if self.request_gap_item is not None:
            item_hidden = item_hidden + self.request_gap_item(batch)  # (B, n, D)
        return ModelOutput(
            item_hidden=item_hidden, intent_logits=logits, intent_attention=attention, intent_embedding=z,
            history_boost=self._history_boost(item_hidden, batch),
            attribute_boosts=self._attribute_boosts(item_hidden, batch),
        )

    def _history_boost(self, item_hidden: torch.Tensor, batch: SequenceBatch) -> torch.Tensor | None:
        """(B, n, n) the repeat boost read from E_item (which holds Z, and so the predicted intents), or None."""
        return None if self.repeat_boost is None else self.repeat_boost(item_hidden, batch.valid)

    def _attribute_boosts(self, item_hidden: torch.Tensor, batch: SequenceBatch) -> tuple[AttributeBoost, ...]:
        """The attribute repeat boosts read from E_item (``cfg.repeat_boost_attributes``), or ()."""
        return () if self.attribute_boost is None else self.attribute_boost(item_hidden, batch.valid)

    def score_items(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """FC_item: scores over the whole catalogue (PAPER §3.2 step 10), PAD and UNK masked.

        ``linear``: Linear(D, I). ``tied``: Linear(D, item_emb_dim), then the dot product with every item-id
        embedding plus a per-item bias. ``dot``: as ``tied`` without the Linear. With ``cfg.output_attributes``
        every item's row also holds its attribute embeddings (:class:`~intentrec.model.layers.ItemAttributeTable`).

        Args:
            item_hidden: (..., D) rows of ``ModelOutput.item_hidden`` (select positions first: (P, D)).

        Returns:
            (..., I) logits; columns 0 (PAD) and 1 (UNK) equal ``MASKED_LOGIT``.
        """
        return pad_masked_classes(self.catalogue_logits(item_hidden), N_MASKED_ITEMS)  # (..., I)

    def catalogue_logits(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """(..., I - 2) scores of the real items only (column j = item index j + 2): PAD/UNK are never computed
        (the training loss's input; :meth:`score_items` adds the masked columns)."""
        weight, bias = self.item_table()
        return catalogue_linear(self.item_query(item_hidden), weight, bias, N_MASKED_ITEMS, weight.shape[0])

    def item_query(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """(..., E) the query that is dotted with :meth:`item_table` rows (``tied``: projected; ``linear``, ``dot``:
        as is)."""
        return self.item_proj(item_hidden) if self.item_head == "tied" else item_hidden

    def item_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weight (I, E), bias (I,))`` of FC_item: score(item j) = query · weight[j] + bias[j] (weight[j] includes
        the item's attribute embeddings when ``cfg.output_attributes`` is set)."""
        if self.item_head in ("tied", "dot"):
            weight, bias = self.embedder.item_embedding.weight[: self.item_bias.shape[0]], self.item_bias
        else:
            weight, bias = self.item_out.weight, self.item_out.bias
        if self.item_attributes is not None:
            weight = weight + self.item_attributes()  # (I, E)
        return weight, bias
