"""Vocabularies: raw ids and labels <-> dense indices. Standard library only (no torch, no polars).

Index conventions, shared by every vocabulary:

* ``PAD_IDX = 0`` — padding / "no value"; never a prediction target, never ranked.
* ``UNK_IDX = 1`` — for items: an id unseen in training (out of vocabulary, never ranked);
  for labels: ``other`` (rare or unseen labels folded together; a real, predictable class).
* ``2 ..`` — known ids / labels, in order of decreasing training frequency (ties by string order).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intentrec.errors import VocabError

__all__ = [
    "OTHER_LABEL",
    "PAD_IDX",
    "REPEAT_LABELS",
    "UNK_IDX",
    "ItemVocab",
    "LabelVocab",
    "recency_labels",
    "vocabs_from_json",
    "vocabs_to_json",
]

PAD_IDX = 0
UNK_IDX = 1
OTHER_LABEL = "other"
REPEAT_LABELS = ("new", "repeat")
"""Labels of a ``repeat`` intent: the item (or its series) is new to the user, or engaged with before."""
_PAD_TOKEN = "<pad>"
_UNK_TOKEN = "<unk>"


def recency_labels(edges_days: Sequence[float]) -> list[str]:
    """Bucket labels named from the edges: ``(7, 30, 365)`` -> ``['<=7d', '7d-30d', '30d-365d', '>365d']``.

    Example:
        >>> recency_labels((7.0, 30.0, 365.0))
        ['<=7d', '7d-30d', '30d-365d', '>365d']
    """
    names = [f"{e:g}d" for e in edges_days]
    return [f"<={names[0]}"] + [f"{a}-{b}" for a, b in itertools.pairwise(names)] + [f">{names[-1]}"]


def _ranked(counts: Mapping[str, int]) -> list[str]:
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


@dataclass(frozen=True)
class ItemVocab:
    """Raw item id (kept as a string) <-> item index. Index 0 is padding, 1 is unknown.

    Example:
        >>> v = ItemVocab.fit({"a": 3, "b": 5})
        >>> v.encode("b"), v.encode("a"), v.encode("zzz")
        (2, 3, 1)
        >>> v.decode(2), len(v)
        ('b', 4)
    """

    ids: tuple[str, ...]
    """Known raw ids; ``ids[j]`` has index ``j + 2``."""
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {raw: j + 2 for j, raw in enumerate(self.ids)}
        if len(index) != len(self.ids):
            raise VocabError("item vocabulary has duplicate ids")
        object.__setattr__(self, "_index", index)

    @classmethod
    def fit(cls, counts: Mapping[str, int]) -> ItemVocab:
        """Build from training counts (most frequent first)."""
        return cls(tuple(_ranked(counts)))

    def __len__(self) -> int:
        """Size including PAD and UNK (the width of the item-score vector)."""
        return len(self.ids) + 2

    @property
    def n_known(self) -> int:
        """Number of rankable items (the catalogue)."""
        return len(self.ids)

    def encode(self, raw: Any) -> int:
        """Index of a raw id; ``UNK_IDX`` when unknown."""
        return self._index.get(str(raw), UNK_IDX)

    def encode_many(self, raws: Iterable[Any]) -> list[int]:
        """Indices of many raw ids."""
        get = self._index.get
        return [get(str(r), UNK_IDX) for r in raws]

    def __contains__(self, raw: object) -> bool:
        return str(raw) in self._index

    def decode(self, idx: int) -> str:
        """Raw id of an index.

        Raises:
            VocabError: the index is padding, unknown or out of range.
        """
        if idx < 2 or idx >= len(self):
            raise VocabError(f"item index {idx} has no raw id (valid range 2..{len(self) - 1})")
        return self.ids[idx - 2]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"type": "item", "ids": list(self.ids)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemVocab:
        """Inverse of :meth:`to_json`."""
        if data.get("type") != "item" or not isinstance(data.get("ids"), list):
            raise VocabError("not an item vocabulary (expected {'type': 'item', 'ids': [...]})")
        return cls(tuple(str(x) for x in data["ids"]))


@dataclass(frozen=True)
class LabelVocab:
    """Label <-> class index for one categorical attribute or intent. 0 = padding, 1 = ``other``.

    Example:
        >>> v = LabelVocab.fit("genre", {"Drama": 10, "Comedy": 7, "Western": 1}, min_count=2)
        >>> v.encode("Drama"), v.encode("Western"), v.labels
        (2, 1, ('<pad>', 'other', 'Drama', 'Comedy'))
    """

    name: str
    """Attribute / intent name."""
    labels: tuple[str, ...]
    """All class names by index, starting with ``<pad>`` and ``other``."""
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.labels) < 2 or self.labels[0] != _PAD_TOKEN or self.labels[1] != OTHER_LABEL:
            raise VocabError(f"label vocabulary {self.name!r} must start with '<pad>', 'other'")
        index = {lab: j for j, lab in enumerate(self.labels) if j >= 2}
        if len(index) != len(self.labels) - 2:
            raise VocabError(f"label vocabulary {self.name!r} has duplicate labels")
        object.__setattr__(self, "_index", index)

    @classmethod
    def fit(
        cls, name: str, counts: Mapping[str, int], min_count: int = 1, max_labels: int | None = None
    ) -> LabelVocab:
        """Build from training label counts; rare labels (and those beyond ``max_labels``) fold into ``other``."""
        kept = [lab for lab in _ranked(counts) if counts[lab] >= min_count and lab != OTHER_LABEL]
        if max_labels is not None:
            kept = kept[:max_labels]
        return cls(name, (_PAD_TOKEN, OTHER_LABEL, *kept))

    @classmethod
    def from_labels(cls, name: str, labels: Sequence[str]) -> LabelVocab:
        """Build with a fixed label order (e.g. recency buckets, repeat/new)."""
        return cls(name, (_PAD_TOKEN, OTHER_LABEL, *[x for x in labels if x != OTHER_LABEL]))

    def __len__(self) -> int:
        """Number of classes including PAD and ``other``."""
        return len(self.labels)

    def encode(self, label: Any) -> int:
        """Class index of a label; ``PAD_IDX`` for ``None``; ``UNK_IDX`` (= other) when unknown."""
        if label is None:
            return PAD_IDX
        return self._index.get(str(label), UNK_IDX)

    def decode(self, idx: int) -> str:
        """Label of a class index."""
        if not 0 <= idx < len(self.labels):
            raise VocabError(f"class index {idx} out of range for {self.name!r} (0..{len(self.labels) - 1})")
        return self.labels[idx]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"type": "label", "name": self.name, "labels": list(self.labels)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelVocab:
        """Inverse of :meth:`to_json`."""
        if data.get("type") != "label" or not isinstance(data.get("labels"), list):
            raise VocabError("not a label vocabulary (expected {'type': 'label', 'labels': [...]})")
        return cls(str(data.get("name", "")), tuple(str(x) for x in data["labels"]))


def vocabs_to_json(items: ItemVocab, labels: Mapping[str, LabelVocab]) -> str:
    """Serialise the item vocabulary and every label vocabulary to one JSON document."""
    return json.dumps(
        {"format": 1, "items": items.to_json(), "labels": {k: v.to_json() for k, v in labels.items()}},
        ensure_ascii=False,
    )


def vocabs_from_json(text: str) -> tuple[ItemVocab, dict[str, LabelVocab]]:
    """Inverse of :func:`vocabs_to_json`.

    Raises:
        VocabError: the document is not an intentrec vocabulary file.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise VocabError(f"vocabulary file is not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("format") != 1 or "items" not in data:
        raise VocabError("not an intentrec vocabulary file (missing 'format': 1 / 'items')")
    return ItemVocab.from_json(data["items"]), {k: LabelVocab.from_json(v) for k, v in data["labels"].items()}
