"""Live requests -> :class:`~intentrec.features.collate.Example`: raw events encoded exactly as ``prepare`` encodes
training events, from a bundle's :class:`~intentrec.structs.LiveFeatures` (numpy only, no training data).

Rules (tests pin each one against the data stage):

* events are ordered by timestamp (stable); for untimed data the order given is the order, and the timestamps
  become 0, 1, 2, ...;
* unknown item ids are dropped and reported (a request never fails because of them);
* repeat labels look at the whole (known) history given, then the latest ``max_len`` events are kept;
* a missing interaction attribute is "no value" (PAD), an unseen label is ``other``;
* the prediction after the last event answers the request at ``request_time`` (default: now), the one after each
  earlier event the next event (``model.request_gap`` reads the time in between).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from intentrec.errors import RequestError
from intentrec.features.collate import Example
from intentrec.structs import AttributeRule, DataSpec, LiveFeatures, NumericRule
from intentrec.vocab import (
    OTHER_LABEL,
    PAD_IDX,
    REPEAT_LABELS,
    UNK_IDX,
    ItemVocab,
    LabelVocab,
    recency_labels,
)

__all__ = ["EncodedRequest", "LiveEvent", "encode_live_events", "item_history", "request_time_or_now"]

_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class LiveEvent:
    """One raw event of a live request."""

    item_id: str
    """Raw item id (as in the training data)."""
    timestamp: float | None = None
    """Seconds since the epoch (UTC); required for models trained on timed data, ignored otherwise."""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """Interaction columns by name (e.g. ``{"action": "play"}``): a label, a list of labels, or a number."""


def item_history(items: Sequence[str], end: float, step: float = 60.0) -> list[LiveEvent]:
    """An ad-hoc history of item ids (oldest first) as events ``step`` seconds apart, the last one at ``end``."""
    return [LiveEvent(item, end - step * (len(items) - 1 - i), {}) for i, item in enumerate(items)]


@dataclass(frozen=True)
class EncodedRequest:
    """A request encoded for the model."""

    example: Example | None
    """Model input (None when no event has a known item)."""
    item_idx: np.ndarray
    """(l,) int64 item indices of the encoded history (all known events, before the ``max_len`` cut)."""
    ignored_items: tuple[str, ...]
    """Item ids unknown to the model, dropped (in request order, duplicates kept once)."""
    truncated: int
    """Known events older than the latest ``max_len`` that were left out of the input."""


def _single_label(value: Any, rule: AttributeRule, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        raise RequestError(f"{where}: attribute {rule.field!r} takes one label, got a list of {len(value)}")
    return str(value)


def _encode_event_attribute(values: list[Any], rule: AttributeRule, vocab: LabelVocab) -> np.ndarray:
    """(l,) or (l, L) codes of an interaction-level attribute, laid out as ``data.encode.encode_labels``."""
    if not rule.multi:
        return np.array(
            [vocab.encode(_single_label(v, rule, f"event {i}")) for i, v in enumerate(values)], dtype=np.int64
        )
    out = np.zeros((len(values), rule.width), dtype=np.int64)  # (l, L)
    other_last = len(vocab)
    for i, v in enumerate(values):
        labels = [] if v is None else [v] if isinstance(v, str | int | float) else list(v)
        codes = sorted({vocab.encode(str(x)) for x in labels if x is not None}, key=lambda c: other_last if c == UNK_IDX else c)
        codes = codes[: rule.width]
        out[i, : len(codes)] = codes
    return out


def _recency_codes(
    timestamps: np.ndarray, release: np.ndarray, rule: AttributeRule, vocab: LabelVocab
) -> np.ndarray:
    """(l,) codes of the bucketed item age at each event (``data.labels.label_column``'s recency rule)."""
    names = recency_labels(rule.buckets_days)
    codes = np.full(timestamps.shape[0], vocab.encode(names[-1]), dtype=np.int64)  # (l,)
    days = (timestamps - release) / _SECONDS_PER_DAY  # (l,)
    assigned = np.zeros(timestamps.shape[0], dtype=bool)  # (l,)
    for edge, name in zip(rule.buckets_days, names[:-1], strict=True):
        hit = ~assigned & (days <= edge)
        codes[hit] = vocab.encode(name)
        assigned |= hit
    codes[~np.isfinite(release)] = vocab.encode(OTHER_LABEL)
    return codes


def _as_float(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _scale(x: np.ndarray, rule: NumericRule) -> np.ndarray:
    """Min-max scaling with training statistics, clipped to [0, 1], missing -> 0 (``data.encode.encode_numeric``)."""
    if rule.lo == 0.0 and rule.hi == 0.0:
        return np.zeros_like(x, dtype=np.float32)
    scale = rule.hi - rule.lo if rule.hi > rule.lo else 1.0
    return np.nan_to_num(np.clip((x - rule.lo) / scale, 0.0, 1.0), nan=0.0).astype(np.float32)


def encode_live_events(
    events: Sequence[LiveEvent],
    live: LiveFeatures,
    spec: DataSpec,
    item_vocab: ItemVocab,
    label_vocabs: Mapping[str, LabelVocab],
    max_len: int,
    request_time: float | None = None,
) -> EncodedRequest:
    """Encode a request's events as model input (the latest ``max_len`` known events).

    Args:
        events: the user's events, any order for timed data (sorted here), oldest first for untimed data.
        live: the bundle's serving rules and item tables.
        spec: the model's data spec.
        item_vocab: raw item id <-> index.
        label_vocabs: attribute -> label vocabulary.
        max_len: the model's input length n.
        request_time: when the recommendations are asked for (seconds since the epoch; read by
            ``model.request_gap``): None = now (timed data) or right after the last event (untimed data).

    Returns:
        The :class:`EncodedRequest` (``example`` None when no event has a known item).

    Raises:
        RequestError: a timed model got an event without a finite timestamp, or an attribute has the wrong type.
    """
    if spec.timed:
        for i, e in enumerate(events):
            if e.timestamp is None or not math.isfinite(e.timestamp):
                raise RequestError(
                    f"event {i} (item {e.item_id!r}) has no timestamp; this model was trained on timed data, so every "
                    "event needs 'timestamp' (seconds since the epoch or an ISO 8601 time)"
                )
        order = sorted(range(len(events)), key=lambda i: float(events[i].timestamp or 0.0))
        events = [events[i] for i in order]
    idx_all = [item_vocab.encode(e.item_id) for e in events]
    ignored = tuple(dict.fromkeys(e.item_id for e, ix in zip(events, idx_all, strict=True) if ix == UNK_IDX))
    kept = [e for e, ix in zip(events, idx_all, strict=True) if ix != UNK_IDX]
    item_idx = np.array([ix for ix in idx_all if ix != UNK_IDX], dtype=np.int64)  # (l_all,)
    if not kept:
        return EncodedRequest(None, item_idx, ignored, 0)
    n_all = len(kept)
    if spec.timed:
        timestamps = np.array([float(e.timestamp or 0.0) for e in kept], dtype=np.float64)  # (l_all,)
    else:
        timestamps = np.arange(n_all, dtype=np.float64)  # (l_all,) order index
    start = max(0, n_all - max_len)
    window = slice(start, n_all)

    categorical: dict[str, np.ndarray] = {}
    inputs = {a.name for a in spec.inputs}
    for rule in live.rules:
        if rule.name not in inputs:
            continue
        vocab = label_vocabs[rule.name]
        if rule.source == "item":
            codes = live.item_codes[rule.name][item_idx]  # (l_all,) or (l_all, L)
        elif rule.source == "event":
            codes = _encode_event_attribute([e.attributes.get(rule.field or "") for e in kept], rule, vocab)
        elif rule.source == "recency":
            if rule.name in live.item_release:
                release = live.item_release[rule.name][item_idx]  # (l_all,)
            else:
                release = np.array(
                    [_as_float(e.attributes.get(rule.field or ""), f"event {i} {rule.field!r}") for i, e in enumerate(kept)],
                    dtype=np.float64,
                )
            codes = _recency_codes(timestamps, release, rule, vocab)
        else:  # repeat
            if rule.field is not None:
                keys: list[Any] = [
                    ("s", str(v)) if (v := e.attributes.get(rule.field)) is not None else ("i", e.item_id) for e in kept
                ]
            else:
                keys = live.item_series[rule.name][item_idx].tolist()
            seen: set[Any] = set()
            repeat = np.zeros(n_all, dtype=bool)  # (l_all,)
            for i, key in enumerate(keys):
                repeat[i] = key in seen
                seen.add(key)
            codes = np.where(repeat, vocab.encode(REPEAT_LABELS[1]), vocab.encode(REPEAT_LABELS[0])).astype(np.int64)
        categorical[rule.name] = np.ascontiguousarray(codes[window])

    numeric = np.zeros((n_all, len(live.numeric)), dtype=np.float32)  # (l_all, F)
    for f, nrule in enumerate(live.numeric):
        if nrule.source == "item":
            numeric[:, f] = live.item_numeric[item_idx, f]
        else:
            raw = np.array(
                [_as_float(e.attributes.get(nrule.name), f"event {i} {nrule.name!r}") for i, e in enumerate(kept)],
                dtype=np.float64,
            )
            numeric[:, f] = _scale(raw, nrule)

    length = n_all - start
    target_intents: dict[str, np.ndarray] = {}
    for a in spec.intents:
        width = next((r.width for r in live.rules if r.name == a.name), 0)
        target_intents[a.name] = np.full((length, width) if a.multi_valued else (length,), PAD_IDX, dtype=np.int64)
    example = Example(
        item_idx=item_idx[window].copy(),
        timestamps=timestamps[window].copy(),
        categorical=categorical,
        numeric=np.ascontiguousarray(numeric[window]),
        target_item=np.zeros(length, dtype=np.int64),
        target_intents=target_intents,
        target_weight=np.zeros(length, dtype=np.float32),
        user_row=-1,
        next_time=_next_times(timestamps[window], spec.timed, request_time),
    )
    return EncodedRequest(example, item_idx, ignored, start)


def request_time_or_now(timestamps: np.ndarray, timed: bool, request_time: float | None) -> float:
    """The time a request is asked at: ``request_time``, or now (timed data), or the position after the last event
    (untimed data, whose timestamps are the event order).

    Raises:
        RequestError: ``request_time`` is not finite.
    """
    if request_time is None:
        return time.time() if timed else float(timestamps[-1]) + 1.0
    if not math.isfinite(request_time):
        raise RequestError(f"request_time must be a finite time in seconds, got {request_time!r}")
    return float(request_time)


def _next_times(timestamps: np.ndarray, timed: bool, request_time: float | None) -> np.ndarray:
    """(l,) when each input event's prediction is asked for: the next event's time, then the request's."""
    return np.append(timestamps[1:], request_time_or_now(timestamps, timed, request_time)).astype(np.float64)
