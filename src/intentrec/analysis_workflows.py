"""Composition root of the analytics (PAPER §6.7): ``intentrec analyze``, ``intentrec explain`` and
``intentrec layout`` wire a run or a bundle to :mod:`intentrec.analysis`. Kept apart from :mod:`intentrec.workflows`
(training, evaluation, serving) so each spine stays one screen; it reuses that module's loaders."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from intentrec.analysis.explain import Explanation, explain_readout
from intentrec.analysis.inference import IntentReadout, read_out
from intentrec.analysis.layout import ItemLabels
from intentrec.config import ExperimentConfig
from intentrec.errors import ConfigError
from intentrec.structs import DataSpec, EncodedSequences, LiveFeatures
from intentrec.vocab import ItemVocab, LabelVocab
from intentrec.workflows import (
    RunArtifacts,
    _eval_loader,
    _exclude_seen,
    _find_user,
    _history_for_items,
    _with_appended_slot,
    load_run,
)

__all__ = ["ModelSource", "explain", "load_source"]


@dataclass
class ModelSource:
    """A trained model with what the analytics need, loaded from a run directory or a serving bundle."""

    path: Path
    cfg: ExperimentConfig
    spec: DataSpec
    model: nn.Module
    item_vocab: ItemVocab
    label_vocabs: dict[str, LabelVocab]
    live: LiveFeatures
    item_name: Callable[[int], str]
    run: RunArtifacts | None
    """Set for a run directory (its prepared data is available); None for a bundle."""
    bundle: Any = None
    """The :class:`~intentrec.serve.bundle.Bundle` when loaded from one."""

    @property
    def data(self) -> EncodedSequences | None:
        """The prepared data of a run (None for a bundle)."""
        return None if self.run is None else self.run.data

    @property
    def horizon(self) -> str:
        """The short-term window's definition, for display."""
        if not self.spec.timed:
            return f"last {self.cfg.model.short_window_events} events"
        return str(self.cfg.model.horizon)

    @property
    def window_used(self) -> bool:
        """Whether the model has a short-term encoder (IntentRec V3)."""
        return self.cfg.model.architecture == "intentrec" and self.cfg.model.variant == "V3"


def load_source(path: str | Path, *, progress: bool = False) -> ModelSource:
    """Load a run directory (``intentrec train``) or a bundle (``intentrec export``) for the analytics.

    Raises:
        CheckpointError: neither a finished run nor a valid bundle.
    """
    from intentrec.data.live import live_features
    from intentrec.serve.bundle import is_bundle, load_bundle

    p = Path(path)
    if is_bundle(p):
        b = load_bundle(p)
        return ModelSource(p, b.cfg, b.spec, b.model, b.item_vocab, b.label_vocabs, b.live, b.item_name, None, b)
    art = load_run(p, progress=progress)
    live = live_features(art.cfg.data, art.data, art.stats.get("numeric_min_max", {}))
    return ModelSource(p, art.cfg, art.data.spec, art.model, art.data.item_vocab, art.data.label_vocabs, live,
                       art.data.item_name, art)


def _parse_time(value: str | float | None) -> float:
    """Seconds since the epoch from a number or an ISO 8601 string (``now`` when None)."""
    if value is None:
        return time.time()
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at {value!r}: give seconds since the epoch or an ISO 8601 time "
                          "(e.g. 2024-05-01T20:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass
class _Request:
    readout: IntentReadout
    history: np.ndarray
    """(h,) int64 item indices, oldest first."""
    request_time: float
    ignored: tuple[str, ...]
    user_id: str | None


def _run_request(src: ModelSource, user_id: str | None, items: list[str] | None, k: int,
                 exclude_seen: bool) -> _Request:
    """Read the model out after a run user's whole history, or after an ad-hoc list of items."""
    assert src.run is not None
    art = src.run
    if user_id is not None:
        u = _find_user(art.data, user_id)
        n = int(art.data.offsets[u + 1] - art.data.offsets[u])
        sub, ignored = _with_appended_slot(art.data, u), ()
    else:
        sub, _, n, ignored_list = _history_for_items(art, list(items or []))
        ignored = tuple(ignored_list)
    targets = np.array([[0, n]], dtype=np.int64)
    readout = read_out(src.model, _eval_loader(art.cfg, sub, targets), sub, targets, top_k=k,
                       exclude_seen=exclude_seen)
    return _Request(readout, sub.item_idx[:n].copy(), float(sub.timestamps[n - 1]), ignored, user_id)


