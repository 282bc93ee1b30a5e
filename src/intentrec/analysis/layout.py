"""Intent-driven page layout (PAPER §6.7 "Downstream applications", §7 "Personalized UI optimization: homepage
layout and row emphasis by mode (discovery, continue-watching, genre)").

A home page is a stack of rows. Every label of every *item-determinable* intent head can make a row
("Comedy", "Shows", "New releases", "Continue watching", ...), plus two special rows: "Top picks for you" (the
best-ranked items regardless of intent) and "Something different" (discovery: items outside the member's top
predicted labels of the genre-like head). :func:`build_page` fills the rows from the model's ranking (best-ranked
matching items first, never an item twice on a page) and orders them either by the member's predicted intent
probabilities (``order="intent"``) or by one order for everyone (``order="fixed"``, e.g. :func:`fixed_row_order`,
the training label shares). :func:`evaluate_layouts` measures offline how far down the page the next engaged
item sits under both orders (lower is better).

Which labels an item *would have* if engaged at the request time mirrors the data stage exactly
(``features.live``): item attributes from the item tables, recency buckets of the item's age at the request time
(an age equal to an edge falls in the lower bucket; an unknown release date is ``other``), repeat = the item (or
its series) occurs in the history. Interaction-level attributes (e.g. the action type) are not properties of an
item and make no rows.

numpy and scipy only (no torch, no dataframes). The paired t-test and bootstrap CI repeat
``intentrec.evaluate.compare.paired_t_test`` / ``bootstrap_ci`` (same numbers, pinned by a test): the layering
contract keeps ``analysis`` and ``evaluate`` independent siblings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from intentrec.evaluate.compare import bootstrap_ci, paired_t_test
from intentrec.vocab import OTHER_LABEL, PAD_IDX, REPEAT_LABELS, UNK_IDX, LabelVocab, recency_labels

if TYPE_CHECKING:
    from intentrec.analysis.inference import IntentReadout
    from intentrec.structs import AttributeRule, DataSpec, EncodedSequences, LiveFeatures

__all__ = [
    "DISCOVERY",
    "TOP_PICKS",
    "ItemLabels",
    "LayoutEvaluation",
    "LayoutMetrics",
    "Page",
    "PageRow",
    "RowKey",
    "RowSpec",
    "build_page",
    "evaluate_layouts",
    "fixed_row_order",
    "label_shares",
    "locate",
]

RowKey = tuple[str, int]
"""A row's identity: ``(intent head, label class index)``; the special rows use label ``-1``."""
TOP_PICKS: RowKey = ("top_picks", -1)
"""Key of the "Top picks for you" row (the best-ranked items regardless of intent)."""
DISCOVERY: RowKey = ("discovery", -1)
"""Key of the "Something different" row (items outside the member's top labels of the genre-like head)."""

_SECONDS_PER_DAY = 86400.0
_DAYS_PER_YEAR = 365.0
_ROW_TITLES_REPEAT = {REPEAT_LABELS[1]: "Continue watching", REPEAT_LABELS[0]: "Something new for you"}


# --------------------------------------------------------------------------------------------------------------
# Which labels an item would have if engaged now
# --------------------------------------------------------------------------------------------------------------


def _recency_codes(request_time: float, release: np.ndarray, edges: Sequence[float], vocab: LabelVocab) -> np.ndarray:
    """(n,) codes of the bucketed item age at ``request_time``: ``features.live._recency_codes`` with one time."""
    names = recency_labels(edges)
    codes = np.full(release.shape[0], vocab.encode(names[-1]), dtype=np.int64)  # (n,)
    days = (request_time - release) / _SECONDS_PER_DAY  # (n,) NaN where the release date is unknown
    assigned = np.zeros(release.shape[0], dtype=bool)  # (n,)
    for edge, name in zip(edges, names[:-1], strict=True):
        hit = ~assigned & (days <= edge)  # (n,) an age equal to an edge falls in the lower bucket
        codes[hit] = vocab.encode(name)
        assigned |= hit
    codes[~np.isfinite(release)] = vocab.encode(OTHER_LABEL)
    return codes


def _capitalised(label: str) -> str:
    return label[:1].upper() + label[1:]


def _plural(label: str) -> str:
    word = _capitalised(label)
    return word if word.endswith("s") else f"{word}s"


def _span(days: float) -> tuple[float, str]:
    """A bucket edge in human units: whole years when the edge is a multiple of 365 days, else days."""
    if days >= _DAYS_PER_YEAR and days % _DAYS_PER_YEAR == 0:
        return days / _DAYS_PER_YEAR, "year"
    return days, "day"


def _amount(value: float, unit: str) -> str:
    return f"{value:g} {unit}" + ("" if value == 1 else "s")


def _recency_title(bucket: int, edges: Sequence[float]) -> str:
    if bucket == 0:
        return "New releases"
    if bucket >= len(edges):
        return "Older favourites"
    (a, unit_a), (b, unit_b) = _span(edges[bucket - 1]), _span(edges[bucket])
    if unit_a == unit_b:
        return f"Released {a:g}–{b:g} {unit_b}s ago"
    return f"Released {_amount(a, unit_a)} – {_amount(b, unit_b)} ago"


