"""Pieces shared by the baselines of PAPER §6.3 (item ids in, item head and optional intent heads out).

* :func:`baseline_heads` — which intents get a linear head (``cfg.heads`` or every intent; none is allowed).
* :class:`ItemPositionEmbedding` — item-id embedding (+ projection to D) + learned absolute position embedding,
  the input of the Transformer baselines (SASRec, Transformer, BERT4Rec).
* :class:`ItemScoreHead` — FC_item over the catalogue, ``tied`` or ``linear`` exactly as in IntentRec, so every
  model in a comparison ranks items with the same kind of head.
"""

from __future__ import annotations

import torch
from torch import nn

from intentrec.config import ModelConfig
from intentrec.errors import ConfigError
from intentrec.structs import AttributeSpec, DataSpec, ModelOutput, SequenceBatch

from ..intentrec import N_MASKED_ITEMS, IntentHeads, select_heads
from ..layers import (
    RepeatBoost,
    attribute_repeat_boost,
    catalogue_linear,
    item_attribute_table,
    pad_masked_classes,
    request_gap_embedding,
)

__all__ = ["ItemPositionEmbedding", "ItemScoreHead", "baseline_heads"]


def baseline_heads(cfg: ModelConfig, spec: DataSpec) -> tuple[AttributeSpec, ...]:
    """The intents that get a head in a baseline: ``cfg.heads`` in that order, or every intent of ``spec``.

    Unlike IntentRec's :func:`~intentrec.model.intentrec.select_heads`, ``cfg.variant`` is ignored and a baseline
    without intents (data without intents, or ``cfg.heads == ()``) is allowed: it predicts the next item only.

    Args:
        cfg: model hyperparameters (``heads``).
        spec: data-derived sizes (``spec.intents``).

    Returns:
        The intents, in head order (possibly empty).

    Raises:
        ConfigError: ``cfg.heads`` names an attribute that is not an intent of ``spec``, or repeats a name.

    Example:
        >>> from intentrec.testing import random_spec, tiny_model_config
        >>> [a.name for a in baseline_heads(tiny_model_config(), random_spec())]
        ['action', 'genre']
        >>> baseline_heads(tiny_model_config(heads=()), random_spec())
        ()
    """
    if cfg.heads == () or (cfg.heads is None and not spec.intents):
        return ()
    # same validation and messages as IntentRec; V1 is a variant that has heads
    return select_heads(cfg.model_copy(update={"variant": "V1"}), spec)


class ItemPositionEmbedding(nn.Module):
    """x_k = LayerNorm(W · E_i[I_k] + P[pos_k]): the input of the Transformer baselines (item ids only, PAPER §6.3).

    The item id is embedded to ``cfg.item_emb_dim`` (the table a tied item head shares) and mapped to
    ``cfg.d_model`` by a Linear layer when the widths differ (identity when they are equal). The learned absolute
    position embedding (``cfg.max_len`` entries) is indexed by ``batch.position``, counted from the row's first
    real event, so extra left padding does not change it; positions >= ``max_len`` are clamped to the last entry.
    The sum is layer-normalised (as in BERT4Rec and RecBole's SASRec): with both tables initialised at std 0.02 the
    un-normalised input is swamped by the first block's residual branches, and SASRec learned about half as fast
    per step on Amazon Beauty (BENCHMARKS.md "Training recipe"). Padding positions embed to zeros.

    Args:
        cfg: hyperparameters (``item_emb_dim``, ``d_model``, ``max_len``).
        spec: data sizes (``n_items``).
        extra_tokens: rows appended to the item table after the I items (BERT4Rec: 1, its [MASK] token I).
        extra_positions: entries appended to the position table (BERT4Rec: 1, for its n + 1 tokens).

    Attributes:
        item_embedding: the (I + extra_tokens, item_emb_dim) item-id embedding, row 0 (PAD) zero.
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec, *, extra_tokens: int = 0, extra_positions: int = 0) -> None:
        super().__init__()
        self.item_embedding = nn.Embedding(spec.n_items + extra_tokens, cfg.item_emb_dim, padding_idx=0)
        self.input_proj: nn.Module = (
            nn.Identity() if cfg.item_emb_dim == cfg.d_model else nn.Linear(cfg.item_emb_dim, cfg.d_model)
        )
        self.position_embedding = nn.Embedding(cfg.max_len + extra_positions, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        """Embed the item ids and positions of ``batch``.

        Returns:
            (B, n, d_model) float, zero at padding.
        """
        return self.embed(batch.item_idx, batch.position, batch.valid)  # (B, n, D)

    def embed(self, tokens: torch.Tensor, position: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Embed explicit token ids and positions (for models whose tokens are not ``batch.item_idx``).

        Args:
            tokens: (B, m) long ids in ``[0, I + extra_tokens)``.
            position: (B, m) long positions counted from the row's first real token (clamped to the table).
            valid: (B, m) bool, True at real tokens.

        Returns:
            (B, m, d_model) float, zero where ``valid`` is False.
        """
        x = self.input_proj(self.item_embedding(tokens))  # (B, m, D)
        pos = position.clamp(0, self.position_embedding.num_embeddings - 1)  # (B, m)
        x = self.norm(x + self.position_embedding(pos))  # (B, m, D)
        return x * valid[..., None].to(x.dtype)  # (B, m, D), zero at padding


