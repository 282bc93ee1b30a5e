"""Primary intents, intent shifts, intent/next-interaction alignment and cluster profiles (PAPER §6.7, §5).

* **Primary intent** (PAPER §4.5): the head with the largest attention weight of a user's prediction.
* **Shifts**: how the primary intent moves between a user's session starts ("over time").
* **Alignment** (PAPER §5, "alignment analysis"): does the predicted intent agree with the label of the
  interaction that actually came next? Reported per head, overall and per cluster, next to a chance reference.
* **Cluster profiles**: what the users of each K-means cluster predict, attend to and watched, so the analyst
  can name the cluster ("Rewatchers", "anime fans", ...). Descriptions are generated hints, not names.

Everything is numpy-only and returns small frozen dataclasses with ``to_json()``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from intentrec.analysis.clusters import ClusterResult, _round, nearest_to_center
from intentrec.analysis.inference import IntentReadout
from intentrec.structs import EncodedSequences
from intentrec.vocab import PAD_IDX

__all__ = [
    "NO_FUSION_NOTE",
    "AlignmentStat",
    "AlignmentTable",
    "ClusterProfile",
    "IntentSummary",
    "ItemCount",
    "LabelShare",
    "PrimaryIntents",
    "ShiftSummary",
    "alignment",
    "cluster_profiles",
    "intent_shifts",
    "primary_intents",
    "user_table",
]

NO_FUSION_NOTE = "this model has no intent attention: clusters and primary intents need IntentRec V2/V3"


def _attention(readout: IntentReadout) -> np.ndarray:
    if readout.attention is None:
        raise ValueError(NO_FUSION_NOTE)
    return np.asarray(readout.attention, dtype=np.float64)  # (T, M)


def _decode(data: EncodedSequences, head: str, j: int) -> str:
    vocab = data.label_vocabs.get(head)
    if vocab is not None and 0 <= j < len(vocab):
        return vocab.decode(int(j))
    return str(int(j))


def _top1(probs: np.ndarray) -> np.ndarray:
    """(T,) int64 best label per row, PAD column excluded (ties: the smaller index)."""
    if probs.shape[1] <= 1:
        return np.full(probs.shape[0], PAD_IDX, dtype=np.int64)
    return (np.argmax(probs[:, 1:], axis=1) + 1).astype(np.int64)  # (T,)


def _topk(probs: np.ndarray, k: int) -> np.ndarray:
    """(T, min(k, d-1)) int64 best labels per row, PAD column excluded, best first (ties: smaller index)."""
    order = np.argsort(-probs[:, 1:], axis=1, kind="stable")[:, :k]  # (T, k)
    return (order + 1).astype(np.int64)


def _target_events(readout: IntentReadout, data: EncodedSequences) -> np.ndarray:
    """(T,) int64 event row of each target ("the next interaction")."""
    t = np.asarray(readout.targets, dtype=np.int64).reshape(-1, 2)  # (T, 2)
    ev = data.offsets[t[:, 0]] + t[:, 1]  # (T,)
    if t.size and (np.any(t[:, 1] < 0) or np.any(ev >= data.offsets[t[:, 0] + 1])):
        raise ValueError("read-out targets do not fit the data: a position is beyond its user's events")
    return ev.astype(np.int64)


# ------------------------------------------------------------------------------------------------------
# primary intents
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrimaryIntents:
    """Each user's primary intent: the head with the largest attention weight (PAPER §4.5)."""

    head_names: tuple[str, ...]
    """Intent heads (M), in the model's order."""
    primary: np.ndarray
    """(T,) int64 index into :attr:`head_names` of each row's primary intent."""
    weight: np.ndarray
    """(T,) float64 the primary head's attention weight."""
    margin: np.ndarray
    """(T,) float64 the primary weight minus the runner-up's (0 with one head): how decisive the choice is."""
    counts: np.ndarray
    """(M,) int64 rows whose primary intent is each head."""
    mean_attention: np.ndarray
    """(M,) float64 mean attention weight of each head over all rows."""

    @property
    def n(self) -> int:
        """T."""
        return int(self.primary.shape[0])

    @property
    def shares(self) -> np.ndarray:
        """(M,) float64 share of rows per primary head (sums to 1 when T > 0)."""
        return self.counts / max(self.n, 1)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return {
            "n_users": self.n,
            "heads": {
                h: {
                    "count": int(self.counts[i]),
                    "share": _round(float(self.shares[i])),
                    "mean_attention": _round(float(self.mean_attention[i])),
                    "mean_weight_when_primary": _round(float(self.weight[self.primary == i].mean()))
                    if self.counts[i] else None,
                }
                for i, h in enumerate(self.head_names)
            },
            "mean_primary_weight": _round(float(self.weight.mean())) if self.n else None,
            "mean_margin": _round(float(self.margin.mean())) if self.n else None,
        }