@dataclass(frozen=True)
class ItemLabels:
    """Per intent head, the labels an item would have if the member engaged with it at the request time.

    Build with :meth:`from_live`. Tables are indexed by item index (rows 0 and 1, PAD and UNK, carry no label).
    """

    heads: tuple[str, ...]
    """Intent heads, in the model's order."""
    rules: Mapping[str, AttributeRule]
    """head -> how the data stage derives the label (``LiveFeatures.rules``)."""
    label_vocabs: Mapping[str, LabelVocab]
    """head -> label vocabulary (class index <-> label)."""
    item_codes: Mapping[str, np.ndarray]
    """``item`` head -> (I,) or (I, L) int64 class indices of each item."""
    item_release: Mapping[str, np.ndarray]
    """``recency`` head with an item-level release date -> (I,) float64 seconds (NaN = unknown)."""
    item_series: Mapping[str, np.ndarray]
    """``repeat`` head -> (I,) int64 series group of each item."""
    n_items: int
    """I, the item vocabulary size."""

    @classmethod
    def from_live(cls, live: LiveFeatures, spec: DataSpec, label_vocabs: Mapping[str, LabelVocab]) -> ItemLabels:
        """The item labels of a bundle's or a run's serving tables.

        Args:
            live: the serving rules and item tables (``data.live.live_features`` or a bundle's).
            spec: the model's data spec (its intents are the heads).
            label_vocabs: attribute -> label vocabulary.

        Raises:
            ValueError: an intent has no serving rule or no vocabulary, or the vocabulary size differs from the spec.
        """
        rules = {r.name: r for r in live.rules}
        heads = tuple(a.name for a in spec.intents)
        for a in spec.intents:
            if a.name not in rules:
                raise ValueError(f"intent {a.name!r} has no serving rule in LiveFeatures.rules (rebuild the live tables)")
            if a.name not in label_vocabs:
                raise ValueError(f"intent {a.name!r} has no label vocabulary")
            if len(label_vocabs[a.name]) != a.n_classes:
                raise ValueError(
                    f"intent {a.name!r}: the vocabulary has {len(label_vocabs[a.name])} labels but the spec says "
                    f"{a.n_classes}; pass the vocabularies the model was trained with"
                )
        return cls(
            heads=heads,
            rules={h: rules[h] for h in heads},
            label_vocabs={h: label_vocabs[h] for h in heads},
            item_codes={h: v for h, v in live.item_codes.items() if h in rules},
            item_release={h: v for h, v in live.item_release.items() if h in rules},
            item_series={h: v for h, v in live.item_series.items() if h in rules},
            n_items=int(spec.n_items),
        )

    def n_classes(self, head: str) -> int:
        """d_head, the head's number of classes (incl. PAD and ``other``)."""
        return len(self.label_vocabs[head])

    def is_row_head(self, head: str) -> bool:
        """Whether the head's label is a property of the item (and the request time / history), so it can make rows.

        Interaction-level attributes (``event`` rules, a release date read from the event) cannot.
        """
        rule = self.rules.get(head)
        if rule is None:
            return False
        if rule.source == "item":
            return head in self.item_codes
        if rule.source == "recency":
            return head in self.item_release
        return rule.source == "repeat"

    @property
    def row_heads(self) -> tuple[str, ...]:
        """Heads that can make rows, in the model's order."""
        return tuple(h for h in self.heads if self.is_row_head(h))

    @property
    def discovery_head(self) -> str | None:
        """The genre-like head of the "Something different" row: the ``item`` head named like a genre, else a
        multi-valued one, else the one with the most labels; None without ``item`` heads."""
        heads = [h for h in self.row_heads if self.rules[h].source == "item"]
        if not heads:
            return None
        genre = [h for h in heads if "genre" in h.lower()]
        if genre:
            return genre[0]
        multi = [h for h in heads if self.rules[h].multi]
        if multi:
            return multi[0]
        return max(heads, key=self.n_classes)

    def labels_for(self, head: str, items: np.ndarray, *, request_time: float, history: np.ndarray) -> np.ndarray:
        """Which labels of ``head`` each item would have if engaged at ``request_time`` after ``history``.

        Args:
            head: a row head (see :attr:`row_heads`).
            items: (n,) int64 item indices.
            request_time: seconds since the epoch of the request (recency heads).
            history: (h,) int64 item indices the member engaged with before (repeat heads).

        Returns:
            (n, d_head) bool, True where the item carries the label (several for a multi-valued head; the PAD
            column is always False; an unknown release date gives ``other``).

        Raises:
            ValueError: the head is unknown or not item-determinable, or an item index is out of range.
        """
        if head not in self.rules:
            raise ValueError(f"unknown intent head {head!r}; the heads are {list(self.heads)}")
        if not self.is_row_head(head):
            raise ValueError(
                f"intent head {head!r} ({self.rules[head].source} rule) is a property of the interaction, not of the "
                "item, so it cannot label candidate items; use one of row_heads"
            )
        items = np.asarray(items, dtype=np.int64).reshape(-1)  # (n,)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"item indices must be in [0, {self.n_items}), got {items.min()}..{items.max()}")
        n = items.shape[0]
        rule = self.rules[head]
        vocab = self.label_vocabs[head]
        out = np.zeros((n, len(vocab)), dtype=bool)  # (n, d)
        rows = np.arange(n)  # (n,)
        if rule.source == "item":
            table = self.item_codes[head]  # (I,) or (I, L)
            codes = table[items].reshape(n, int(np.prod(table.shape[1:])))  # (n, L) (L = 1 for a single-valued head)
            out[np.repeat(rows, codes.shape[1]), codes.reshape(-1)] = True
        elif rule.source == "recency":
            release = self.item_release[head][items]  # (n,)
            out[rows, _recency_codes(float(request_time), release, rule.buckets_days, vocab)] = True
        else:  # repeat
            hist = np.asarray(history, dtype=np.int64).reshape(-1)  # (h,)
            if rule.field is None and head in self.item_series:
                series = self.item_series[head]  # (I,)
                repeat = np.isin(series[items], series[hist])  # (n,)
            else:  # series read from the request event: not known for a candidate, so item identity
                repeat = np.isin(items, hist)  # (n,)
            codes = np.where(repeat, vocab.encode(REPEAT_LABELS[1]), vocab.encode(REPEAT_LABELS[0]))  # (n,)
            out[rows, codes] = True
        out[:, PAD_IDX] = False
        return out

    def row_title(self, head: str, label: int) -> str:
        """Human title of the row of ``label`` of ``head`` ("Comedy", "Shows", "New releases", ...).

        Special rows: ``row_title(*TOP_PICKS)`` and ``row_title(*DISCOVERY)``.
        """
        if (head, label) == TOP_PICKS:
            return "Top picks for you"
        if (head, label) == DISCOVERY:
            return "Something different"
        rule = self.rules[head]
        text = self.label_vocabs[head].decode(label)
        if rule.source == "repeat":
            return _ROW_TITLES_REPEAT.get(text, _capitalised(text))
        if rule.source == "recency":
            names = recency_labels(rule.buckets_days)
            return _recency_title(names.index(text), rule.buckets_days) if text in names else _capitalised(text)
        if "format" in head.lower():
            return _plural(text)
        return _capitalised(text)


