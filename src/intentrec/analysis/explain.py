"""Explanations of one prediction: the predicted intents with their probabilities, each head's attention weight
(PAPER §6.7: "numerical evidence for explaining our intent prediction results"), the short-term window the model
read, and, for each recommended item, which of the predicted intent labels it matches."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from intentrec.analysis.inference import IntentReadout
from intentrec.analysis.layout import ItemLabels
from intentrec.vocab import PAD_IDX, LabelVocab

__all__ = ["Explanation", "IntentView", "ItemView", "WindowView", "explain_readout"]

_OTHER_IDX = 1


@dataclass(frozen=True)
class IntentView:
    """One intent head of the prediction."""

    name: str
    attention: float | None
    """The head's attention weight in Z (PAPER Eq. 2); None for models without fusion."""
    labels: tuple[tuple[str, float], ...]
    """Top predicted labels with probabilities, best first."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"name": self.name, "attention": None if self.attention is None else round(self.attention, 4),
                "labels": [{"label": lab, "probability": round(p, 4)} for lab, p in self.labels]}


@dataclass(frozen=True)
class ItemView:
    """One recommended item and how it relates to the predicted intents."""

    rank: int
    item_id: str
    name: str
    score: float
    labels: dict[str, tuple[str, ...]]
    """head -> the labels this item would have if engaged now (item-determinable heads only)."""
    matches: tuple[tuple[str, str, float], ...]
    """(head, label, predicted probability) of the item's labels that are among the member's top predicted labels."""
    boost: float | None = None
    """The part of ``score`` the history adds through the repeat boosts (the title, or an episode of its show, was
    watched before); None for models without them."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"rank": self.rank, "item_id": self.item_id, "name": self.name, "score": round(self.score, 4),
                "boost": None if self.boost is None else round(self.boost, 4),
                "labels": {h: list(v) for h, v in self.labels.items()},
                "matches": [{"intent": h, "label": lab, "probability": round(p, 4)} for h, lab, p in self.matches]}