def primary_intents(readout: IntentReadout) -> PrimaryIntents:
    """Primary intent of every row of ``readout`` and its distribution over users.

    Args:
        readout: a read-out of a model with intent attention (IntentRec V2/V3).

    Returns:
        The :class:`PrimaryIntents`.

    Raises:
        ValueError: the model has no intent attention.
    """
    att = _attention(readout)  # (T, M)
    m = len(readout.head_names)
    primary = readout.primary_head()  # (T,)
    weight = att[np.arange(att.shape[0]), primary] if att.shape[0] else np.zeros(0)  # (T,)
    if m >= 2 and att.shape[0]:
        top2 = np.sort(att, axis=1)[:, -2:]  # (T, 2)
        margin = top2[:, 1] - top2[:, 0]  # (T,)
    else:
        margin = np.zeros(att.shape[0])
    return PrimaryIntents(
        head_names=tuple(readout.head_names),
        primary=primary,
        weight=weight.astype(np.float64),
        margin=margin.astype(np.float64),
        counts=np.bincount(primary, minlength=m).astype(np.int64),
        mean_attention=att.mean(axis=0) if att.shape[0] else np.zeros(m),
    )


# ------------------------------------------------------------------------------------------------------
# shifts over sessions
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftSummary:
    """How users' primary intents change from one session start to the next."""

    head_names: tuple[str, ...]
    """Intent heads (M)."""
    users: np.ndarray
    """(U',) int64 user rows with at least one session start."""
    sequences: tuple[np.ndarray, ...]
    """Per user of :attr:`users`: (S_u,) int64 primary head at each session start, in time order."""
    transitions: np.ndarray
    """(M, M) int64 counts of consecutive session pairs, from (row) -> to (column)."""
    by_session_from_end: np.ndarray
    """(S, M) int64 primary-intent counts at the s-th latest session start (row 0 = the latest)."""

    @property
    def n_pairs(self) -> int:
        """Consecutive session pairs."""
        return int(self.transitions.sum())

    @property
    def n_changes(self) -> int:
        """Pairs whose primary intent changes."""
        return int(self.transitions.sum() - np.trace(self.transitions))

    @property
    def change_rate(self) -> float:
        """Share of consecutive session pairs whose primary intent changes (NaN without pairs)."""
        return self.n_changes / self.n_pairs if self.n_pairs else math.nan

    @property
    def distinct(self) -> np.ndarray:
        """(U',) int64 distinct primary intents per user."""
        return np.array([np.unique(s).size for s in self.sequences], dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary (no per-user sequences)."""
        distinct = self.distinct
        lengths = np.array([s.size for s in self.sequences], dtype=np.int64)
        changed = np.array([bool(np.any(np.diff(s) != 0)) for s in self.sequences if s.size >= 2])
        totals = self.by_session_from_end.sum(axis=1, keepdims=True)  # (S, 1)
        shares = self.by_session_from_end / np.maximum(totals, 1)  # (S, M)
        return {
            "n_users": int(self.users.size),
            "n_session_starts": int(lengths.sum()),
            "mean_session_starts_per_user": _round(float(lengths.mean())) if lengths.size else None,
            "n_pairs": self.n_pairs,
            "n_changes": self.n_changes,
            "change_rate": _round(self.change_rate),
            "share_of_users_who_change": _round(float(changed.mean())) if changed.size else None,
            "mean_distinct_per_user": _round(float(distinct.mean())) if distinct.size else None,
            "distinct_histogram": {str(int(v)): int(c) for v, c in zip(*np.unique(distinct, return_counts=True),
                                                                         strict=True)},
            "heads": list(self.head_names),
            "transitions": self.transitions.astype(int).tolist(),
            "by_session_from_end": [
                {"from_end": s + 1, "n": int(totals[s, 0]),
                 "shares": {h: _round(float(shares[s, i])) for i, h in enumerate(self.head_names)}}
                for s in range(self.by_session_from_end.shape[0])
            ],
        }


def intent_shifts(sessions: IntentReadout, *, max_from_end: int | None = None) -> ShiftSummary:
    """Primary intents at users' session starts and how they change over time.

    Rows are grouped by user and ordered by position (the read-out's order is not relied on).

    Args:
        sessions: read-out at session starts (e.g. from ``session_start_targets``) of a model with attention.
        max_from_end: keep at most this many rows in :attr:`ShiftSummary.by_session_from_end` (None = all).

    Returns:
        The :class:`ShiftSummary`.

    Raises:
        ValueError: the model has no intent attention.
    """
    _attention(sessions)
    m = len(sessions.head_names)
    primary = sessions.primary_head()  # (T,)
    t = np.asarray(sessions.targets, dtype=np.int64).reshape(-1, 2)  # (T, 2)
    order = np.lexsort((t[:, 1], t[:, 0]))  # user, then position
    users_sorted = t[order, 0]  # (T,)
    users, starts = np.unique(users_sorted, return_index=True)  # (U',), (U',)
    bounds = [*starts.tolist(), int(order.size)]
    sequences = tuple(primary[order[a:b]] for a, b in itertools.pairwise(bounds))
    transitions = np.zeros((m, m), dtype=np.int64)  # (M, M)
    depth = max((s.size for s in sequences), default=0)
    if max_from_end is not None:
        depth = min(depth, max(max_from_end, 0))
    by_end = np.zeros((depth, m), dtype=np.int64)  # (S, M)
    for seq in sequences:
        if seq.size >= 2:
            np.add.at(transitions, (seq[:-1], seq[1:]), 1)
        rev = seq[::-1][:depth]  # latest first
        by_end[np.arange(rev.size), rev] += 1
    return ShiftSummary(
        head_names=tuple(sessions.head_names), users=users.astype(np.int64), sequences=sequences,
        transitions=transitions, by_session_from_end=by_end,
    )


# ------------------------------------------------------------------------------------------------------
# alignment
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlignmentStat:
    """Agreement of one head's prediction with the next interaction over a group of rows."""

    n: int
    """Rows whose next interaction has a label for this head (PAD rows are skipped)."""
    aligned: int
    """Rows whose top-1 predicted label is the actual label (multi-label: one of the actual labels)."""
    aligned_top3: int
    """Rows where any of the top-3 predicted labels is (one of) the actual label(s)."""
    baseline: int
    """Rows the chance reference gets right: always predicting the most common next label over all rows."""

    @property
    def rate(self) -> float:
        """aligned / n (NaN when n = 0)."""
        return self.aligned / self.n if self.n else math.nan

    @property
    def rate_top3(self) -> float:
        """aligned_top3 / n (NaN when n = 0)."""
        return self.aligned_top3 / self.n if self.n else math.nan

    @property
    def baseline_rate(self) -> float:
        """baseline / n (NaN when n = 0)."""
        return self.baseline / self.n if self.n else math.nan

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"n": self.n, "rate": _round(self.rate), "rate_top3": _round(self.rate_top3),
                "baseline_rate": _round(self.baseline_rate)}


def _stat(valid: np.ndarray, hit: np.ndarray, hit3: np.ndarray, base: np.ndarray) -> AlignmentStat:
    return AlignmentStat(n=int(valid.sum()), aligned=int((hit & valid).sum()),
                         aligned_top3=int((hit3 & valid).sum()), baseline=int((base & valid).sum()))


@dataclass(frozen=True)
class AlignmentTable:
    """Alignment of predicted intents with the next interaction (PAPER §5), per head, overall and per cluster."""

    head_names: tuple[str, ...]
    """Intent heads (M)."""
    multi_label: dict[str, bool]
    """head -> True when the head predicts one of several labels per event."""
    overall: dict[str, AlignmentStat]
    """head -> statistic over all rows."""
    per_cluster: dict[int, dict[str, AlignmentStat]]
    """cluster -> head -> statistic (empty without clusters)."""
    row_aligned: dict[str, np.ndarray]
    """head -> (T,) int8 per row: 1 aligned (top-1), 0 not, -1 no actual label."""
    baseline_label: dict[str, str]
    """head -> the most common next label (the chance reference's constant prediction)."""
    primary: AlignmentStat | None
    """Rows whose primary-intent head is aligned (over rows where that head has a label); None without
    attention. ``aligned_top3`` and ``baseline`` refer to the same head per row."""
    primary_per_cluster: dict[int, AlignmentStat]
    """cluster -> the :attr:`primary` statistic within the cluster."""

    def mean_rate(self, cluster: int | None = None) -> float:
        """Mean top-1 alignment rate over heads with at least one labelled row (overall or in ``cluster``)."""
        stats = self.overall if cluster is None else self.per_cluster.get(cluster, {})
        rates = [s.rate for s in stats.values() if s.n]
        return float(np.mean(rates)) if rates else math.nan

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (no per-row arrays)."""
        return {
            "heads": {h: {"multi_label": self.multi_label[h], "baseline_label": self.baseline_label[h],
                          **self.overall[h].to_json()} for h in self.head_names},
            "mean_rate": _round(self.mean_rate()),
            "primary": self.primary.to_json() if self.primary is not None else None,
            "per_cluster": {
                str(c): {"heads": {h: s.to_json() for h, s in stats.items()},
                         "mean_rate": _round(self.mean_rate(c)),
                         "primary": self.primary_per_cluster[c].to_json() if c in self.primary_per_cluster
                         else None}
                for c, stats in self.per_cluster.items()
            },
        }


def alignment(readout: IntentReadout, data: EncodedSequences, clusters: np.ndarray | None = None) -> AlignmentTable:
    """Does each head's prediction agree with the label of the next interaction (the target event)?

    Single-label heads: the top-1 label (PAD column ignored) equals the actual label; rows whose actual label is
    PAD (0) are skipped. Multi-label heads: the top-1 label is one of the actual labels; rows with no actual
    label are skipped. ``aligned_top3`` counts any of the top-3 labels. The chance reference always predicts the
    most common next label over all rows (for multi-label heads: the label present in most rows).

    Args:
        readout: a model read-out (any model with intent heads).
        data: the encoded data the read-out's targets refer to.
        clusters: (T,) int cluster of each row, or None.

    Returns:
        The :class:`AlignmentTable`.

    Raises:
        ValueError: a head has no labels in ``data`` or the shapes do not match.
    """
    ev = _target_events(readout, data)  # (T,)
    n_rows = ev.size
    if clusters is not None:
        clusters = np.asarray(clusters, dtype=np.int64).reshape(-1)  # (T,)
        if clusters.size != n_rows:
            raise ValueError(f"clusters has {clusters.size} rows but the read-out has {n_rows}")
    cluster_ids = list(range(int(clusters.max()) + 1)) if clusters is not None and clusters.size else []
    overall: dict[str, AlignmentStat] = {}
    per_cluster: dict[int, dict[str, AlignmentStat]] = {c: {} for c in cluster_ids}
    row_aligned: dict[str, np.ndarray] = {}
    baseline_label: dict[str, str] = {}
    multi: dict[str, bool] = {}
    hits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for head in readout.head_names:
        if head not in data.categorical:
            raise ValueError(f"intent head {head!r} has no labels in the data (attributes: "
                             f"{sorted(data.categorical)})")
        probs = np.asarray(readout.intent_probs[head], dtype=np.float64)  # (T, d_i)
        actual = np.asarray(data.categorical[head])[ev]  # (T,) or (T, L)
        is_multi = actual.ndim == 2
        top1 = _top1(probs)  # (T,)
        top3 = _topk(probs, 3)  # (T, <=3)
        width = max(probs.shape[1], int(actual.max(initial=0)) + 1)
        if is_multi:
            present = actual != PAD_IDX  # (T, L)
            valid = present.any(axis=1)  # (T,)
            hit = ((actual == top1[:, None]) & present).any(axis=1)  # (T,)
            hit3 = ((actual[:, :, None] == top3[:, None, :]) & present[:, :, None]).any(axis=(1, 2))  # (T,)
            rows, cols = np.nonzero(present)
            pairs = np.unique(rows * width + actual[rows, cols])  # each label once per row
            counts = np.bincount(pairs % width, minlength=width)  # (d_i,)
            counts[PAD_IDX] = 0
            majority = int(np.argmax(counts))
            base = (actual == majority).any(axis=1) if counts.any() else np.zeros(n_rows, dtype=bool)
        else:
            valid = actual != PAD_IDX  # (T,)
            hit = top1 == actual  # (T,)
            hit3 = (top3 == actual[:, None]).any(axis=1)  # (T,)
            counts = np.bincount(actual[valid], minlength=width)  # (d_i,)
            majority = int(np.argmax(counts)) if counts.any() else PAD_IDX
            base = actual == majority if counts.any() else np.zeros(n_rows, dtype=bool)
        multi[head] = is_multi
        baseline_label[head] = _decode(data, head, majority) if counts.any() else ""
        hits[head] = (valid, hit, hit3, base)
        overall[head] = _stat(valid, hit, hit3, base)
        row_aligned[head] = np.where(valid, hit.astype(np.int8), np.int8(-1)).astype(np.int8)
        for c in cluster_ids:
            sel = clusters == c  # type: ignore[operator]
            per_cluster[c][head] = _stat(valid & sel, hit, hit3, base)

    primary: AlignmentStat | None = None
    primary_per_cluster: dict[int, AlignmentStat] = {}
    if readout.attention is not None and readout.head_names:
        head_of_row = readout.primary_head()  # (T,)
        stacked = [np.stack([hits[h][j] for h in readout.head_names], axis=1) for j in range(4)]  # 4 x (T, M)
        picked = [s[np.arange(n_rows), head_of_row] for s in stacked]  # 4 x (T,)
        primary = _stat(*picked)
        for c in cluster_ids:
            sel = clusters == c  # type: ignore[operator]
            primary_per_cluster[c] = _stat(picked[0] & sel, picked[1], picked[2], picked[3])
    return AlignmentTable(
        head_names=tuple(readout.head_names), multi_label=multi, overall=overall, per_cluster=per_cluster,
        row_aligned=row_aligned, baseline_label=baseline_label, primary=primary,
        primary_per_cluster=primary_per_cluster,
    )


# ------------------------------------------------------------------------------------------------------
# cluster profiles
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelShare:
    """One label's frequency in a group of events, and its lift over all users' events."""

    label: str
    count: int
    """Events carrying the label."""
    share: float
    """count / events of the group."""
    lift: float
    """share / the label's share over all users' events (NaN when it never occurs there)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"label": self.label, "count": self.count, "share": _round(self.share),
                "lift": _round(self.lift, 2)}