# --------------------------------------------------------------------------------------------------------------
# Rows and pages
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowSpec:
    """A candidate row before it is filled."""

    kind: Literal["top_picks", "intent", "discovery"]
    """``intent``: one label of one head; the two special rows otherwise."""
    head: str
    """Intent head (``top_picks`` / ``discovery`` for the special rows)."""
    label: int
    """Class index of the label (-1 for the special rows)."""
    title: str
    """Human title."""
    probability: float
    """The member's predicted probability of the row's label (top picks: 1.0; discovery: the predicted mass of
    the labels outside the avoided top labels)."""

    @property
    def key(self) -> RowKey:
        """``(head, label)``."""
        return (self.head, self.label)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "kind": self.kind,
            "head": self.head,
            "label": self.label,
            "title": self.title,
            "probability": self.probability,
        }


@dataclass(frozen=True)
class PageRow:
    """A filled row of a page."""

    spec: RowSpec
    """What the row is."""
    items: tuple[int, ...]
    """Item indices, best-ranked first."""

    @property
    def title(self) -> str:
        """The row's title."""
        return self.spec.title

    @property
    def key(self) -> RowKey:
        """``(head, label)``."""
        return self.spec.key

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {**self.spec.to_json(), "items": list(self.items)}


@dataclass(frozen=True)
class Page:
    """A home page: rows top to bottom, no item twice."""

    rows: tuple[PageRow, ...]
    """The rows, top first."""
    order: Literal["intent", "fixed"]
    """How the rows were ordered."""

    def locate(self, item: int) -> tuple[int, int] | None:
        """``(row_index, position)`` (0-based) of ``item`` on the page, or None when it is not shown."""
        for r, row in enumerate(self.rows):
            if item in row.items:
                return r, row.items.index(item)
        return None

    def render(self, item_name: Callable[[int], str] | None = None, max_items: int = 5) -> str:
        """Text view: one line per row, ``1. Title (p=0.42): item, item, ...``."""
        name = item_name or str
        lines = []
        for r, row in enumerate(self.rows, start=1):
            shown = ", ".join(name(i) for i in row.items[:max_items])
            more = f", … (+{len(row.items) - max_items})" if len(row.items) > max_items else ""
            lines.append(f"{r}. {row.title} (p={row.spec.probability:.2f}): {shown}{more}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"order": self.order, "rows": [row.to_json() for row in self.rows]}


def locate(page: Page, item: int) -> tuple[int, int] | None:
    """``(row_index, position)`` (0-based) of ``item`` on ``page``, or None when the page does not show it."""
    return page.locate(item)


def label_shares(label_counts: Mapping[str, np.ndarray], smoothing: float = 0.0) -> dict[str, np.ndarray]:
    """Per head, (d_i,) share of each label among the head's training labels (PAD gets 0).

    Args:
        label_counts: head -> (d_i,) training label counts (``evaluate.evaluator.intent_label_counts``).
        smoothing: added to every non-PAD count before normalising (Laplace; 0 = raw shares).
    """
    out: dict[str, np.ndarray] = {}
    for head, counts in label_counts.items():
        c = np.asarray(counts, dtype=np.float64).reshape(-1).copy()  # (d,)
        c[PAD_IDX] = 0.0
        c[PAD_IDX + 1 :] += smoothing
        total = c.sum()
        out[head] = c / total if total > 0 else c
    return out


def _top_labels(probs: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` real labels (index >= 2) with the largest value, best first; ties by index."""
    real = np.arange(2, probs.shape[0])  # (d-2,)
    order = np.lexsort((real, -probs[real]))  # (d-2,)
    return real[order][:k]


def fixed_row_order(
    label_counts: Mapping[str, np.ndarray], item_labels: ItemLabels, *, discovery_top: int = 3
) -> list[RowKey]:
    """One row order for everyone: rows by training label share, best first.

    The population analogue of the intent order: a label's share of its head's training labels plays the role
    of the member's predicted probability; "Top picks" (1.0) comes first; "Something different" gets the share
    of the labels outside the ``discovery_top`` most frequent ones of the genre-like head. Ties keep the head
    order, then the label order.

    Args:
        label_counts: head -> (d_i,) training label counts (``evaluate.evaluator.intent_label_counts``).
        item_labels: the item labels (which heads make rows).
        discovery_top: how many top labels the discovery row avoids.

    Returns:
        Row keys, top first.

    Raises:
        ValueError: a row head has no counts, or counts of the wrong length.
    """
    for head in item_labels.row_heads:
        if head not in label_counts:
            raise ValueError(f"label_counts has no entry for intent head {head!r}")
        if np.asarray(label_counts[head]).reshape(-1).shape[0] != item_labels.n_classes(head):
            raise ValueError(f"label_counts[{head!r}] must have {item_labels.n_classes(head)} entries")
    shares = label_shares(label_counts)
    scored: list[tuple[float, RowKey]] = [(1.0, TOP_PICKS)]
    for head in item_labels.row_heads:
        scored.extend((float(shares[head][c]), (head, c)) for c in range(2, item_labels.n_classes(head)))
    disc = item_labels.discovery_head
    if disc is not None:
        avoid = _top_labels(shares[disc], discovery_top)
        scored.append((float(1.0 - shares[disc][avoid].sum() - shares[disc][PAD_IDX]), DISCOVERY))
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][0], i))
    return [scored[i][1] for i in order]


@dataclass(frozen=True)
class _Candidate:
    spec: RowSpec
    mask: np.ndarray
    """(K,) bool over the ranked items: which may fill the row."""


def _label_matrices(
    ranked: np.ndarray, item_labels: ItemLabels, *, request_time: float, history: np.ndarray
) -> dict[str, np.ndarray]:
    """Row head -> (K, d) bool labels of the ranked items."""
    return {
        h: item_labels.labels_for(h, ranked, request_time=request_time, history=history) for h in item_labels.row_heads
    }


def _candidates(
    n_ranked: int,
    intent_probs: Mapping[str, np.ndarray],
    item_labels: ItemLabels,
    matrices: Mapping[str, np.ndarray],
    *,
    top_picks: bool,
    discovery_avoid: np.ndarray | None,
) -> list[_Candidate]:
    """Every candidate row with its item mask, in the canonical order (top picks, heads, labels, discovery)."""
    out: list[_Candidate] = []
    if top_picks:
        spec = RowSpec("top_picks", *TOP_PICKS, item_labels.row_title(*TOP_PICKS), 1.0)
        out.append(_Candidate(spec, np.ones(n_ranked, dtype=bool)))
    for head in item_labels.row_heads:
        probs = np.asarray(intent_probs[head], dtype=np.float64).reshape(-1)  # (d,)
        has = matrices[head]  # (K, d)
        for c in range(2, has.shape[1]):
            spec = RowSpec("intent", head, c, item_labels.row_title(head, c), float(probs[c]))
            out.append(_Candidate(spec, has[:, c]))
    disc = item_labels.discovery_head
    if disc is not None and discovery_avoid is not None:
        probs = np.asarray(intent_probs[disc], dtype=np.float64).reshape(-1)  # (d,)
        mass = float(1.0 - probs[discovery_avoid].sum() - probs[PAD_IDX])
        mask = ~matrices[disc][:, discovery_avoid].any(axis=1)  # (K,) none of the avoided labels
        out.append(_Candidate(RowSpec("discovery", *DISCOVERY, item_labels.row_title(*DISCOVERY), mass), mask))
    return out


def _fill(
    ordered: Sequence[_Candidate],
    ranked: np.ndarray,
    *,
    n_rows: int,
    row_size: int,
    min_row_items: int,
    order: Literal["intent", "fixed"],
) -> Page:
    """Fill rows in page order with the best-ranked unused matching items; drop short rows; stop at ``n_rows``."""
    used = np.zeros(ranked.shape[0], dtype=bool)  # (K,)
    rows: list[PageRow] = []
    for cand in ordered:
        if len(rows) >= n_rows:
            break
        take = np.flatnonzero(cand.mask & ~used)[:row_size]  # (<= row_size,) positions in the ranking
        if take.shape[0] < min_row_items:
            continue
        used[take] = True
        rows.append(PageRow(cand.spec, tuple(int(i) for i in ranked[take])))
    return Page(tuple(rows), order)


def _rank_of(keys: Sequence[RowKey], fixed_order: Sequence[RowKey] | None) -> dict[RowKey, int]:
    """Position of each candidate key in the fixed order (keys it lacks follow, in candidate order)."""
    pos: dict[RowKey, int] = {}
    if fixed_order is not None:
        for i, key in enumerate(fixed_order):
            pos.setdefault((str(key[0]), int(key[1])), i)
    base = len(pos)
    return {key: pos.get(key, base + j) for j, key in enumerate(keys)}


def _order(
    cands: Sequence[_Candidate],
    order: Literal["intent", "fixed"],
    fixed_order: Sequence[RowKey] | None,
    scores: Sequence[float] | None = None,
) -> list[_Candidate]:
    rank = _rank_of([c.spec.key for c in cands], fixed_order)
    if order == "fixed":
        return sorted(cands, key=lambda c: rank[c.spec.key])
    value = [c.spec.probability for c in cands] if scores is None else list(scores)
    idx = sorted(range(len(cands)), key=lambda i: (-value[i], rank[cands[i].spec.key]))
    return [cands[i] for i in idx]


def _ratio(p: float, prior: float) -> float:
    """``p / prior``; a zero prior gives +inf for a positive ``p`` and 0 otherwise."""
    if prior > 0:
        return p / prior
    return math.inf if p > 0 else 0.0


def _lift_scores(
    cands: Sequence[_Candidate], label_prior: Mapping[str, np.ndarray], item_labels: ItemLabels, avoid: np.ndarray | None
) -> list[float]:
    """Row scores ``p(label | member) / prior(label)`` (top picks: +inf, i.e. first)."""
    out: list[float] = []
    disc = item_labels.discovery_head
    for c in cands:
        if c.spec.kind == "top_picks":
            out.append(math.inf)
        elif c.spec.kind == "discovery" and disc is not None and avoid is not None:
            prior = label_prior[disc]
            mass = float(1.0 - prior[avoid].sum() - prior[PAD_IDX])
            out.append(_ratio(c.spec.probability, mass))
        else:
            out.append(_ratio(c.spec.probability, float(label_prior[c.spec.head][c.spec.label])))
    return out


def _check_page_args(n_rows: int, row_size: int, min_row_items: int, order: str, discovery_top: int) -> None:
    if n_rows < 1 or row_size < 1:
        raise ValueError(f"n_rows and row_size must be >= 1, got {n_rows} and {row_size}")
    if not 1 <= min_row_items <= row_size:
        raise ValueError(f"min_row_items must be in [1, row_size={row_size}], got {min_row_items}")
    if order not in ("intent", "fixed"):
        raise ValueError(f"order must be 'intent' or 'fixed', got {order!r}")
    if discovery_top < 1:
        raise ValueError(f"discovery_top must be >= 1, got {discovery_top}")


def _clean_ranking(ranked_items: np.ndarray) -> np.ndarray:
    """(K',) the ranking without PAD/UNK and without repeats (first occurrence kept)."""
    ranked = np.asarray(ranked_items, dtype=np.int64).reshape(-1)  # (K,)
    ranked = ranked[ranked > UNK_IDX]
    _, first = np.unique(ranked, return_index=True)
    return ranked[np.sort(first)] if first.shape[0] != ranked.shape[0] else ranked  # (K',)


def _discovery_avoid(
    intent_probs: Mapping[str, np.ndarray],
    item_labels: ItemLabels,
    order: Literal["intent", "fixed"],
    fixed_order: Sequence[RowKey] | None,
    discovery_top: int,
) -> np.ndarray | None:
    """Labels the discovery row avoids: the member's top predicted ones (intent order) or the first ones of the
    discovery head in the fixed order (the population's, so the fixed page uses no member intent)."""
    disc = item_labels.discovery_head
    if disc is None:
        return None
    if order == "intent":
        return _top_labels(np.asarray(intent_probs[disc], dtype=np.float64).reshape(-1), discovery_top)
    firsts = [int(lab) for head, lab in (fixed_order or ()) if head == disc and int(lab) >= 2]
    return np.asarray(firsts[:discovery_top], dtype=np.int64) if firsts else None


def build_page(
    ranked_items: np.ndarray,
    intent_probs: Mapping[str, np.ndarray],
    item_labels: ItemLabels,
    *,
    request_time: float,
    history: np.ndarray,
    n_rows: int = 8,
    row_size: int = 10,
    order: Literal["intent", "fixed"] = "intent",
    fixed_order: Sequence[RowKey] | None = None,
    min_row_items: int = 3,
    top_picks: bool = True,
    discovery_top: int = 3,
    row_score: Literal["probability", "lift"] = "probability",
    label_prior: Mapping[str, np.ndarray] | None = None,
) -> Page:
    """A member's home page: intent rows filled from the model's ranking, ordered by intent or by a fixed order.

    Candidate rows: "Top picks for you" (every ranked item; probability 1.0, so first in the intent order), every
    real label (not PAD, not ``other``) of every row head, and "Something different" (items with none of the
    ``discovery_top`` avoided labels of the genre-like head; only when such a head exists). Rows are filled in page
    order, each with the best-ranked matching items not already on the page (at most ``row_size``); rows with
    fewer than ``min_row_items`` are dropped (their items stay available); filling stops at ``n_rows`` rows.
    A "Continue watching" row can only hold items the member (or the item's series) engaged with before, so it
    disappears when the ranking excluded seen items.

    Args:
        ranked_items: (K,) int64 item indices, best first (PAD/UNK and repeats are skipped).
        intent_probs: head -> (d_i,) predicted probabilities of the next event's label.
        item_labels: the item label tables.
        request_time: seconds since the epoch of the request (the last history event's time offline).
        history: (h,) int64 item indices the member engaged with before, oldest first.
        n_rows: rows on the page at most.
        row_size: items per row at most.
        order: ``intent`` — by the member's row score (ties by ``fixed_order``, else the candidate order);
            ``fixed`` — by ``fixed_order`` (rows it lacks follow in the candidate order).
        fixed_order: row keys top first (e.g. :func:`fixed_row_order`); required for ``order="fixed"``. In the
            fixed order the discovery row avoids the discovery head's first labels of this order.
        min_row_items: rows with fewer items are dropped.
        top_picks: include the "Top picks for you" row.
        discovery_top: how many top labels the discovery row avoids.
        row_score: intent order by the predicted ``probability`` of the label, or by its ``lift`` over
            ``label_prior`` (probability / prior share).
        label_prior: head -> (d_i,) prior label shares (:func:`label_shares`); required for ``row_score="lift"``.

    Returns:
        The :class:`Page`.

    Raises:
        ValueError: bad sizes or order, ``fixed`` without ``fixed_order``, ``lift`` without ``label_prior``, or
            ``intent_probs`` missing a row head or of the wrong length.
    """
    _check_page_args(n_rows, row_size, min_row_items, order, discovery_top)
    if order == "fixed" and fixed_order is None:
        raise ValueError("order='fixed' needs fixed_order (e.g. fixed_row_order(label_counts, item_labels))")
    if row_score not in ("probability", "lift"):
        raise ValueError(f"row_score must be 'probability' or 'lift', got {row_score!r}")
    if row_score == "lift" and order == "intent" and label_prior is None:
        raise ValueError("row_score='lift' needs label_prior (e.g. label_shares(label_counts, smoothing=1.0))")
    for head in item_labels.row_heads:
        if head not in intent_probs:
            raise ValueError(f"intent_probs has no entry for intent head {head!r}")
        if np.asarray(intent_probs[head]).reshape(-1).shape[0] != item_labels.n_classes(head):
            raise ValueError(f"intent_probs[{head!r}] must have {item_labels.n_classes(head)} entries")
    ranked = _clean_ranking(ranked_items)  # (K',)
    history = np.asarray(history, dtype=np.int64).reshape(-1)  # (h,)
    matrices = _label_matrices(ranked, item_labels, request_time=request_time, history=history)
    return _page(
        ranked, intent_probs, item_labels, matrices, order=order, fixed_order=fixed_order, n_rows=n_rows,
        row_size=row_size, min_row_items=min_row_items, top_picks=top_picks, discovery_top=discovery_top,
        row_score=row_score, label_prior=label_prior,
    )


def _page(
    ranked: np.ndarray,
    intent_probs: Mapping[str, np.ndarray],
    item_labels: ItemLabels,
    matrices: Mapping[str, np.ndarray],
    *,
    order: Literal["intent", "fixed"],
    fixed_order: Sequence[RowKey] | None,
    n_rows: int,
    row_size: int,
    min_row_items: int,
    top_picks: bool,
    discovery_top: int,
    row_score: Literal["probability", "lift"],
    label_prior: Mapping[str, np.ndarray] | None,
) -> Page:
    """:func:`build_page` on validated inputs and precomputed label matrices."""
    avoid = _discovery_avoid(intent_probs, item_labels, order, fixed_order, discovery_top)
    cands = _candidates(
        ranked.shape[0], intent_probs, item_labels, matrices, top_picks=top_picks, discovery_avoid=avoid
    )
    use_lift = row_score == "lift" and order == "intent" and label_prior is not None
    scores = _lift_scores(cands, label_prior, item_labels, avoid) if use_lift and label_prior is not None else None
    ordered = _order(cands, order, fixed_order, scores)
    return _fill(ordered, ranked, n_rows=n_rows, row_size=row_size, min_row_items=min_row_items, order=order)


# --------------------------------------------------------------------------------------------------------------
# Offline evaluation: where does the next engaged item sit?
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutMetrics:
    """How far down one layout puts the next engaged item, over all targets."""

    mean_row: float
    """Mean 1-based row of the next item, a miss counted as ``n_rows + 1`` (lower is better)."""
    hit_rate: float
    """Share of targets whose next item is on the page."""
    mean_row_hits: float | None
    """Mean row among hits (None without hits)."""
    mean_reciprocal_row: float
    """Mean of 1 / row (0 for a miss; MRR-like, higher is better)."""
    top3_share: float
    """Share of targets whose next item is on the page in the first 3 rows."""
    mean_page_rows: float
    """Mean number of rows on the page."""
    first_rows: tuple[tuple[str, float], ...]
    """Titles most often placed first among the intent-driven rows (the first row that is not "Top picks"),
    with their share of targets, most frequent first (at most 5)."""

    @classmethod
    def from_rows(
        cls, rows: np.ndarray, n_rows: int, page_rows: np.ndarray, first_titles: Sequence[str]
    ) -> LayoutMetrics:
        """Summaries of (T,) 1-based rows (``n_rows + 1`` = miss)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1)  # (T,)
        hit = rows <= n_rows  # (T,)
        n = rows.shape[0]
        counts = Counter(first_titles).most_common(5)
        return cls(
            mean_row=float(rows.mean()) if n else math.nan,
            hit_rate=float(hit.mean()) if n else math.nan,
            mean_row_hits=float(rows[hit].mean()) if hit.any() else None,
            mean_reciprocal_row=float(np.where(hit, 1.0 / rows, 0.0).mean()) if n else math.nan,
            top3_share=float((hit & (rows <= 3)).mean()) if n else math.nan,
            mean_page_rows=float(np.mean(page_rows)) if n else math.nan,
            first_rows=tuple((title, c / max(1, n)) for title, c in counts),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "mean_row": self.mean_row,
            "hit_rate": self.hit_rate,
            "mean_row_hits": self.mean_row_hits,
            "mean_reciprocal_row": self.mean_reciprocal_row,
            "top3_share": self.top3_share,
            "mean_page_rows": self.mean_page_rows,
            "first_rows": [{"title": t, "share": s} for t, s in self.first_rows],
        }


@dataclass(frozen=True)
class LayoutEvaluation:
    """Intent-ordered versus fixed-order pages on the same targets."""

    n_targets: int
    """T."""
    n_rows: int
    """Rows per page at most (a miss counts as ``n_rows + 1``)."""
    row_size: int
    """Items per row at most."""
    row_score: str
    """Row score of the intent order (``probability`` or ``lift``)."""
    intent: LayoutMetrics
    """Pages ordered by the member's predicted intents."""
    fixed: LayoutMetrics
    """Pages in the fixed order."""
    mean_difference: float
    """Mean of intent row − fixed row per target (negative: the intent order puts the next item higher)."""
    t_statistic: float | None
    """Paired t statistic of intent − fixed rows (negative: intent better); None with fewer than 2 targets."""
    p_value: float | None
    """Two-sided paired t-test p-value; None with fewer than 2 targets."""
    ci: tuple[float, float] | None
    """95% bootstrap CI of the mean difference; None with fewer than 2 targets."""
    fixed_order: tuple[RowKey, ...]
    """The fixed row order used."""
    intent_rows: np.ndarray
    """(T,) int64 1-based row of the next item on the intent page (``n_rows + 1`` = not on the page)."""
    fixed_rows: np.ndarray
    """(T,) int64 the same on the fixed page."""
    ranked: LayoutMetrics | None = None
    """Reference without rows of any kind: the page is the ranking cut into consecutive rows of ``row_size``."""

    def to_json(self, include_targets: bool = False) -> dict[str, Any]:
        """JSON-safe form (per-target rows only when ``include_targets``)."""
        doc: dict[str, Any] = {
            "n_targets": self.n_targets,
            "n_rows": self.n_rows,
            "row_size": self.row_size,
            "row_score": self.row_score,
            "intent": self.intent.to_json(),
            "fixed": self.fixed.to_json(),
            "ranked": None if self.ranked is None else self.ranked.to_json(),
            "mean_difference": self.mean_difference,
            "t_statistic": _finite_or_none(self.t_statistic),
            "p_value": self.p_value,
            "ci": list(self.ci) if self.ci is not None else None,
            "fixed_order": [list(k) for k in self.fixed_order],
        }
        if include_targets:
            doc["intent_rows"] = self.intent_rows.tolist()
            doc["fixed_rows"] = self.fixed_rows.tolist()
        return doc


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _row_of(page: Page, item: int, n_rows: int) -> int:
    where = page.locate(item)
    return n_rows + 1 if where is None else where[0] + 1


def _first_intent_title(page: Page) -> str:
    for row in page.rows:
        if row.spec.kind != "top_picks":
            return row.title
    return "(none)"


def evaluate_layouts(
    readout: IntentReadout,
    data: EncodedSequences,
    item_labels: ItemLabels,
    *,
    label_counts: Mapping[str, np.ndarray],
    n_rows: int = 8,
    row_size: int = 10,
    min_row_items: int = 3,
    top_picks: bool = True,
    discovery_top: int = 3,
    row_score: Literal["probability", "lift"] = "probability",
    n_resamples: int = 1000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> LayoutEvaluation:
    """Where the next engaged item sits on the intent-ordered page versus the fixed-order page, per target.

    For target ``(u, p)`` the history is the user's events ``[0, p)``, the request time the last history event's
    timestamp, the next item event ``p``; both pages are built from ``readout.top_items`` (compute it with a large
    ``top_k``, e.g. 500, so rows can fill) and the fixed page uses :func:`fixed_row_order` of ``label_counts``.

    Args:
        readout: the model's read-out at the targets (with ``top_items``).
        data: the encoded data the targets index.
        item_labels: the item label tables.
        label_counts: head -> (d_i,) training label counts (``evaluate.evaluator.intent_label_counts``).
        n_rows: rows per page (a miss counts as ``n_rows + 1``).
        row_size: items per row.
        min_row_items: rows with fewer items are dropped.
        top_picks: include the "Top picks for you" row (first on both pages).
        discovery_top: how many top labels the discovery row avoids.
        row_score: the intent order's row score (``probability`` or ``lift`` over the Laplace-smoothed training
            label shares).
        n_resamples: bootstrap resamples of the CI.
        seed: bootstrap seed.
        progress: called with the number of targets done (every 1,000 and at the end).

    Returns:
        The :class:`LayoutEvaluation`.

    Raises:
        ValueError: the read-out has no ranked items or no probabilities of a row head, a target has no history or
            no next event, or bad page arguments.
    """
    _check_page_args(n_rows, row_size, min_row_items, "intent", discovery_top)
    targets = np.asarray(readout.targets, dtype=np.int64).reshape(-1, 2)  # (T, 2)
    n = targets.shape[0]
    if n and readout.top_items.shape[1] == 0:
        raise ValueError("the read-out has no ranked items; call read_out(..., top_k=500)")
    fixed_order = fixed_row_order(label_counts, item_labels, discovery_top=discovery_top)
    prior = label_shares(label_counts, smoothing=1.0) if row_score == "lift" else None
    heads = item_labels.row_heads
    for h in heads:
        if h not in readout.intent_probs or readout.intent_probs[h].shape != (n, item_labels.n_classes(h)):
            raise ValueError(
                f"the read-out needs intent_probs[{h!r}] of shape ({n}, {item_labels.n_classes(h)}) (same model and data)"
            )
    if row_score not in ("probability", "lift"):
        raise ValueError(f"row_score must be 'probability' or 'lift', got {row_score!r}")
    rows = {"intent": np.zeros(n, dtype=np.int64), "fixed": np.zeros(n, dtype=np.int64)}  # (T,) each
    ranked_rows = np.full(n, n_rows + 1, dtype=np.int64)  # (T,) the plain ranking cut into rows
    n_page_rows = {"intent": np.zeros(n, dtype=np.int64), "fixed": np.zeros(n, dtype=np.int64)}  # (T,) each
    first: dict[str, list[str]] = {"intent": [], "fixed": []}
    for t, (u, p) in enumerate(targets.tolist()):
        if p < 1:
            raise ValueError(f"target {t} (user row {u}, position {p}) has no history; targets need position >= 1")
        start = int(data.offsets[u])
        if start + p >= int(data.offsets[u + 1]):
            raise ValueError(f"target {t} (user row {u}, position {p}) is past the user's last event")
        history = data.item_idx[start : start + p]  # (p,)
        request_time = float(data.timestamps[start + p - 1])
        next_item = int(data.item_idx[start + p])
        probs = {h: readout.intent_probs[h][t] for h in heads}  # head -> (d_h,)
        ranked = _clean_ranking(readout.top_items[t])  # (K',)
        hit = np.flatnonzero(ranked[: n_rows * row_size] == next_item)
        if hit.size:
            ranked_rows[t] = int(hit[0]) // row_size + 1
        matrices = _label_matrices(ranked, item_labels, request_time=request_time, history=history)
        for order in ("intent", "fixed"):
            page = _page(
                ranked, probs, item_labels, matrices, order=order, fixed_order=fixed_order, n_rows=n_rows,
                row_size=row_size, min_row_items=min_row_items, top_picks=top_picks, discovery_top=discovery_top,
                row_score=row_score, label_prior=prior,
            )
            rows[order][t] = _row_of(page, next_item, n_rows)
            n_page_rows[order][t] = len(page.rows)
            first[order].append(_first_intent_title(page))
        if progress is not None and ((t + 1) % 1000 == 0 or t + 1 == n):
            progress(t + 1)
    metrics = {o: LayoutMetrics.from_rows(rows[o], n_rows, n_page_rows[o], first[o]) for o in rows}
    t_stat: float | None = None
    p_value: float | None = None
    ci: tuple[float, float] | None = None
    if n >= 2:
        t_stat, p_value = paired_t_test(rows["intent"], rows["fixed"])
        _, lo, hi = bootstrap_ci(rows["intent"], rows["fixed"], n_resamples=max(1, n_resamples), seed=seed)
        ci = (lo, hi)
    diff = float((rows["intent"] - rows["fixed"]).mean()) if n else math.nan
    return LayoutEvaluation(
        n_targets=n,
        n_rows=n_rows,
        row_size=row_size,
        row_score=row_score,
        intent=metrics["intent"],
        fixed=metrics["fixed"],
        mean_difference=diff,
        t_statistic=t_stat,
        p_value=p_value,
        ci=ci,
        fixed_order=tuple(fixed_order),
        intent_rows=rows["intent"],
        fixed_rows=rows["fixed"],
        ranked=LayoutMetrics.from_rows(ranked_rows, n_rows, np.full(n, n_rows), []),
    )
