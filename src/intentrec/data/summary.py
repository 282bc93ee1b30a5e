"""``describe``: dataset statistics for ``intentrec data describe`` (a plain, JSON-serialisable dict)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from intentrec.config import DataConfig
from intentrec.data.pipeline import prepare_with_report
from intentrec.data.split import training_mask
from intentrec.structs import EncodedSequences

__all__ = ["describe", "describe_prepared"]

_TOP_LABELS = 20


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 3),
        "max": int(values.max()),
    }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds")


def _label_distribution(data: EncodedSequences, name: str) -> dict[str, Any]:
    values = data.categorical[name]  # (N,) or (N, L)
    vocab = data.label_vocabs[name]
    counts = np.bincount(values.reshape(-1), minlength=len(vocab))  # (d,)
    counts[0] = 0
    labelled = int((values.reshape(len(values), -1) > 0).any(axis=1).sum()) if values.size else 0
    total = int(counts.sum())
    order = np.argsort(-counts, kind="stable")
    top = [
        {"label": vocab.decode(int(j)), "count": int(counts[j]), "share": round(float(counts[j]) / total, 4)}
        for j in order[:_TOP_LABELS] if counts[j] > 0
    ]
    return {"n_classes": len(vocab), "events_with_label": labelled, "label_occurrences": total, "top": top}


def describe_prepared(data: EncodedSequences, report: dict[str, int], stats: dict[str, Any]) -> dict[str, Any]:
    """Statistics of prepared data (see :func:`describe`)."""
    lengths = np.diff(data.offsets)  # (U,)
    sessions_per_user = np.zeros(len(lengths), dtype=np.int64)  # (U,)
    nonempty = lengths > 0
    last = data.offsets[1:][nonempty] - 1
    sessions_per_user[nonempty] = data.session[last] + 1
    train = training_mask(data.offsets, data.split.train_len)  # (N,)
    time_span: dict[str, Any] | None = None
    if data.spec.timed and data.timestamps.size:
        t0, t1 = float(data.timestamps.min()), float(data.timestamps.max())
        time_span = {"start": _iso(t0), "end": _iso(t1), "days": round((t1 - t0) / 86400.0, 2)}
    intents: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    for attr in data.spec.attributes:
        entry = {"multi_valued": attr.multi_valued, "is_input": attr.is_input, **_label_distribution(data, attr.name)}
        (intents if attr.is_intent else inputs)[attr.name] = entry
    return {
        "dataset": data.spec.dataset,
        "timed": data.spec.timed,
        "fingerprint": data.fingerprint,
        "users": data.n_users,
        "items": int(stats.get("items_after_clean", data.item_vocab.n_known)),
        "item_vocabulary": data.item_vocab.n_known,
        "interactions": int(data.offsets[-1]),
        "sessions": int(sessions_per_user.sum()),
        "events_per_user": _summary(lengths),
        "sessions_per_user": _summary(sessions_per_user),
        "time_span": time_span,
        "exclude_seen_default": data.spec.exclude_seen_default,
        "duration_median": data.duration_median,
        "split": {
            "protocol": data.split.protocol,
            "description": data.split.description,
            "train_events": int(train.sum()),
            "train_users": int((data.split.train_len > 0).sum()),
            "val_targets": len(data.split.val_targets),
            "test_targets": len(data.split.test_targets),
            "excluded": dict(data.split.excluded),
            "cutoffs": {k: _iso(v) for k, v in stats.get("cutoffs", {}).items()},
        },
        "intents": intents,
        "input_attributes": inputs,
        "numeric": {"columns": list(data.spec.numeric), "train_min_max": stats.get("numeric_min_max", {})},
        "report": {k: int(v) for k, v in sorted(report.items())},
    }


def describe(cfg: DataConfig) -> dict[str, Any]:
    """Statistics of a dataset as prepared by ``cfg`` (uses the cache when present).

    Args:
        cfg: the ``data`` section.

    Returns:
        A JSON-serialisable dict: users, items, interactions, sessions, events and sessions per user
        (min/median/mean/max), time span (timed data), split summary (training events, validation/test targets,
        exclusions), per intent the label distribution (top labels with counts and shares), and ``report``: every
        repair and removal made while preparing (duplicates dropped, users dropped by min events, k-core removals).

    Raises:
        ConfigError, SchemaError, DataError: as :func:`intentrec.data.prepare`.
    """
    prepared = prepare_with_report(cfg)
    return describe_prepared(prepared.data, prepared.report, prepared.stats)