class ItemScoreHead(nn.Module):
    """FC_item, the same head as IntentRec's (PAPER §3.2 step 10): PAD and UNK columns masked.

    ``linear``: Linear(d_in, I). ``tied``: Linear(d_in, item_emb_dim), then the dot product with every row of the
    model's item-id embedding plus a per-item bias. ``dot``: the same without the Linear (d_in == item_emb_dim).
    The embedding is passed to :meth:`forward`, not stored here, so a tied model registers it once; only its first
    I rows are scored (rows after them, such as BERT4Rec's [MASK] token, are never items). With
    ``cfg.output_attributes`` every item's row also holds its attribute embeddings
    (:class:`~intentrec.model.layers.ItemAttributeTable`).

    Args:
        cfg: hyperparameters (``item_head``, ``item_emb_dim``, ``output_attributes``).
        spec: data sizes (``n_items``).
        d_in: width of the hidden rows it scores.
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec, d_in: int) -> None:
        super().__init__()
        self.kind = cfg.item_head
        self.n_items = spec.n_items
        if cfg.item_head == "dot" and d_in != cfg.item_emb_dim:
            raise ConfigError(f"model.item_head 'dot' needs hidden rows as wide as the item embeddings "
                              f"(d_in {d_in}, model.item_emb_dim {cfg.item_emb_dim})")
        if cfg.item_head == "tied":
            self.item_proj = nn.Linear(d_in, cfg.item_emb_dim)
        if cfg.item_head in ("tied", "dot"):
            self.item_bias = nn.Parameter(torch.zeros(spec.n_items))
        else:
            self.item_out = nn.Linear(d_in, spec.n_items)
        # model.output_attributes: attribute embeddings added to every item's row (None = item ids only)
        self.item_attributes = item_attribute_table(cfg, spec, d_in if cfg.item_head == "linear" else cfg.item_emb_dim)
        # model.repeat_boost: a learned score for the items already in the input (None = the head alone)
        self.repeat_boost = RepeatBoost(d_in, cfg.max_len) if cfg.repeat_boost else None
        # model.repeat_boost_attributes: the same at the level of an item attribute (None = off)
        self.attribute_boost = attribute_repeat_boost(cfg, spec, d_in)
        # model.request_gap: the time to the request, added to the hidden rows (None = off)
        self.request_gap = request_gap_embedding(cfg, d_in)

    def forward(self, hidden: torch.Tensor, item_embedding: nn.Embedding) -> torch.Tensor:
        """Score the catalogue.

        Args:
            hidden: (..., d_in) hidden rows.
            item_embedding: the model's (>= I, item_emb_dim) item-id embedding (read only by the tied head; rows
                after the first I are ignored).

        Returns:
            (..., I) logits; columns 0 (PAD) and 1 (UNK) equal ``MASKED_LOGIT``.
        """
        return pad_masked_classes(self.catalogue(hidden, item_embedding), N_MASKED_ITEMS)  # (..., I)

    def catalogue(self, hidden: torch.Tensor, item_embedding: nn.Embedding) -> torch.Tensor:
        """(..., I - 2) logits of the real items only (column j = item index j + 2): the training loss's input."""
        weight, bias = self.table(item_embedding)
        return catalogue_linear(self.query(hidden), weight, bias, N_MASKED_ITEMS, self.n_items)

    def query(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., E) the query dotted with the :meth:`table` rows."""
        return self.item_proj(hidden) if self.kind == "tied" else hidden

    def table(self, item_embedding: nn.Embedding) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weight (I, E), bias (I,))``: score(item j) = query · weight[j] + bias[j]."""
        if self.kind in ("tied", "dot"):
            weight, bias = item_embedding.weight[: self.n_items], self.item_bias  # extra rows are not items
        else:
            weight, bias = self.item_out.weight, self.item_out.bias
        if self.item_attributes is not None:
            weight = weight + self.item_attributes()  # (I, E)
        return weight, bias


