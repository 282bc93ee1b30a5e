"""Generic building blocks of IntentRec and the Transformer baselines.

* :class:`FeatureEmbedder` — the per-interaction feature F_k (PAPER §2): concatenation of the item-id embedding,
  one embedding per categorical input attribute (multi-valued ones mean-pooled) and the numeric scalars.
* :class:`TimestampEncoding` — E_t(T_k), the positional encoding of every Transformer (PAPER §3.1 step 2, §10 #8).
* :class:`FCNorm` — the "fully connected layer for dimensionality reduction and normalization" (PAPER §3.1 step 1).
* :class:`TransformerBlock`, :class:`CausalEncoder` — pre-LayerNorm blocks on
  :func:`torch.nn.functional.scaled_dot_product_attention` with a boolean mask (exportable with a dynamic length).
* :func:`causal_mask`, :func:`window_mask`, :func:`bidirectional_mask` — boolean attention masks, ``True`` = may
  attend.
* :func:`init_weights` — the shared initialisation (normal(0, 0.02) weights, zero biases, zero padding rows).

Everything here is pure: tensors in, tensors out; no losses, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from intentrec.config import ModelConfig
from intentrec.errors import ConfigError
from intentrec.structs import AttributeBoost, AttributeSpec, DataSpec, SequenceBatch
from intentrec.vocab import UNK_IDX

__all__ = [
    "MASKED_LOGIT",
    "AttributeRepeatBoost",
    "BlockLayerNorm",
    "CausalEncoder",
    "FCNorm",
    "FeatureEmbedder",
    "ItemAttributeTable",
    "RepeatBoost",
    "RequestGapEmbedding",
    "TimestampEncoding",
    "TransformerBlock",
    "add_attribute_boost",
    "add_history_boost",
    "attribute_boost_of",
    "attribute_repeat_boost",
    "bidirectional_mask",
    "catalogue_linear",
    "causal_mask",
    "history_boost_of",
    "init_weights",
    "item_attribute_table",
    "mask_leading_classes",
    "pad_masked_classes",
    "request_gap_embedding",
    "weight_initializer",
    "window_mask",
    "xavier_init_weights",
]

INIT_STD = 0.02
"""Standard deviation of the normal initialisation of embeddings and linear weights."""

MASKED_LOGIT = -1.0e4
"""Logit given to classes that must never be predicted (PAD, UNK): large negative yet finite (safe in bf16/fp16)."""


def init_weights(module: nn.Module) -> None:
    """Initialise one module in place (use with ``model.apply(init_weights)``).

    Linear and embedding weights get normal(0, 0.02), biases zeros, embedding padding rows zeros;
    LayerNorm keeps its (1, 0) default.
    """
    _init_module(module, xavier=False)


def xavier_init_weights(module: nn.Module) -> None:
    """Like :func:`init_weights`, but linear and embedding weights get Xavier-normal, std sqrt(2 / (fan_in + fan_out)).

    RecTools' SASRec initialises every matrix this way: for a (D, D) projection the std is sqrt(1 / D) (0.0625 at
    D = 256) instead of 0.02, for an (I, D) item table about sqrt(2 / I).
    """
    _init_module(module, xavier=True)


def weight_initializer(scheme: str) -> Callable[[nn.Module], None]:
    """The per-module initialiser of ``model.init``: ``normal`` -> :func:`init_weights`, ``xavier`` ->
    :func:`xavier_init_weights` (use with ``model.apply(...)``)."""
    if scheme == "normal":
        return init_weights
    if scheme == "xavier":
        return xavier_init_weights
    raise ValueError(f"unknown model.init {scheme!r} (use 'normal' or 'xavier')")


def _init_module(module: nn.Module, *, xavier: bool) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        if xavier:
            nn.init.xavier_normal_(module.weight)
        else:
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
    if isinstance(module, nn.Linear):
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def mask_leading_classes(logits: torch.Tensor, n_masked: int) -> torch.Tensor:
    """Set the first ``n_masked`` classes of the last dimension to :data:`MASKED_LOGIT`.

    Used for PAD (intent heads: 1 class) and PAD + UNK (item head: 2 classes), so they never get probability.

    Args:
        logits: (..., C) scores.
        n_masked: how many leading classes to mask.

    Returns:
        (..., C) scores with columns ``0 .. n_masked - 1`` equal to :data:`MASKED_LOGIT`.
    """
    cls = torch.arange(logits.shape[-1], device=logits.device)  # (C,)
    return logits.masked_fill(cls < n_masked, MASKED_LOGIT)  # (..., C)


def catalogue_linear(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, n_masked: int, n_classes: int
) -> torch.Tensor:
    """Logits of classes ``n_masked .. n_classes - 1`` only: ``hidden @ weight[n_masked:n_classes].T + bias[...]``.

    The training loss scores the real items this way, so the PAD/UNK columns are never computed, masked or
    back-propagated through (a (P, I) masking pass and its backward cost as much as the softmax on CPU).

    Args:
        hidden: (..., d) rows.
        weight: (>= n_classes, d) class vectors (rows are sliced, never copied).
        bias: (>= n_classes,) or None.
        n_masked: leading classes to leave out.
        n_classes: I.

    Returns:
        (..., n_classes - n_masked) logits; column j is class ``j + n_masked``.
    """
    b = None if bias is None else bias[n_masked:n_classes]
    return nn.functional.linear(hidden, weight[n_masked:n_classes], b)  # (..., I - n_masked)


def pad_masked_classes(logits: torch.Tensor, n_masked: int) -> torch.Tensor:
    """Prepend ``n_masked`` columns equal to :data:`MASKED_LOGIT`: the inverse view of :func:`catalogue_linear`.

    Args:
        logits: (..., C - n_masked) scores of the real classes.
        n_masked: how many masked leading classes to add.

    Returns:
        (..., C) scores, columns ``0 .. n_masked - 1`` equal to :data:`MASKED_LOGIT`.
    """
    pad = logits.new_full((*logits.shape[:-1], n_masked), MASKED_LOGIT)  # (..., n_masked)
    return torch.cat([pad, logits], dim=-1)  # (..., C)


# ----------------------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------------------


def causal_mask(valid: torch.Tensor) -> torch.Tensor:
    """Boolean causal attention mask over left-padded rows.

    Query ``q`` may attend key ``k`` iff ``k <= q`` and key ``k`` is a real event, or ``k == q``. The diagonal is
    always allowed so that a padding row never has an all-``False`` row (which would give NaN in the softmax).

    Args:
        valid: (B, n) bool, True at real events.

    Returns:
        (B, 1, n, n) bool mask, ``True`` = may attend (broadcasts over attention heads).
    """
    n = valid.shape[1]
    idx = torch.arange(n, device=valid.device)  # (n,)
    lower = idx[None, :] <= idx[:, None]  # (n, n) key <= query
    allowed = lower[None, :, :] & valid[:, None, :]  # (B, n, n)
    diagonal = idx[None, :] == idx[:, None]  # (n, n)
    return (allowed | diagonal[None, :, :])[:, None, :, :]  # (B, 1, n, n)


def bidirectional_mask(valid: torch.Tensor) -> torch.Tensor:
    """Boolean key-padding mask without causality (BERT4Rec): every query attends every real event.

    Query ``q`` may attend key ``k`` iff key ``k`` is a real event, or ``k == q`` (so a padding row is never
    all-``False``; real queries never see padding keys, so padding changes no real output).

    Args:
        valid: (B, n) bool, True at real events.

    Returns:
        (B, 1, n, n) bool mask, ``True`` = may attend (broadcasts over attention heads).
    """
    n = valid.shape[1]
    idx = torch.arange(n, device=valid.device)  # (n,)
    diagonal = idx[None, :] == idx[:, None]  # (n, n)
    return (valid[:, None, :] | diagonal[None, :, :])[:, None, :, :]  # (B, 1, n, n)


def window_mask(valid: torch.Tensor, window_start: torch.Tensor) -> torch.Tensor:
    """Causal mask restricted to the short-term band ``[window_start[b, q], q]`` (PAPER Eq. 1, §10 #4).

    Args:
        valid: (B, n) bool, True at real events.
        window_start: (B, n) long column index of pos_k for each query position (ignored at padding).

    Returns:
        (B, 1, n, n) bool mask, ``True`` = may attend; the diagonal is always allowed.
    """
    n = valid.shape[1]
    idx = torch.arange(n, device=valid.device)  # (n,)
    in_band = idx[None, None, :] >= window_start[:, :, None]  # (B, n, n) key >= pos_q
    diagonal = idx[None, :] == idx[:, None]  # (n, n)
    return causal_mask(valid) & (in_band | diagonal[None, :, :])[:, None, :, :]  # (B, 1, n, n)


# ----------------------------------------------------------------------------------------------------------
# input features
# ----------------------------------------------------------------------------------------------------------


class FeatureEmbedder(nn.Module):
    """F_k = E_i I_k ⊕ E_c C_k ⊕ ··· ⊕ e_k ⊕ ··· (PAPER §2 "Per-interaction feature").

    The item id is embedded to ``cfg.item_emb_dim``; each categorical *input* attribute of ``spec`` to
    ``cfg.cat_emb_dim`` (multi-valued ones: mean of the embeddings of the non-zero labels, zero vector when there
    are none; PAPER §10 #6); numeric features are appended as scalars. Index 0 (PAD) embeds to zeros everywhere.

    Args:
        cfg: model hyperparameters.
        spec: data-derived sizes; ``spec.inputs`` fixes the attribute order inside F_k.

    Attributes:
        d_full: width of F_k.
        item_embedding: the (I, item_emb_dim) item-id embedding (shared with a tied item head).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec) -> None:
        super().__init__()
        self.item_embedding = nn.Embedding(spec.n_items, cfg.item_emb_dim, padding_idx=0)
        self.attributes = tuple(spec.inputs)
        # a list, not a dict: attribute names are raw column names and may contain dots
        self.attribute_embeddings = nn.ModuleList(
            nn.Embedding(a.n_classes, cfg.cat_emb_dim, padding_idx=0) for a in self.attributes
        )
        self.n_numeric = len(spec.numeric)
        self.d_full = cfg.item_emb_dim + len(self.attributes) * cfg.cat_emb_dim + self.n_numeric

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        """Embed every event of ``batch``.

        Returns:
            (B, n, d_full) float features (zeros at padding except numeric values the batch holds there).
        """
        parts = [self.item_embedding(batch.item_idx)]  # [(B, n, item_emb_dim)]
        for attr, table in zip(self.attributes, self.attribute_embeddings, strict=True):
            labels = batch.categorical[attr.name]  # (B, n) or (B, n, L)
            if attr.multi_valued:
                emb = table(labels)  # (B, n, L, cat_emb_dim), PAD rows are zero
                count = (labels > 0).sum(dim=-1, keepdim=True).clamp_min(1)  # (B, n, 1)
                parts.append(emb.sum(dim=-2) / count.to(emb.dtype))  # (B, n, cat_emb_dim) mean over labels
            else:
                parts.append(table(labels))  # (B, n, cat_emb_dim)
        if self.n_numeric:
            parts.append(batch.numeric.to(parts[0].dtype))  # (B, n, F)
        return torch.cat(parts, dim=-1)  # (B, n, d_full)


class ItemAttributeTable(nn.Module):
    """Item-level attribute embeddings pooled per item, added to every item's row of the item head
    (``model.output_attributes``).

    Row j of :meth:`forward` is ``Σ_a mean_{c ∈ labels_a(j)} A_a[c]``: items that share a label (a category, a
    genre) share that part of their output embedding, so a rare item is scored partly by what its label is known
    to attract. The labels of every item live in int64 buffers (``codes_<k>``, (I, L), 0 = no label) set by
    :meth:`set_codes` from the prepared data and saved with the weights; the label embeddings start at zero, so
    an untrained table leaves the item head unchanged.

    Args:
        cfg: model hyperparameters (``cfg.output_attributes`` names the attributes).
        spec: data-derived sizes; every name must be a categorical attribute of ``spec``.
        dim: width of the item head's rows (E).

    Raises:
        ConfigError: a name is not an attribute of ``spec`` (``ModelConfig`` refuses repeated names).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec, dim: int) -> None:
        super().__init__()
        known = _known_attributes(tuple(cfg.output_attributes), spec, "output_attributes")
        self.names = tuple(cfg.output_attributes)
        self.n_items = spec.n_items
        # plain parameters (not nn.Embedding), so ``init_weights`` leaves their zero start alone; a list, not a
        # dict: attribute names are raw column names and may contain dots
        self.embeddings = nn.ParameterList(nn.Parameter(torch.zeros(known[n].n_classes, dim)) for n in self.names)
        for k in range(len(self.names)):
            self.register_buffer(f"codes_{k}", torch.zeros(spec.n_items, 1, dtype=torch.long))

    def codes(self, k: int) -> torch.Tensor:
        """(I, L) int64 labels of every item for attribute ``k`` (0 = none)."""
        return _codes_buffer(self, k)

    def set_codes(self, codes: dict[str, torch.Tensor]) -> None:
        """Store each item's labels.

        Args:
            codes: attribute name -> (I,) or (I, L) integer labels of every item (rows 0 and 1, PAD and UNK, are
                ignored), one entry per name of ``cfg.output_attributes``.

        Raises:
            ValueError: a name is missing, a table has the wrong number of rows, or a label is out of range.
        """
        for k, (name, table) in enumerate(zip(self.names, self.embeddings, strict=True)):
            value = _checked_codes(codes, name, self.n_items, table.shape[0])  # (I, L)
            setattr(self, f"codes_{k}", value.to(self.codes(k).device))

    def forward(self) -> torch.Tensor:
        """(I, dim) the attribute part of every item's output row (zeros for items without labels)."""
        out: torch.Tensor | None = None
        for k, table in enumerate(self.embeddings):
            labels = self.codes(k)  # (I, L)
            present = (labels > 0).to(table.dtype)  # (I, L)
            share = present / present.sum(dim=-1, keepdim=True).clamp_min(1.0)  # (I, L) mean weights, PAD -> 0
            # a weighted bag sum: ~10x faster than gathering (I, L, dim) on CPU, in both directions
            offsets = torch.arange(0, labels.numel(), labels.shape[1], device=labels.device)  # (I,)
            pooled = F.embedding_bag(labels.reshape(-1), table, offsets, mode="sum",
                                     per_sample_weights=share.reshape(-1))  # (I, dim)
            out = pooled if out is None else out + pooled
        assert out is not None  # built only with at least one attribute
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # the label width L is a property of the data, not of the config: take the saved buffers' shapes
        for k in range(len(self.names)):
            saved = state_dict.get(f"{prefix}codes_{k}")
            if isinstance(saved, torch.Tensor) and saved.dim() == 2 and saved.shape[0] == self.n_items:
                setattr(self, f"codes_{k}", torch.zeros_like(saved, dtype=torch.long, device=self.codes(k).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _codes_buffer(module: nn.Module, k: int) -> torch.Tensor:
    """The ``codes_<k>`` buffer of an item-label holder (:class:`ItemAttributeTable`, :class:`AttributeRepeatBoost`)."""
    out = getattr(module, f"codes_{k}")
    assert isinstance(out, torch.Tensor)
    return out


def _checked_codes(codes: dict[str, torch.Tensor], name: str, n_items: int, n_classes: int) -> torch.Tensor:
    """(I, L) int64 copy of ``codes[name]`` with rows 0 and 1 (PAD, UNK) emptied.

    Raises:
        ValueError: the name is missing, the table has the wrong number of rows, or a label is out of range.
    """
    if name not in codes:
        raise ValueError(f"no item labels for attribute {name!r}")
    value = torch.as_tensor(codes[name], dtype=torch.long)
    value = value[:, None] if value.dim() == 1 else value  # (I, L)
    if value.dim() != 2 or value.shape[0] != n_items:
        raise ValueError(f"item labels of {name!r} must have {n_items} rows, got shape {tuple(value.shape)}")
    if value.numel() and (int(value.min()) < 0 or int(value.max()) >= n_classes):
        raise ValueError(f"item labels of {name!r} must lie in [0, {n_classes})")
    value = value.clone()
    value[:2] = 0  # PAD and UNK carry no label
    return value


def _known_attributes(names: tuple[str, ...], spec: DataSpec, key: str) -> dict[str, AttributeSpec]:
    """The attributes of ``spec`` named by ``model.<key>``; ConfigError names the unknown ones."""
    known = {a.name: a for a in spec.attributes}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"model.{key} names {unknown}, which are not categorical attributes of the data; available: "
            f"{sorted(known)} (fix model.{key}, or add the column to data.intents or data.features.categorical)"
        )
    return known


def item_attribute_table(cfg: ModelConfig, spec: DataSpec, dim: int) -> ItemAttributeTable | None:
    """An :class:`ItemAttributeTable` of width ``dim`` when ``cfg.output_attributes`` names any, else None."""
    return ItemAttributeTable(cfg, spec, dim) if cfg.output_attributes else None


class RepeatBoost(nn.Module):
    """``model.repeat_boost``: a learned score for the items already in the input sequence (not in the paper).

    The prediction at position k adds to every item j that occurs at input positions i <= k::

        boost[k, i] = g_k · exp(r[min(k − i, R − 1)]),   g_k = w · h_k + c          (a scalar per position)
        score_k(j)  = FC_item(h_k)[j] + Σ_{i <= k, item_i = j} boost[k, i]

    so the hidden state decides, position by position, whether the next event repeats something seen (g_k > 0,
    e.g. a "continue" or "repeat" intent) or explores (g_k < 0), and r how that fades with the distance in events.
    w, c and r start at zero: the untrained model scores exactly like the plain head. Distances count events, so
    left padding changes nothing; padding positions give no boost.

    Args:
        d_in: width of the hidden rows h_k.
        max_distance: R, the number of distance weights (distances >= R - 1 share the last).
    """

    def __init__(self, d_in: int, max_distance: int) -> None:
        super().__init__()
        self.gate_weight = nn.Parameter(torch.zeros(d_in))
        self.gate_bias = nn.Parameter(torch.zeros(()))
        self.log_decay = nn.Parameter(torch.zeros(max(int(max_distance), 1)))

    def forward(self, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The boost each position gives to each earlier input item.

        Args:
            hidden: (B, n, d_in) the rows the item head scores.
            valid: (B, n) bool, True at real events.

        Returns:
            (B, n, n) float: ``[b, k, i]`` is added to the score of input item ``i`` at position ``k``; zero where
            ``i > k`` or position ``i`` is padding.
        """
        n = hidden.shape[1]
        gate = hidden @ self.gate_weight.to(hidden.dtype) + self.gate_bias.to(hidden.dtype)  # (B, n)
        k = torch.arange(n, device=hidden.device)  # (n,)
        distance = k[:, None] - k[None, :]  # (n, n)  k - i
        decay = self.log_decay[distance.clamp(0, self.log_decay.shape[0] - 1)].exp().to(hidden.dtype)  # (n, n)
        keep = (distance >= 0)[None] & valid[:, None, :]  # (B, n, n)  earlier-or-same real events only
        return torch.where(keep, gate[:, :, None] * decay[None], torch.zeros((), dtype=hidden.dtype,
                                                                                 device=hidden.device))


def add_history_boost(
    scores: torch.Tensor, items: torch.Tensor, boost: torch.Tensor, *, n_masked: int, offset: int = 0
) -> torch.Tensor:
    """Add :class:`RepeatBoost` scores to catalogue scores.

    Args:
        scores: (P, C) scores; column c belongs to item ``c + offset`` (0 for :meth:`score_items` rows, ``n_masked``
            for ``catalogue_logits`` rows, which leave PAD/UNK out).
        items: (P, n) long input item ids of each scored row's sequence.
        boost: (P, n) the row's boost per input position (:class:`RepeatBoost` at the scored position).
        n_masked: leading item ids that are not items (PAD, UNK): they get nothing.

    Returns:
        (P, C) ``scores`` plus, for every input position, its boost at its item's column (repeats add up).
    """
    real = items >= n_masked  # (P, n)
    column = torch.where(real, items - offset, torch.zeros_like(items))  # (P, n)
    added = torch.where(real, boost.to(scores.dtype), torch.zeros((), dtype=scores.dtype, device=scores.device))
    return scores.scatter_add(-1, column, added)  # (P, C)


def history_boost_of(
    candidates: torch.Tensor, items: torch.Tensor, boost: torch.Tensor, *, n_masked: int
) -> torch.Tensor:
    """The :class:`RepeatBoost` score of given candidate items (the sampled softmax's columns).

    Args:
        candidates: (P, C) or (C,) long item ids (shared by every row when 1-D).
        items: (P, n) long input item ids of each row's sequence.
        boost: (P, n) boost per input position.
        n_masked: leading item ids that are not items (PAD, UNK): they give nothing.

    Returns:
        (P, C) the summed boost of every input position whose item is the candidate (as :func:`add_history_boost`
        adds at the candidate's column).
    """
    P, n = items.shape
    boost = torch.where(items >= n_masked, boost, torch.zeros_like(boost))  # (P, n)
    cand = candidates if candidates.dim() == 2 else candidates[None, :].expand(P, -1)  # (P, C)
    out = torch.zeros(cand.shape, dtype=boost.dtype, device=boost.device)  # (P, C)
    for i in range(n):  # n (P, C) comparisons instead of one (P, C, n) tensor
        out = out + (cand == items[:, i : i + 1]).to(boost.dtype) * boost[:, i : i + 1]
    return out


N_MASKED_LABELS = UNK_IDX + 1
"""Leading attribute labels that are not values (PAD, ``other``): items carrying them share no boost."""


class AttributeRepeatBoost(nn.Module):
    """``model.repeat_boost_attributes``: a :class:`RepeatBoost` at the level of an item attribute (not in the paper).

    For each attribute a (one label per item, e.g. a show), the prediction at position k adds to every item j::

        score_k(j) += Σ_{i <= k, label_a(item_i) = label_a(j)} g^a_k · exp(r^a[min(k − i, R − 1)])

    so after an episode of a show every episode of that show can move up or down together (a "continue the show"
    intent lifts them, an "explore" intent lowers them); with ``repeat_boost`` beside it the model can also tell
    the episodes already seen from the next one. Each attribute has its own gate and fall-off, zero at the start
    (the untrained model is the plain head). Each item's label lives in an int64 buffer (``codes_<k>``, (I,)) set by
    :meth:`set_codes` and saved with the weights; labels 0 (PAD) and 1 (``other``) share nothing.

    Args:
        cfg: model hyperparameters (``cfg.repeat_boost_attributes``, ``cfg.max_len``).
        spec: data-derived sizes; every name must be a single-valued categorical attribute of ``spec``.
        d_in: width of the hidden rows the gates read.

    Raises:
        ConfigError: a name is not an attribute of ``spec``, or has several labels per event.
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec, d_in: int) -> None:
        super().__init__()
        names = tuple(cfg.repeat_boost_attributes)
        known = _known_attributes(names, spec, "repeat_boost_attributes")
        multi = [n for n in names if known[n].multi_valued]
        if multi:
            raise ConfigError(f"model.repeat_boost_attributes takes attributes with one label per item; {multi} "
                              "have several (use a single-valued column such as a show or series id)")
        self.names = names
        self.n_items = spec.n_items
        self.n_classes = tuple(known[n].n_classes for n in names)
        self.boosts = nn.ModuleList(RepeatBoost(d_in, cfg.max_len) for _ in names)
        for k in range(len(names)):
            self.register_buffer(f"codes_{k}", torch.zeros(spec.n_items, dtype=torch.long))

    def codes(self, k: int) -> torch.Tensor:
        """(I,) int64 label of every item for attribute ``k`` (0 = none)."""
        return _codes_buffer(self, k)

    def set_codes(self, codes: dict[str, torch.Tensor]) -> None:
        """Store each item's label.

        Args:
            codes: attribute name -> (I,) (or (I, 1)) integer label of every item (rows 0 and 1, PAD and UNK,
                are ignored), one entry per name of ``cfg.repeat_boost_attributes``.

        Raises:
            ValueError: a name is missing, a table has the wrong shape or several labels per item, or a label
                is out of range.
        """
        for k, (name, n_classes) in enumerate(zip(self.names, self.n_classes, strict=True)):
            value = _checked_codes(codes, name, self.n_items, n_classes)  # (I, L)
            if value.shape[1] != 1:
                raise ValueError(f"repeat_boost_attributes: {name!r} must have one label per item, got "
                                 f"{value.shape[1]}")
            setattr(self, f"codes_{k}", value[:, 0].contiguous().to(self.codes(k).device))

    def forward(self, hidden: torch.Tensor, valid: torch.Tensor) -> tuple[AttributeBoost, ...]:
        """Each attribute's boost.

        Args:
            hidden: (B, n, d_in) the rows the item head scores.
            valid: (B, n) bool, True at real events.

        Returns:
            One :class:`~intentrec.structs.AttributeBoost` per attribute, its ``boost`` (B, n, n).
        """
        return tuple(
            AttributeBoost(name=name, boost=boost(hidden, valid), codes=self.codes(k), n_classes=n_classes)
            for k, (name, boost, n_classes) in enumerate(zip(self.names, self.boosts, self.n_classes, strict=True))
        )


def attribute_repeat_boost(cfg: ModelConfig, spec: DataSpec, d_in: int) -> AttributeRepeatBoost | None:
    """An :class:`AttributeRepeatBoost` when ``cfg.repeat_boost_attributes`` names any, else None."""
    return AttributeRepeatBoost(cfg, spec, d_in) if cfg.repeat_boost_attributes else None


def add_attribute_boost(
    scores: torch.Tensor, items: torch.Tensor, boost: torch.Tensor, codes: torch.Tensor, n_classes: int, *,
    offset: int = 0,
) -> torch.Tensor:
    """Add an :class:`AttributeRepeatBoost` attribute's scores to catalogue scores.

    Args:
        scores: (P, C) scores; column c belongs to item ``c + offset`` (as in :func:`add_history_boost`).
        items: (P, n) long input item ids of each scored row's sequence.
        boost: (P, n) the row's boost per input position.
        codes: (I,) long label of every item.
        n_classes: number of labels.

    Returns:
        (P, C) ``scores`` plus, for every item, the summed boost of the input positions whose item shares its label.
    """
    labels = codes[items]  # (P, n)
    per_label = add_history_boost(scores.new_zeros((scores.shape[0], n_classes)), labels, boost,
                                  n_masked=N_MASKED_LABELS)  # (P, n_classes), columns 0 and 1 stay zero
    columns = codes[offset : offset + scores.shape[-1]]  # (C,)
    return scores + per_label.index_select(-1, columns)  # (P, C)


def attribute_boost_of(
    candidates: torch.Tensor, items: torch.Tensor, boost: torch.Tensor, codes: torch.Tensor
) -> torch.Tensor:
    """The :class:`AttributeRepeatBoost` score of given candidate items (the sampled softmax's columns).

    Args:
        candidates: (P, C) or (C,) long item ids.
        items: (P, n) long input item ids of each row's sequence.
        boost: (P, n) boost per input position.
        codes: (I,) long label of every item.

    Returns:
        (P, C) as :func:`add_attribute_boost` adds at the candidates' columns.
    """
    return history_boost_of(codes[candidates], codes[items], boost, n_masked=N_MASKED_LABELS)


class TimestampEncoding(nn.Module):
    """E_t(T_k): the positional encoding added to every Transformer input (PAPER §3.1 step 2, §10 #8, #23).

    Sum of a learned embedding of ``batch.gap_bucket`` (log-bucketed gap to the previous event) and

    * timed data: a sinusoidal encoding of ``batch.time_hours`` (continuous hours since the row's first event);
    * untimed data (``spec.timed`` False): a learned embedding of ``batch.position`` (``cfg.max_len`` entries).

    Out-of-range buckets/positions are clamped to the last entry. Padding positions encode to zeros.

    Args:
        cfg: model hyperparameters (``gap_buckets``, ``max_len``).
        spec: ``spec.timed`` selects the sinusoid or the position embedding.
        d_out: encoding width (the width of the Transformer it feeds).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec, d_out: int) -> None:
        super().__init__()
        self.timed = spec.timed
        self.d_out = d_out
        self.gap_embedding = nn.Embedding(cfg.gap_buckets, d_out)
        if self.timed:
            half = (d_out + 1) // 2
            # periods from 2π hours up to 2π·10^4 hours (~7 years), as the Transformer's sinusoid
            freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)  # (half,)
            self.register_buffer("inv_freq", freqs, persistent=False)
            self.position_embedding: nn.Embedding | None = None
        else:
            self.position_embedding = nn.Embedding(cfg.max_len, d_out)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        """Encode the time fields of ``batch``.

        Returns:
            (B, n, d_out) float encoding, zero at padding.
        """
        gap = batch.gap_bucket.clamp(0, self.gap_embedding.num_embeddings - 1)  # (B, n)
        enc = self.gap_embedding(gap)  # (B, n, d_out)
        if self.position_embedding is None:
            angles = batch.time_hours.float()[..., None] * self.inv_freq  # (B, n, half)
            sinusoid = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (B, n, 2·half)
            enc = enc + sinusoid[..., : self.d_out].to(enc.dtype)  # (B, n, d_out)
        else:
            pos = batch.position.clamp(0, self.position_embedding.num_embeddings - 1)  # (B, n)
            enc = enc + self.position_embedding(pos)  # (B, n, d_out)
        return enc * batch.valid[..., None].to(enc.dtype)  # (B, n, d_out), zero at padding


class RequestGapEmbedding(nn.Module):
    """``model.request_gap``: a learned embedding of ``batch.next_gap_bucket`` (the log-bucketed time from each event
    to the request its prediction answers), added to the rows a head reads (not in the paper).

    It starts at zero, so the untrained model is the one without it; bucket 0 (unknown, padding) is pinned to zero.
    Position k reads only its own bucket, so causality over the *items* is unchanged: the request time is part of the
    question asked at k, not of a later event.

    Args:
        cfg: hyperparameters (``gap_buckets``).
        d_out: width of the rows it is added to.
    """

    def __init__(self, cfg: ModelConfig, d_out: int) -> None:
        super().__init__()
        # a bare parameter, not an nn.Embedding, so init_weights leaves its zero start alone
        self.weight = nn.Parameter(torch.zeros(cfg.gap_buckets, d_out))

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        """(B, n, d_out) the embedding of each position's bucket, zero where it is unknown (bucket 0)."""
        bucket = batch.next_gap_bucket.clamp(0, self.weight.shape[0] - 1)  # (B, n)
        return self.weight[bucket] * (bucket > 0)[..., None].to(self.weight.dtype)  # (B, n, d_out)


def request_gap_embedding(cfg: ModelConfig, d_out: int) -> RequestGapEmbedding | None:
    """:class:`RequestGapEmbedding` when ``cfg.request_gap``, else None (the paper's model)."""
    return RequestGapEmbedding(cfg, d_out) if cfg.request_gap else None


class BlockLayerNorm(nn.Module):
    """A LayerNorm on each block of the last axis (``None`` width entries pass through unchanged).

    Used by ``ModelConfig.input_block_norm`` so that every block of an encoder's input (item embedding, each
    attribute embedding, S, Z) reaches the input projection at the same scale.

    Args:
        widths: ``(width, normalise)`` per block, in order; the widths sum to the input's last dimension.
    """

    def __init__(self, widths: tuple[tuple[int, bool], ...]) -> None:
        super().__init__()
        self.widths = tuple(w for w, _ in widths)
        self.norms = nn.ModuleList(nn.LayerNorm(w) if normalise else nn.Identity() for w, normalise in widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., Σ widths) -> (..., Σ widths), each normalised block with mean 0 and unit variance before its
        affine."""
        parts = torch.split(x, self.widths, dim=-1)  # [(..., w_b)]
        return torch.cat([norm(part) for norm, part in zip(self.norms, parts, strict=True)], dim=-1)


class FCNorm(nn.Module):
    """Linear(d_in → d_out) + LayerNorm: the projection before every Transformer (PAPER §3.1 step 1, §10 #7)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (..., d_out)."""
        return self.norm(self.linear(x))  # (..., d_out)


# ----------------------------------------------------------------------------------------------------------
# Transformer
# ----------------------------------------------------------------------------------------------------------


class TransformerBlock(nn.Module):
    """One pre-LayerNorm Transformer block: x + Attn(LN(x)), then x + FFN(LN(x)) (PAPER §10 #5).

    Multi-head self-attention runs on :func:`torch.nn.functional.scaled_dot_product_attention` with a boolean
    mask; the FFN is Linear(D → ffn_mult·D), GELU, Linear(ffn_mult·D → D). Dropout on attention probabilities,
    the FFN hidden layer and both residual branches.

    Args:
        d_model: width D.
        n_heads: attention heads (must divide D).
        ffn_mult: FFN width as a multiple of D.
        dropout: dropout probability.
    """

    def __init__(self, d_model: int, n_heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.dropout = dropout
        self.attn_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_out = nn.Linear(d_model, d_model)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_mult * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_mult * d_model, d_model),
        )
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, n, D) input.
            attn_mask: (B, 1, n, n) bool, ``True`` = may attend (see :func:`causal_mask`).

        Returns:
            (B, n, D).
        """
        B, n, D = x.shape
        h = self.attn_norm(x)  # (B, n, D)
        q, k, v = self.qkv(h).split(D, dim=-1)  # 3 × (B, n, D)
        q = q.view(B, n, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, h, n, D/h)
        k = k.view(B, n, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, h, n, D/h)
        v = v.view(B, n, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, h, n, D/h)
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, h, n, D/h)
        att = att.transpose(1, 2).reshape(B, n, D)  # (B, n, D)
        x = x + self.resid_dropout(self.attn_out(att))  # (B, n, D)
        return x + self.resid_dropout(self.ffn(self.ffn_norm(x)))  # (B, n, D)


class CausalEncoder(nn.Module):
    """A stack of :class:`TransformerBlock` followed by a final LayerNorm.

    The mask is passed in, so one class serves the causal intent/item encoders (:func:`causal_mask`), the
    short-term encoder (:func:`window_mask`) and, despite the name, BERT4Rec's bidirectional encoder
    (:func:`bidirectional_mask`).

    Args:
        d_model: width D.
        n_layers: number of blocks.
        n_heads: attention heads per block.
        ffn_mult: FFN width as a multiple of D.
        dropout: dropout probability.
    """

    def __init__(self, d_model: int, n_layers: int, n_heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, ffn_mult, dropout) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """(B, n, D) with a (B, 1, n, n) bool mask -> (B, n, D)."""
        for block in self.blocks:
            x = block(x, attn_mask)  # (B, n, D)
        return self.final_norm(x)  # (B, n, D)