@dataclass(frozen=True)
class ItemCount:
    """One item's engagement count in a cluster's recent history."""

    item_idx: int
    item_id: str
    name: str
    """Display name (``raw id · title`` when titles are known)."""
    count: int
    """Events with the item."""
    users: int
    """Distinct cluster users with the item."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"item_id": self.item_id, "name": self.name, "count": self.count, "users": self.users}


@dataclass(frozen=True)
class IntentSummary:
    """What one intent head predicts for a cluster's users."""

    head: str
    label: str
    """The dominant predicted (top-1) label in the cluster."""
    share: float
    """Share of the cluster's users whose top-1 label is :attr:`label`."""
    overall_share: float
    """Share of all users whose top-1 label is :attr:`label`."""
    mean_prob: float
    """Mean predicted probability of :attr:`label` over the cluster's users."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"head": self.head, "label": self.label, "share": _round(self.share),
                "overall_share": _round(self.overall_share), "mean_prob": _round(self.mean_prob)}


@dataclass(frozen=True)
class ClusterProfile:
    """Everything the analyst needs to name one cluster."""

    cluster: int
    size: int
    share: float
    """size / all clustered users."""
    description: str
    """Auto-generated hint, e.g. ``"repeat mostly repeat (78%) · high attention on recency (0.52)"``."""
    mean_distance: float
    """Mean distance of the members to the centre (standardised space): a tightness measure."""
    intents: tuple[IntentSummary, ...]
    """One per head, in head order."""
    attention: dict[str, float]
    """head -> mean attention weight in the cluster."""
    primary_shares: dict[str, float]
    """head -> share of the cluster's users whose primary intent it is."""
    history: int
    """Recent events per user considered (the ``history`` argument of :func:`cluster_profiles`)."""
    history_events: int
    """Events in the members' recent histories (the basis of :attr:`attributes` and :attr:`top_items`)."""
    attributes: dict[str, tuple[LabelShare, ...]]
    """attribute -> most frequent labels of the recent history (by count)."""
    distinctive: dict[str, tuple[LabelShare, ...]]
    """attribute -> labels with the highest lift (share >= 5% of the cluster's events and lift > 1)."""
    top_items: tuple[ItemCount, ...]
    """Most frequent items of the recent history."""
    nearest_users: tuple[str, ...]
    """Raw ids of the users closest to the centre, closest first."""
    nearest_rows: tuple[int, ...]
    """Read-out rows of :attr:`nearest_users`."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "cluster": self.cluster,
            "size": self.size,
            "share": _round(self.share),
            "description": self.description,
            "mean_distance": _round(self.mean_distance),
            "intents": [s.to_json() for s in self.intents],
            "attention": {h: _round(v) for h, v in self.attention.items()},
            "primary_shares": {h: _round(v) for h, v in self.primary_shares.items()},
            "history": self.history,
            "history_events": self.history_events,
            "attributes": {a: [x.to_json() for x in v] for a, v in self.attributes.items()},
            "distinctive": {a: [x.to_json() for x in v] for a, v in self.distinctive.items()},
            "top_items": [x.to_json() for x in self.top_items],
            "nearest_users": list(self.nearest_users),
        }


def _history_events(readout: IntentReadout, data: EncodedSequences, history: int) -> tuple[np.ndarray, np.ndarray]:
    """Event rows ``[max(0, p - history), p)`` of every target, and the read-out row of each: (E,), (E,)."""
    t = np.asarray(readout.targets, dtype=np.int64).reshape(-1, 2)  # (T, 2)
    lengths = np.minimum(t[:, 1], max(history, 0))  # (T,)
    starts = data.offsets[t[:, 0]] + t[:, 1] - lengths  # (T,)
    row = np.repeat(np.arange(t.shape[0]), lengths)  # (E,)
    first = np.cumsum(lengths) - lengths  # (T,) where each row's events begin in the flat array
    ev = np.repeat(starts, lengths) + (np.arange(int(lengths.sum())) - np.repeat(first, lengths))  # (E,)
    return ev.astype(np.int64), row.astype(np.int64)


def _label_counts(codes: np.ndarray, group: np.ndarray, n_groups: int, width: int) -> np.ndarray:
    """(G, width) int64 events per group carrying each label (a label counts once per event)."""
    if codes.ndim == 1:
        keep = codes != PAD_IDX
        flat = group[keep] * width + codes[keep]
    else:
        ev_i, col = np.nonzero(codes != PAD_IDX)
        pairs = np.unique(ev_i * width + codes[ev_i, col])  # dedupe labels within an event
        ev_i, lab = pairs // width, pairs % width
        flat = group[ev_i] * width + lab
    return np.bincount(flat, minlength=n_groups * width).reshape(n_groups, width).astype(np.int64)


def _describe(
    data: EncodedSequences,
    pred_shares: dict[str, tuple[np.ndarray, np.ndarray]],
    attention: dict[str, float],
    overall_attention: dict[str, float],
    distinctive: dict[str, tuple[LabelShare, ...]],
) -> str:
    """A one-line hint of what sets a cluster apart: predicted intents, attention, recent history."""
    scored: list[tuple[float, str]] = []
    typical: list[str] = []
    for head, (in_c, overall) in pred_shares.items():  # (d_i,), (d_i,) top-1 label shares
        j = int(np.argmax(in_c))
        label = _decode(data, head, j)
        if in_c[j] >= 0.5 and (in_c[j] - overall[j] >= 0.1 or int(np.argmax(overall)) != j):
            scored.append((in_c[j] - overall[j], f"{head}: mostly {label} ({in_c[j]:.0%} vs {overall[j]:.0%})"))
            continue
        lift = np.where(overall > 0, in_c / np.maximum(overall, 1e-12), 0.0)  # (d_i,)
        cand = np.flatnonzero((in_c >= 0.2) & (lift >= 1.5))
        if cand.size:
            b = int(cand[np.argmax(in_c[cand] - overall[cand])])
            scored.append((in_c[b] - overall[b], f"{head}: more {_decode(data, head, b)} "
                                                 f"({in_c[b]:.0%} vs {overall[b]:.0%})"))
        else:
            typical.append(f"{head}: {label}")
    parts = [text for _, text in sorted(scored, key=lambda st: -st[0])[:2]]
    if not parts and typical:
        parts.append("predicted intents as most users (" + ", ".join(typical) + ")")
    if attention:
        dev = {h: attention[h] - overall_attention.get(h, attention[h]) for h in attention}
        up = max(dev, key=lambda h: dev[h])
        if dev[up] >= 0.02:
            parts.append(f"more attention on {up} ({attention[up]:.2f} vs {overall_attention[up]:.2f})")
        else:
            lead = max(attention, key=lambda h: attention[h])
            parts.append(f"attention led by {lead} ({attention[lead]:.2f})")
    lifted = sorted(((a, x) for a, xs in distinctive.items() for x in xs if x.lift >= 1.5),
                    key=lambda ax: -ax[1].lift)[:2]
    if lifted:
        parts.append("history: " + ", ".join(f"{a} {x.label} ×{x.lift:.1f}" for a, x in lifted))
    return " · ".join(parts) or "no distinctive intent"


def cluster_profiles(
    readout: IntentReadout,
    data: EncodedSequences,
    clusters: ClusterResult,
    *,
    top: int = 5,
    history: int = 20,
    nearest: int = 10,
) -> list[ClusterProfile]:
    """Profile each cluster: predicted intents, attention, recent history labels and items, nearest users.

    The recent history of a row (user, p) is its events ``[max(0, p - history), p)``, the ones the model read
    before the prediction (at most ``history``). Label shares count events carrying a label; the lift compares
    with the same events of all clustered users.

    Args:
        readout: the read-out that was clustered (rows aligned with ``clusters.labels``).
        data: the encoded data.
        clusters: the clustering.
        top: labels and items listed per attribute / cluster.
        history: recent events per user to profile.
        nearest: users listed nearest each centre.

    Returns:
        One :class:`ClusterProfile` per cluster, in cluster order.

    Raises:
        ValueError: the clustering and the read-out have different row counts.
    """
    n_rows = readout.n
    if clusters.n != n_rows:
        raise ValueError(f"the clustering has {clusters.n} rows but the read-out has {n_rows}")
    k = clusters.k
    labels = clusters.labels  # (T,)
    sizes = clusters.sizes()  # (K,)
    heads = readout.head_names
    att = np.asarray(readout.attention, dtype=np.float64) if readout.attention is not None else None  # (T, M)
    primary = readout.primary_head() if att is not None else None  # (T,)

    # predicted intents: (K, d_i) counts of top-1 labels per cluster
    pred_counts: dict[str, np.ndarray] = {}
    head_probs = {h: np.asarray(readout.intent_probs[h], dtype=np.float64) for h in heads}  # h -> (T, d_i)
    for h in heads:
        probs = head_probs[h]  # (T, d_i)
        top1 = _top1(probs)  # (T,)
        width = probs.shape[1]
        pred_counts[h] = np.bincount(labels * width + top1, minlength=k * width).reshape(k, width)  # (K, d_i)

    ev, ev_row = _history_events(readout, data, history)  # (E,), (E,)
    ev_cluster = labels[ev_row]  # (E,)
    events_per_cluster = np.bincount(ev_cluster, minlength=k).astype(np.int64)  # (K,)
    n_events = int(ev.size)
    attr_counts: dict[str, np.ndarray] = {}
    for spec in data.spec.attributes:
        codes = np.asarray(data.categorical[spec.name])[ev]  # (E,) or (E, L)
        width = max(len(data.label_vocabs[spec.name]) if spec.name in data.label_vocabs else 0,
                    int(codes.max(initial=0)) + 1)
        attr_counts[spec.name] = _label_counts(codes, ev_cluster, k, width)  # (K, width)
    items = np.asarray(data.item_idx)[ev]  # (E,)
    near = nearest_to_center(clusters, nearest)
    overall_attention = {h: float(att[:, i].mean()) for i, h in enumerate(heads)} if att is not None and n_rows \
        else {}

    profiles: list[ClusterProfile] = []
    for c in range(k):
        members = labels == c  # (T,)
        size = int(sizes[c])
        intents = []
        for h in heads:
            counts = pred_counts[h][c]  # (d_i,)
            j = int(np.argmax(counts))
            intents.append(IntentSummary(
                head=h, label=_decode(data, h, j), share=float(counts[j]) / max(size, 1),
                overall_share=float(pred_counts[h][:, j].sum()) / max(n_rows, 1),
                mean_prob=float(head_probs[h][members, j].mean()) if size else math.nan,
            ))
        attention = {h: float(att[members, i].mean()) for i, h in enumerate(heads)} if att is not None and size \
            else {}
        primary_shares = ({h: float(np.mean(primary[members] == i)) for i, h in enumerate(heads)}
                          if primary is not None and size else {})
        n_ev = int(events_per_cluster[c])
        attributes: dict[str, tuple[LabelShare, ...]] = {}
        distinctive: dict[str, tuple[LabelShare, ...]] = {}
        for name, counts_all in attr_counts.items():
            in_c = counts_all[c]  # (width,)
            overall_share = counts_all.sum(axis=0) / max(n_events, 1)  # (width,)
            nz = np.flatnonzero(in_c)
            shares = {int(j): LabelShare(
                label=_decode(data, name, int(j)), count=int(in_c[j]), share=float(in_c[j]) / max(n_ev, 1),
                lift=float(in_c[j]) / max(n_ev, 1) / float(overall_share[j]) if overall_share[j] > 0 else math.nan,
            ) for j in nz}
            by_count = nz[np.lexsort((nz, -in_c[nz]))][:top]
            attributes[name] = tuple(shares[int(j)] for j in by_count)
            cand = list(shares.values())
            cand = [x for x in cand if x.share >= 0.05 and x.count >= 2 and x.lift > 1.0]
            distinctive[name] = tuple(sorted(cand, key=lambda x: (-x.lift, -x.count, x.label))[:top])
        sel = (ev_cluster == c) & (items >= 2)  # PAD/UNK items have no name
        it, it_counts = np.unique(items[sel], return_counts=True)
        pairs = np.unique(ev_row[sel] * (data.spec.n_items + 1) + items[sel])
        it_users = np.bincount(pairs % (data.spec.n_items + 1), minlength=data.spec.n_items + 1)
        order = np.lexsort((it, -it_counts))[:top]
        top_items = tuple(
            ItemCount(item_idx=int(it[o]), item_id=data.item_vocab.decode(int(it[o])),
                      name=data.item_name(int(it[o])), count=int(it_counts[o]), users=int(it_users[it[o]]))
            for o in order
        )
        rows = near[c]
        profiles.append(ClusterProfile(
            cluster=c, size=size, share=size / max(n_rows, 1),
            description=_describe(
                data, {h: (pred_counts[h][c] / max(size, 1), pred_counts[h].sum(axis=0) / max(n_rows, 1))
                       for h in heads}, attention, overall_attention, distinctive),
            mean_distance=float(clusters.distance_to_center[members].mean()) if size else math.nan,
            intents=tuple(intents), attention=attention, primary_shares=primary_shares, history=history,
            history_events=n_ev,
            attributes=attributes, distinctive=distinctive, top_items=top_items,
            nearest_users=tuple(data.user_ids[int(readout.targets[r, 0])] for r in rows),
            nearest_rows=tuple(int(r) for r in rows),
        ))
    return profiles


# ------------------------------------------------------------------------------------------------------
# per-user table
# ------------------------------------------------------------------------------------------------------


def user_table(
    readout: IntentReadout,
    data: EncodedSequences,
    clusters: ClusterResult | None,
    primary: PrimaryIntents | None,
    *,
    embedding_2d: np.ndarray | None = None,
    alignment: AlignmentTable | None = None,
) -> dict[str, np.ndarray | list[Any]]:
    """Column-oriented per-user table (one row per read-out row), ready for a Parquet writer.

    Columns (``<head>`` for each intent head; optional groups only when their input is given):

    * ``user_id`` (str), ``user_row``, ``position``, ``input_events``, ``window_events`` (int64);
    * ``cluster`` (int64), ``distance_to_center`` (float32) — with ``clusters``;
    * ``primary_intent`` (str), ``primary_weight`` (float32) — with ``primary``;
    * ``attention_<head>`` (float32) — models with attention;
    * ``top_<head>`` (str), ``top_<head>_prob`` (float32): the top-1 predicted label and its probability;
    * ``actual_<head>`` (str): the next interaction's label(s), ``|``-joined, ``""`` when none;
    * ``aligned_<head>`` (int8: 1, 0, -1 = no label) — with ``alignment``;
    * ``intent_embedding`` (T, d_proj) float32 — models with attention (one 2-D column, a list column in Parquet);
    * ``tsne_x``, ``tsne_y`` (float32) — with ``embedding_2d``;
    * ``top_items`` (list of raw item ids, best first) — when the read-out kept top items.

    Raises:
        ValueError: an input's row count differs from the read-out's.
    """
    n = readout.n
    t = np.asarray(readout.targets, dtype=np.int64).reshape(-1, 2)  # (T, 2)

    def check(name: str, rows: int) -> None:
        if rows != n:
            raise ValueError(f"{name} has {rows} rows but the read-out has {n}")

    out: dict[str, np.ndarray | list[Any]] = {
        "user_id": [data.user_ids[int(u)] for u in t[:, 0]],
        "user_row": t[:, 0].copy(),
        "position": t[:, 1].copy(),
        "input_events": np.asarray(readout.input_events, dtype=np.int64),
        "window_events": np.asarray(readout.window_events, dtype=np.int64),
    }
    if clusters is not None:
        check("clusters", clusters.n)
        out["cluster"] = clusters.labels.astype(np.int64)
        out["distance_to_center"] = clusters.distance_to_center.astype(np.float32)
    if primary is not None:
        check("primary", primary.n)
        out["primary_intent"] = [primary.head_names[int(i)] for i in primary.primary]
        out["primary_weight"] = primary.weight.astype(np.float32)
    if readout.attention is not None:
        for i, h in enumerate(readout.head_names):
            out[f"attention_{h}"] = np.asarray(readout.attention[:, i], dtype=np.float32)
    ev = _target_events(readout, data)  # (T,)
    for h in readout.head_names:
        probs = np.asarray(readout.intent_probs[h])  # (T, d_i)
        top1 = _top1(probs)  # (T,)
        out[f"top_{h}"] = [_decode(data, h, int(j)) for j in top1]
        out[f"top_{h}_prob"] = probs[np.arange(n), top1].astype(np.float32) if n else np.zeros(0, np.float32)
        if h in data.categorical:
            actual = np.asarray(data.categorical[h])[ev]  # (T,) or (T, L)
            rows = actual if actual.ndim == 2 else actual[:, None]  # (T, L')
            out[f"actual_{h}"] = ["|".join(_decode(data, h, int(j)) for j in r if j != PAD_IDX) for r in rows]
        if alignment is not None and h in alignment.row_aligned:
            check("alignment", alignment.row_aligned[h].shape[0])
            out[f"aligned_{h}"] = alignment.row_aligned[h].astype(np.int8)
    if readout.intent_embedding is not None:
        out["intent_embedding"] = np.asarray(readout.intent_embedding, dtype=np.float32)  # (T, d_proj)
    if embedding_2d is not None:
        xy = np.asarray(embedding_2d, dtype=np.float32)  # (T, 2)
        check("embedding_2d", xy.shape[0])
        out["tsne_x"], out["tsne_y"] = xy[:, 0].copy(), xy[:, 1].copy()
    if readout.top_items.ndim == 2 and readout.top_items.shape[1] > 0:
        out["top_items"] = [[data.item_vocab.decode(int(i)) for i in r if i >= 2] for r in readout.top_items]
    return out