class BaselineModel(nn.Module):
    """Shared output side of the baselines: the item head, optional parallel intent heads, no fusion.

    Subclasses set ``item_output`` (:class:`ItemScoreHead`), ``intent_heads`` (or None) and expose an
    ``item_embedding`` table (attribute or property).
    """

    item_output: ItemScoreHead
    intent_heads: IntentHeads | None

    def heads_output(
        self, hidden: torch.Tensor, item_loss_weight: torch.Tensor | None = None, valid: torch.Tensor | None = None,
        batch: SequenceBatch | None = None,
    ) -> ModelOutput:
        """Wrap the per-position representation (B, n, D): intent logits from the heads, no fusion outputs.

        ``item_loss_weight`` (B, n), if given, is passed on as ``ModelOutput.item_loss_weight``. ``valid`` (B, n),
        the real events of the input, is needed by the repeat boosts (``cfg.repeat_boost``,
        ``cfg.repeat_boost_attributes``), and ``batch`` by ``cfg.request_gap`` (added to ``hidden`` first).
        """
        head = self.item_output
        if head.request_gap is not None:
            assert batch is not None, "a model with model.request_gap must pass its batch"
            hidden = hidden + head.request_gap(batch)  # (B, n, D)  + E_gap(T_request − T_k)
        logits = {} if self.intent_heads is None else self.intent_heads(hidden)  # name -> (B, n, d_i)
        boost = None
        if head.repeat_boost is not None or head.attribute_boost is not None:
            assert valid is not None, "a model with a repeat boost must pass the input's valid mask"
        if head.repeat_boost is not None:
            boost = head.repeat_boost(hidden, valid)  # (B, n, n)
        attributes = () if head.attribute_boost is None else head.attribute_boost(hidden, valid)
        return ModelOutput(
            item_hidden=hidden,
            intent_logits=logits,
            intent_attention=None,
            intent_embedding=None,
            item_loss_weight=item_loss_weight,
            history_boost=boost,
            attribute_boosts=attributes,
        )

    def score_items(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the whole catalogue, PAD and UNK masked.

        Args:
            item_hidden: (..., D) rows of ``ModelOutput.item_hidden``.

        Returns:
            (..., I) logits; columns 0 (PAD) and 1 (UNK) equal ``MASKED_LOGIT``.
        """
        return self.item_output(item_hidden, self.item_embedding)  # (..., I)

    def catalogue_logits(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """(..., I - 2) scores of the real items (column j = item index j + 2), PAD/UNK never computed."""
        return self.item_output.catalogue(item_hidden, self.item_embedding)  # (..., I - 2)

    def item_query(self, item_hidden: torch.Tensor) -> torch.Tensor:
        """(..., E) the query dotted with :meth:`item_table` rows."""
        return self.item_output.query(item_hidden)

    def item_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weight (I, E), bias (I,))`` of the item head: score(item j) = query · weight[j] + bias[j]."""
        return self.item_output.table(self.item_embedding)
