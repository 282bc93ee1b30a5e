"""Typed containers passed between stages.

Shape notation used across the package:

* ``B`` — batch size; ``n`` — sequence length (left-padded); ``N`` — events in a whole dataset;
* ``U`` — users; ``I`` — item vocabulary size (incl. PAD and UNK); ``L`` — max labels of a multi-valued attribute;
* ``D`` — model width; ``M`` — number of intent heads; ``F`` — numeric features; ``d_i`` — classes of intent i.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import torch

from intentrec.vocab import ItemVocab, LabelVocab

__all__ = [
    "AttributeBoost",
    "AttributeRule",
    "AttributeSpec",
    "DataSpec",
    "EncodedSequences",
    "LiveFeatures",
    "ModelOutput",
    "NumericRule",
    "SequenceBatch",
    "Split",
]


@dataclass(frozen=True)
class AttributeSpec:
    """One categorical attribute of an interaction (an input feature, an intent label, or both)."""

    name: str
    n_classes: int
    """Vocabulary size including PAD (0) and ``other`` (1)."""
    multi_valued: bool
    """Several labels per event (array shape (N, L)); else one (N,)."""
    is_input: bool
    """Embedded as an input feature."""
    is_intent: bool
    """Predicted by an intent head (the label of the *next* event)."""


@dataclass(frozen=True)
class DataSpec:
    """Data-derived sizes a model needs (kept apart from hyperparameters)."""

    n_items: int
    """Item vocabulary size I, including PAD and UNK."""
    attributes: tuple[AttributeSpec, ...]
    """Categorical attributes in a fixed order."""
    numeric: tuple[str, ...]
    """Numeric input features, in column order of ``numeric`` arrays."""
    timed: bool
    """True when timestamps are real times (seconds); False when they are only an order."""
    dataset: str = ""
    """Human-readable dataset name."""
    exclude_seen_default: bool = False
    """The dataset's default for the seen-item filter (EVALUATION.md)."""

    @property
    def intents(self) -> tuple[AttributeSpec, ...]:
        """Attributes with an intent head, in order."""
        return tuple(a for a in self.attributes if a.is_intent)

    @property
    def inputs(self) -> tuple[AttributeSpec, ...]:
        """Attributes embedded as inputs, in order."""
        return tuple(a for a in self.attributes if a.is_input)

    def attribute(self, name: str) -> AttributeSpec:
        """The attribute called ``name`` (KeyError if absent)."""
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (inverse: :meth:`from_json`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DataSpec:
        """Inverse of :meth:`to_json` (extra keys are ignored)."""
        return cls(
            n_items=int(doc["n_items"]),
            attributes=tuple(AttributeSpec(**a) for a in doc["attributes"]),
            numeric=tuple(doc["numeric"]),
            timed=bool(doc["timed"]),
            dataset=str(doc.get("dataset", "")),
            exclude_seen_default=bool(doc.get("exclude_seen_default", False)),
        )


@dataclass(frozen=True)
class Split:
    """Which events of :class:`EncodedSequences` are training inputs/targets and which are evaluation targets."""

    train_len: np.ndarray
    """(U,) int64: each user's first ``train_len[u]`` events are training data (0 = user not in training)."""
    val_targets: np.ndarray
    """(V, 2) int64 rows of (user_row, position): predict event ``position`` from events ``[0, position)``."""
    test_targets: np.ndarray
    """(T, 2) int64, as ``val_targets``."""
    protocol: Literal["temporal", "leave-one-out", "user"]
    description: str = ""
    """Human-readable description (cut-off dates, counts, exclusions)."""
    excluded: dict[str, int] = field(default_factory=dict)
    """Counts of evaluation targets excluded (e.g. cold-start items or users), by reason."""
    cold_targets: dict[str, int] = field(default_factory=dict)
    """Targets dropped because their item is unknown to the item vocabulary, per split (``validation``, ``test``):
    published leave-one-out numbers count them as misses (see ``item_cold_as_miss`` in ``metrics.json``)."""


@dataclass(frozen=True)
class EncodedSequences:
    """Every user's event sequence, encoded to indices (numpy; the exit from the dataframe world).

    Events of user ``u`` are rows ``offsets[u]:offsets[u + 1]`` of the per-event arrays, in time order.
    """

    user_ids: tuple[str, ...]
    """(U,) raw user ids."""
    offsets: np.ndarray
    """(U + 1,) int64 CSR offsets into the event arrays."""
    item_idx: np.ndarray
    """(N,) int64 item indices (UNK_IDX for items unseen in training)."""
    timestamps: np.ndarray
    """(N,) float64 seconds since the epoch (or the event's order index when ``spec.timed`` is False)."""
    duration: np.ndarray
    """(N,) float32 engagement value (>= 0; 1.0 when the data has none)."""
    session: np.ndarray
    """(N,) int64 session number within the user (0, 1, ...)."""
    categorical: dict[str, np.ndarray]
    """name -> (N,) int64 or (N, L) int64 class indices (0-padded), for every attribute in ``spec``."""
    numeric: np.ndarray
    """(N, F) float32 numeric features scaled with training statistics."""
    split: Split
    """Training events and evaluation targets."""
    spec: DataSpec
    """Sizes and attribute metadata."""
    item_vocab: ItemVocab
    """Raw item id <-> index."""
    label_vocabs: dict[str, LabelVocab]
    """Per attribute: label <-> class index."""
    duration_median: float = 1.0
    """Median training engagement value (normaliser of duration weights, PAPER §10 #12)."""
    fingerprint: str = ""
    """Hash of the data config and inputs that produced this object."""
    item_names: tuple[str, ...] = ()
    """Display names (e.g. movie titles) aligned with ``item_vocab.ids``; empty when the data has none."""

    @property
    def n_users(self) -> int:
        """U."""
        return len(self.user_ids)

    def item_name(self, idx: int) -> str:
        """Display name of an item index: its title when known, else its raw id."""
        raw = self.item_vocab.decode(idx)
        if self.item_names:
            name = self.item_names[idx - 2]
            if name and name != raw:
                return f"{raw} · {name}"
        return raw

    def user_slice(self, u: int) -> slice:
        """Event rows of user row ``u``."""
        return slice(int(self.offsets[u]), int(self.offsets[u + 1]))


@dataclass(frozen=True)
class AttributeRule:
    """How a live request derives one categorical attribute of each event (serving; built by the data stage).

    ``source``:

    * ``item`` — a property of the item, looked up in :attr:`LiveFeatures.item_codes`;
    * ``event`` — a property of the interaction (e.g. the action type), read from the request event's ``field``;
    * ``recency`` — the bucketed age of the item at the event's time, from the item's release date
      (:attr:`LiveFeatures.item_release`, or the event's ``field`` when the release date is an interaction column);
    * ``repeat`` — whether the item (or its series, :attr:`LiveFeatures.item_series`) occurred earlier in the history.
    """

    name: str
    """Attribute name (as in :class:`DataSpec`)."""
    source: Literal["item", "event", "recency", "repeat"]
    """Where the value comes from (see the class docstring)."""
    field: str | None
    """Request field (the source column name) for ``event`` rules and interaction-level release dates."""
    multi: bool
    """Several labels per event."""
    width: int
    """L of a multi-valued attribute (labels kept per event), 0 for single-valued ones."""
    buckets_days: tuple[float, ...] = ()
    """``recency``: bucket edges in days."""


@dataclass(frozen=True)
class NumericRule:
    """How a live request derives one numeric input feature (min-max scaled with training statistics)."""

    name: str
    """Column name (as in :attr:`DataSpec.numeric`)."""
    source: Literal["item", "event"]
    """``item``: looked up in :attr:`LiveFeatures.item_numeric`; ``event``: read from the request event."""
    lo: float
    """Training minimum."""
    hi: float
    """Training maximum (``lo == hi == 0`` when the training data had no finite value: the feature is 0)."""


@dataclass(frozen=True)
class LiveFeatures:
    """Everything needed to turn raw request events into model inputs without the training data.

    Item tables are indexed by item index (rows 0 and 1, PAD and UNK, are zeros).
    """

    rules: tuple[AttributeRule, ...]
    """One per categorical attribute, in :attr:`DataSpec.attributes` order."""
    numeric: tuple[NumericRule, ...]
    """One per numeric feature, in :attr:`DataSpec.numeric` order."""
    item_codes: dict[str, np.ndarray]
    """``item`` attribute -> (I,) or (I, L) int64 class indices of each item."""
    item_release: dict[str, np.ndarray]
    """``recency`` attribute with an item-level release date -> (I,) float64 seconds (NaN = unknown)."""
    item_series: dict[str, np.ndarray]
    """``repeat`` attribute -> (I,) int64 group of each item (its series, else a group of its own)."""
    item_numeric: np.ndarray
    """(I, F) float32 scaled values of the ``item`` numeric features (0 in the columns of ``event`` ones)."""
    popularity: np.ndarray
    """(I,) int64 training-event count of each item (the fallback ranking for an empty history)."""


def _to(value: object, device: torch.device | str, non_blocking: bool) -> object:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, dict):
        return {k: _to(v, device, non_blocking) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class SequenceBatch:
    """A model-ready batch: left-padded sequences with next-step targets. Built by ``features.collate``."""

    item_idx: torch.Tensor
    """(B, n) long item indices, 0 = padding."""
    valid: torch.Tensor
    """(B, n) bool, True at real events."""
    categorical: dict[str, torch.Tensor]
    """name -> (B, n) long or (B, n, L) long class indices of each *input* event."""
    numeric: torch.Tensor
    """(B, n, F) float numeric features."""
    time_hours: torch.Tensor
    """(B, n) float hours since the row's first event (event order when data is untimed)."""
    gap_bucket: torch.Tensor
    """(B, n) long log-bucket of the gap to the previous event (0 for the first event and padding)."""
    next_gap_bucket: torch.Tensor
    """(B, n) long log-bucket of the time from each event to the request its prediction answers (the next event's
    time; 0 = unknown and padding). Read only by ``model.request_gap``."""
    position: torch.Tensor
    """(B, n) long position counted from the row's first real event (0 for padding)."""
    window_start: torch.Tensor
    """(B, n) long column index of pos_k: the earliest event with T_k - T_i <= H (PAPER Eq. 1)."""
    target_item: torch.Tensor
    """(B, n) long next item at each position, 0 = no target (padding or not trained/evaluated)."""
    target_intents: dict[str, torch.Tensor]
    """intent -> (B, n) long next label, or (B, n, L) long next label set; 0 = none."""
    target_weight: torch.Tensor
    """(B, n) float loss weight d_k (0 where there is no target)."""
    user_row: torch.Tensor
    """(B,) long row of the user in :class:`EncodedSequences` (-1 for live requests)."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SequenceBatch:
        """Move every tensor to ``device``."""
        return replace(self, **{f.name: _to(getattr(self, f.name), device, non_blocking) for f in fields(self)})

    @property
    def batch_size(self) -> int:
        """B."""
        return int(self.item_idx.shape[0])


@dataclass(frozen=True)
class AttributeBoost:
    """One attribute's repeat boost (``model.repeat_boost_attributes``): the per-position boost and each item's
    label, so a score can be boosted at every item sharing the label of an input item."""

    name: str
    """The attribute."""
    boost: torch.Tensor
    """(B, n, n) ``[b, k, i]`` is added at position k to the score of every item whose label equals that of input
    item i (zero for i > k and at padding)."""
    codes: torch.Tensor
    """(I,) long label of every item; labels 0 (PAD) and 1 (``other``) share nothing."""
    n_classes: int
    """Number of labels (the attribute's vocabulary size)."""


@dataclass(frozen=True)
class ModelOutput:
    """What every model returns. Heads return logits; losses live in ``model.losses``.

    Item scores are computed from ``item_hidden`` by the model's ``score_items`` only where needed, so a
    (B, n, I) tensor is never materialised during training.
    """

    item_hidden: torch.Tensor
    """(B, n, D_out) per-position representation fed to the item head (``model.score_items``)."""
    intent_logits: dict[str, torch.Tensor]
    """intent -> (B, n, d_i) logits of the next event's label (PAD class masked to a large negative)."""
    intent_attention: torch.Tensor | None
    """(B, n, M) softmax weights over intent heads (PAPER Eq. 2), or None for models without fusion."""
    intent_embedding: torch.Tensor | None
    """(B, n, d_proj) intent embedding Z, or None for models without fusion."""
    item_loss_weight: torch.Tensor | None = None
    """(B, n) float multiplier of the item loss weights (BERT4Rec: 1 at masked positions, 0 elsewhere); None = every
    target counts."""
    history_boost: torch.Tensor | None = None
    """(B, n, n) ``model.repeat_boost``: ``[b, k, i]`` is added at position k to the score of input item i (zero for
    i > k and at padding); None = the item head alone. Use :func:`intentrec.model.score_positions` to score."""
    attribute_boosts: tuple[AttributeBoost, ...] = ()
    """``model.repeat_boost_attributes``: one :class:`AttributeBoost` per attribute (empty = none); scored by
    :func:`intentrec.model.score_positions` too."""