@dataclass(frozen=True)
class WindowView:
    """The short-term window (PAPER Eq. 1) at the prediction."""

    events: int
    """Events inside the window (the latest one included)."""
    input_events: int
    """Events the model read in all (at most its input length n)."""
    horizon: str
    """The window's definition, e.g. ``1w`` or ``last 10 events``; ``not used`` for variants without it."""
    used: bool
    """Whether the model has a short-term encoder (IntentRec V3)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"events": self.events, "input_events": self.input_events, "horizon": self.horizon, "used": self.used}


@dataclass(frozen=True)
class Explanation:
    """Why the model recommends what it does for one history."""

    model: str
    user_id: str | None
    history: tuple[str, ...]
    """The latest events' display names, oldest first (at most 5)."""
    n_events: int
    intents: tuple[IntentView, ...]
    primary_intent: str | None
    """The head with the largest attention weight (PAPER §6.7), None without fusion."""
    window: WindowView
    items: tuple[ItemView, ...]
    ignored_items: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (``intentrec explain --json``)."""
        return {
            "model": self.model, "user_id": self.user_id, "history": list(self.history), "n_events": self.n_events,
            "primary_intent": self.primary_intent, "intents": [i.to_json() for i in self.intents],
            "window": self.window.to_json(), "items": [i.to_json() for i in self.items],
            "ignored_items": list(self.ignored_items), "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """A readable multi-line explanation for the terminal."""
        who = f"user {self.user_id}" if self.user_id is not None else "the given history"
        lines = [f"Why {self.model} recommends these items to {who} ({self.n_events} events):"]
        if self.history:
            lines.append("  latest events: " + " → ".join(self.history))
        w = self.window
        if w.used:
            lines.append(f"  short-term window ({w.horizon}): {w.events} of the {w.input_events} events read")
        else:
            lines.append(f"  short-term window: not used by this variant ({w.input_events} events read)")
        lines.append("")
        if self.primary_intent is not None:
            weight = next(i.attention for i in self.intents if i.name == self.primary_intent)
            lines.append(f"Primary intent: {self.primary_intent} (attention {weight:.2f})")
        lines.append("Predicted intents (attention weight · top labels):")
        for view in sorted(self.intents, key=lambda v: -(v.attention or 0.0)):
            att = "" if view.attention is None else f"{view.attention:.2f}  "
            labels = ", ".join(f"{lab} {p:.0%}" for lab, p in view.labels)
            lines.append(f"  {view.name:<12} {att}{labels}")
        lines.append("")
        lines.append("Top items and the predicted intents they match:")
        for item in self.items:
            match = ", ".join(f"{h} {lab} ({p:.0%})" for h, lab, p in item.matches) or "none of the top labels"
            boost = "" if item.boost is None or abs(item.boost) < 5e-3 else f", {item.boost:+.2f} from the history"
            lines.append(f"  {item.rank:>2}. {item.name}  [score {item.score:.2f}{boost}]  matches: {match}")
        if self.ignored_items:
            lines.append(f"Ignored unknown items: {', '.join(self.ignored_items)}")
        lines.extend(f"Note: {n}" for n in self.notes)
        return "\n".join(lines)


def _top_labels(probs: np.ndarray, vocab: LabelVocab, top: int) -> list[tuple[int, str, float]]:
    order = [int(j) for j in np.argsort(-probs, kind="stable") if int(j) != PAD_IDX]
    return [(j, vocab.decode(j), float(probs[j])) for j in order[:top]]


def explain_readout(
    readout: IntentReadout,
    row: int,
    *,
    model: str,
    label_vocabs: Mapping[str, LabelVocab],
    item_labels: ItemLabels | None,
    item_id: Callable[[int], str],
    item_name: Callable[[int], str],
    history: np.ndarray,
    request_time: float,
    horizon: str,
    window_used: bool,
    k: int = 10,
    intent_top: int = 3,
    match_top: int = 3,
    user_id: str | None = None,
    ignored_items: Sequence[str] = (),
) -> Explanation:
    """Build the explanation of row ``row`` of a read-out.

    Args:
        readout: the model read-out (``top_items`` holds the recommended items).
        row: which target.
        model: the model's display name.
        label_vocabs: attribute -> label vocabulary.
        item_labels: item-label tables (which labels each recommended item carries); None skips item matching.
        item_id: item index -> raw id.
        item_name: item index -> display name.
        history: (h,) int64 item indices of the history, oldest first.
        request_time: the time of the request (the latest event's time) for time-since-release labels.
        horizon: the short-term window's definition for display.
        window_used: whether the model has a short-term encoder.
        k: items to explain.
        intent_top: labels shown per intent.
        match_top: an item matches a head when one of its labels is among the member's top ``match_top`` labels
            of that head (``other`` never matches).
        user_id: the user's id, if known.
        ignored_items: request items unknown to the model.
    """
    att = readout.attention
    intents: list[IntentView] = []
    top_sets: dict[str, dict[int, float]] = {}
    for m, name in enumerate(readout.head_names):
        probs = readout.intent_probs[name][row]  # (d_i,)
        vocab = label_vocabs[name]
        best = _top_labels(probs, vocab, max(intent_top, match_top))
        intents.append(IntentView(name, None if att is None else float(att[row, m]),
                                  tuple((lab, p) for _, lab, p in best[:intent_top])))
        top_sets[name] = {j: p for j, _, p in best[:match_top] if j != _OTHER_IDX}
    primary = None if att is None or not readout.head_names else readout.head_names[int(np.argmax(att[row]))]

    items = readout.top_items[row, :k]  # (k,)
    scores = readout.top_scores[row, :k]  # (k,)
    boosts = None if readout.top_boosts is None else readout.top_boosts[row, :k]  # (k,)
    matrices: dict[str, np.ndarray] = {}
    if item_labels is not None:
        for head in item_labels.row_heads:
            if head in top_sets:
                matrices[head] = item_labels.labels_for(head, items, request_time=request_time, history=history)
    views: list[ItemView] = []
    for r, (ix, score) in enumerate(zip(items.tolist(), scores.tolist(), strict=True)):
        if not math.isfinite(score):
            break
        labels: dict[str, tuple[str, ...]] = {}
        matches: list[tuple[str, str, float]] = []
        for head, mat in matrices.items():
            codes = [int(j) for j in np.flatnonzero(mat[r]) if int(j) != PAD_IDX]
            labels[head] = tuple(label_vocabs[head].decode(j) for j in codes)
            matches.extend((head, label_vocabs[head].decode(j), top_sets[head][j]) for j in codes if j in top_sets[head])
        views.append(ItemView(r + 1, item_id(ix), item_name(ix), float(score), labels,
                              tuple(sorted(matches, key=lambda t: -t[2])),
                              None if boosts is None else float(boosts[r])))
    notes: list[str] = []
    if att is None:
        notes.append("this model has no intent attention (IntentRec V2/V3 fuse the intent heads into Z)")
    return Explanation(
        model=model,
        user_id=user_id,
        history=tuple(item_name(int(i)) if i >= 2 else "<unknown item>" for i in np.asarray(history)[-5:]),
        n_events=int(np.asarray(history).shape[0]),
        intents=tuple(intents),
        primary_intent=primary,
        window=WindowView(int(readout.window_events[row]), int(readout.input_events[row]),
                          horizon if window_used else "not used", window_used),
        items=tuple(views),
        ignored_items=tuple(ignored_items),
        notes=tuple(notes),
    )