def _bundle_request(src: ModelSource, user_id: str | None, items: list[str] | None, events: Path | None,
                    columns: dict[str, str] | None, at: str | float | None, k: int, exclude_seen: bool) -> _Request:
    """Read a bundle's model out for a user of an events file, or for items placed one minute apart up to ``at``."""
    from intentrec.features.collate import CollateSettings, collate
    from intentrec.features.live import LiveEvent, encode_live_events

    if user_id is not None:
        if events is None:
            raise ConfigError("a bundle holds no user histories: with --user, give the user's events with "
                              "--events FILE (or explain a run directory, or use --items)")
        live_events = _user_events(src, events, columns, user_id)
    else:
        end = _parse_time(at)
        ids = list(items or [])
        live_events = [LiveEvent(item, end - 60.0 * (len(ids) - 1 - i), {}) for i, item in enumerate(ids)]
    b = src.bundle
    enc = encode_live_events(live_events, src.live, src.spec, src.item_vocab, src.label_vocabs, src.cfg.model.max_len)
    if enc.example is None:
        raise ConfigError(f"none of the history's items is known to the model (e.g. {src.item_vocab.ids[:5]})")
    batch = collate([enc.example], CollateSettings.build(src.cfg.model, src.spec, b.label_widths))
    history = enc.item_idx  # (h,) every known event, oldest first
    extra = len(set(history.tolist())) if exclude_seen else 0
    readout = read_out(src.model, [batch], None, np.array([[-1, len(enc.example.item_idx)]]), top_k=k + extra)
    if exclude_seen:  # drop the history's items from the ranking, keep k
        keep = ~np.isin(readout.top_items[0], history)
        idx = np.flatnonzero(keep)[:k]
        readout = _with_top(readout, readout.top_items[:, idx], readout.top_scores[:, idx])
    ts = enc.example.timestamps
    return _Request(readout, history, float(ts[-1]), tuple(enc.ignored_items), user_id)


def _with_top(r: IntentReadout, items: np.ndarray, scores: np.ndarray) -> IntentReadout:
    from dataclasses import replace

    return replace(r, top_items=items, top_scores=scores)


def _user_events(src: ModelSource, path: Path, columns: dict[str, str] | None, user_id: str) -> list[Any]:
    from intentrec.data.stream import iter_histories
    from intentrec.features.live import LiveEvent

    fields = [r.field for r in src.live.rules if r.field] + [n.name for n in src.live.numeric if n.source == "event"]
    for histories, _ in iter_histories(path, columns=columns, attributes=fields, require_time=src.spec.timed):
        for h in histories:
            if h.key == str(user_id):
                return [LiveEvent(item, None if not math.isfinite(t) else float(t),
                                  {a: v[i] for a, v in h.attributes.items()})
                        for i, (item, t) in enumerate(zip(h.item_ids, h.timestamps.tolist(), strict=True))]
    raise ConfigError(f"user {user_id!r} has no events in {path} (check --column user_id=... if your user column "
                      "has another name)")


def explain(
    source: str | Path | ModelSource,
    *,
    user_id: str | None = None,
    items: list[str] | None = None,
    events: str | Path | None = None,
    columns: dict[str, str] | None = None,
    at: str | float | None = None,
    k: int = 10,
    exclude_seen: bool | None = None,
    intent_top: int = 3,
) -> Explanation:
    """Explain one prediction (``intentrec explain``): intents with probabilities, each head's attention weight, the
    short-term window, and which predicted intent labels each of the top-``k`` items matches.

    Args:
        source: a run directory, a bundle directory, or a loaded :class:`ModelSource`.
        user_id: a user of the run's data (or of ``events`` for a bundle).
        items: an ad-hoc history of item ids, oldest first (instead of ``user_id``).
        events: for a bundle with ``user_id``: the events file holding that user's history.
        columns: canonical -> your column names of ``events``.
        at: for a bundle with ``items``: the request time (seconds or ISO 8601; default now). A run places the
            items one minute apart ending at the data's last timestamp.
        k: items to explain.
        exclude_seen: drop history items from the ranking (default: the model's setting).
        intent_top: labels shown per intent.

    Raises:
        ConfigError: neither or both of ``user_id`` and ``items``; an unknown user; no known item.
    """
    if (user_id is None) == (items is None):
        raise ConfigError("give exactly one of --user or --items")
    src = source if isinstance(source, ModelSource) else load_source(source)
    skip_seen = _exclude_seen(src.cfg, src.spec) if exclude_seen is None else exclude_seen
    if src.run is not None:
        req = _run_request(src, user_id, items, k, skip_seen)
    else:
        req = _bundle_request(src, user_id, items, Path(events) if events else None, columns, at, k, skip_seen)
    return explain_readout(
        req.readout, 0, model=src.cfg.model.label, label_vocabs=src.label_vocabs,
        item_labels=ItemLabels.from_live(src.live, src.spec, src.label_vocabs), item_id=src.item_vocab.decode,
        item_name=src.item_name, history=req.history, request_time=req.request_time, horizon=src.horizon,
        window_used=src.window_used, k=k, intent_top=intent_top, user_id=req.user_id, ignored_items=req.ignored,
    )
