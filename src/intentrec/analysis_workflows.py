"""Composition root of the analytics (PAPER §6.7): ``intentrec analyze``, ``intentrec explain`` and
``intentrec layout`` wire a run or a bundle to :mod:`intentrec.analysis`. Kept apart from :mod:`intentrec.workflows`
(training, evaluation, serving) so each spine stays one screen; it reuses that module's loaders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from intentrec.analysis.explain import Explanation, explain_readout
from intentrec.analysis.inference import IntentReadout, last_event_targets, read_out
from intentrec.analysis.layout import ItemLabels, build_page, evaluate_layouts, fixed_row_order, label_shares
from intentrec.config import ExperimentConfig
from intentrec.errors import ConfigError
from intentrec.structs import DataSpec, EncodedSequences, LiveFeatures
from intentrec.vocab import ItemVocab, LabelVocab
from intentrec.workflows import (
    RunArtifacts,
    _eval_loader,
    _exclude_seen,
    _find_user,
    _history_events,
    _label_widths,
    _with_appended_slot,
    load_run,
)

__all__ = ["LAYOUT_TOP_K", "AnalyzeSummary", "ModelSource", "analyze", "evaluate_layout", "explain", "layout", "load_source"]


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
    label_widths: dict[str, int]
    """L of each multi-valued attribute."""
    run: RunArtifacts | None
    """Set for a run directory (its prepared data is available); None for a bundle."""

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
        return ModelSource(p, b.cfg, b.spec, b.model, b.item_vocab, b.label_vocabs, b.live, b.item_name,
                           b.label_widths, None)
    art = load_run(p, progress=progress)
    live = live_features(art.cfg.data, art.data, art.stats.get("numeric_min_max", {}))
    return ModelSource(p, art.cfg, art.data.spec, art.model, art.data.item_vocab, art.data.label_vocabs, live,
                       art.data.item_name, _label_widths(art.data), art)


def _parse_time(value: str | float | None, flag: str = "--at") -> float:
    """Seconds since the epoch from a number or an ISO 8601 string (``now`` when None); ``flag`` names the option
    in the error message."""
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
        raise ConfigError(f"{flag} {value!r}: give seconds since the epoch or an ISO 8601 time "
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


def _run_user_request(src: ModelSource, user_id: str, k: int, exclude_seen: bool) -> _Request:
    """Read the model out after a run user's whole history (the prepared events, as in training)."""
    assert src.run is not None
    art = src.run
    u = _find_user(art.data, user_id)
    n = int(art.data.offsets[u + 1] - art.data.offsets[u])
    sub = _with_appended_slot(art.data, u)
    targets = np.array([[0, n]], dtype=np.int64)
    readout = read_out(src.model, _eval_loader(art.cfg, sub, targets), sub, targets, top_k=k,
                       exclude_seen=exclude_seen)
    return _Request(readout, sub.item_idx[:n].copy(), float(sub.timestamps[n - 1]), (), user_id)


def _request(src: ModelSource, user_id: str | None, items: list[str] | None, events: Path | None,
             columns: dict[str, str] | None, at: str | float | None, k: int, exclude_seen: bool) -> _Request:
    """Read the model out for one history: a run's user (prepared data), a user of an events file, or items placed
    one minute apart up to ``at`` (default: a run's last timestamp, or now for a bundle), encoded from raw events
    exactly as the serving path does."""
    from intentrec.features.collate import CollateSettings, collate
    from intentrec.features.live import encode_live_events, item_history

    if user_id is not None and events is None:
        if src.run is not None:
            return _run_user_request(src, user_id, k, exclude_seen)
        raise ConfigError("a bundle holds no user histories: with --user, give the user's events with "
                          "--events FILE (or use a run directory, or --items)")
    if user_id is not None:
        assert events is not None
        live_events = _user_events(src, events, columns, user_id)
    else:
        end = float(src.run.data.timestamps.max()) if at is None and src.run is not None else _parse_time(at)
        live_events = item_history(list(items or []), end)
    enc = encode_live_events(live_events, src.live, src.spec, src.item_vocab, src.label_vocabs, src.cfg.model.max_len)
    if enc.example is None:
        raise ConfigError(f"none of the history's items is known to the model (e.g. {src.item_vocab.ids[:5]})")
    batch = collate([enc.example], CollateSettings.build(src.cfg.model, src.spec, src.label_widths))
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

    fields = [r.field for r in src.live.rules if r.field] + [n.name for n in src.live.numeric if n.source == "event"]
    for histories, _ in iter_histories(path, columns=columns, attributes=fields, require_time=src.spec.timed):
        for h in histories:
            if h.key == str(user_id):
                return _history_events(h)
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
    req = _request(src, user_id, items, Path(events) if events else None, columns, at, k, skip_seen)
    return explain_readout(
        req.readout, 0, model=src.cfg.model.label, label_vocabs=src.label_vocabs,
        item_labels=ItemLabels.from_live(src.live, src.spec, src.label_vocabs), item_id=src.item_vocab.decode,
        item_name=src.item_name, history=req.history, request_time=req.request_time, horizon=src.horizon,
        window_used=src.window_used, k=k, intent_top=intent_top, user_id=req.user_id, ignored_items=req.ignored,
    )


# ----------------------------------------------------------------------------------------------------------
# read-outs over many targets
# ----------------------------------------------------------------------------------------------------------


def _read_many(src: ModelSource, data: EncodedSequences, targets: np.ndarray, *, top_k: int = 0,
               exclude_seen: bool = False, what: str = "targets", progress: bool = False) -> IntentReadout:
    """Read the model out at ``targets`` in order of input length (little padding), rows in ``targets`` order."""
    order = np.argsort(np.minimum(targets[:, 1], src.cfg.model.max_len), kind="stable")  # (T,)
    sorted_targets = targets[order]
    with _progress(progress, what, len(targets)) as advance:
        readout = read_out(src.model, _eval_loader(src.cfg, data, sorted_targets), data, sorted_targets,
                           top_k=top_k, exclude_seen=exclude_seen, progress=advance)
    return readout.take(np.argsort(order))


class _progress:
    """A rich progress bar (or nothing) whose ``__enter__`` returns a ``done -> None`` callback."""

    def __init__(self, enabled: bool, what: str, total: int) -> None:
        self.enabled, self.what, self.total = enabled, what, total
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn(self.what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self.bar.__enter__()
        task = self.bar.add_task(self.what, total=self.total)
        return lambda done: self.bar.update(task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _targets(data: EncodedSequences, which: str, max_users: int | None, seed: int) -> np.ndarray:
    """(T, 2) analysis targets: each user's last event (``last``), or the ``test`` / ``validation`` targets."""
    if which == "last":
        targets = last_event_targets(data)
    elif which in {"test", "validation"}:
        targets = data.split.test_targets if which == "test" else data.split.val_targets
        # one row per user: the user's latest target of the split
        last = {}
        for i, (u, _) in enumerate(targets.tolist()):
            last[u] = i
        targets = targets[np.array(sorted(last.values()), dtype=np.int64)] if last else targets[:0]
    else:
        raise ConfigError(f"unknown targets {which!r}: use last, test or validation")
    if not len(targets):
        raise ConfigError(f"no {which} targets in this run's data (users need at least 2 events)")
    if max_users is not None and len(targets) > max_users:
        rng = np.random.default_rng(seed)
        targets = targets[np.sort(rng.choice(len(targets), size=max_users, replace=False))]
    return targets


def _need_run(src: ModelSource, command: str) -> RunArtifacts:
    if src.run is None:
        raise ConfigError(f"{command} needs a run directory (`intentrec train --out RUN`): {src.path} is a bundle, "
                          "which holds no user histories or training label counts")
    return src.run


# ----------------------------------------------------------------------------------------------------------
# analyze
# ----------------------------------------------------------------------------------------------------------


@dataclass
class AnalyzeSummary:
    """What :func:`analyze` wrote and found."""

    out: Path
    files: dict[str, Path]
    """report_md, report_html, analysis_json, users_parquet, sessions_parquet (when written), plots."""
    n_users: int
    k: int | None
    """Clusters (None for models without intent attention)."""
    best_k: int | None
    """K with the best silhouette score in the scanned range."""
    primary_shares: dict[str, float]
    """Share of users per primary intent (empty without attention)."""
    alignment: dict[str, float]
    """Per head: top-1 alignment rate of the predicted intent with the next interaction."""
    seconds: float


def analyze(
    run_dir: str | Path,
    out: str | Path,
    *,
    k: int = 10,
    k_min: int = 2,
    k_max: int = 15,
    n_init: int = 10,
    seed: int = 0,
    map_method: str = "tsne",
    perplexity: float = 30.0,
    targets: str = "last",
    max_users: int | None = None,
    max_sessions: int = 20,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> AnalyzeSummary:
    """Intent analytics of a trained run (``intentrec analyze``, PAPER §6.7).

    Reads the model out at one target per user (``targets="last"``: predicting each user's last event from the
    events before it; ``test`` / ``validation``: each user's latest target of that split), then: K-means++ on the
    standardised intent embeddings Z (silhouette over ``k_min..k_max``), a 2-D map, cluster profiles, primary
    intents (largest attention weight) and how they shift between sessions (the prediction at each of the latest
    ``max_sessions`` session starts), and the alignment of predicted intents with the next interaction.

    Writes ``report.html`` (self-contained), ``report.md`` with ``plots/*.png``, ``analysis.json``,
    ``users.parquet`` (per user: cluster, primary intent, attention, top labels, Z, map coordinates) and
    ``sessions.parquet`` (primary intent at each session start).

    Raises:
        ConfigError: a bundle instead of a run, bad arguments, or too few users for ``k``.
        CheckpointError: the run cannot be loaded.
    """
    from intentrec.analysis import (
        alignment,
        analysis_summary,
        cluster_embeddings,
        cluster_profiles,
        embed_2d,
        intent_shifts,
        primary_intents,
        session_start_targets,
        user_table,
        write_analysis_report,
    )
    from intentrec.data.io import write_columns
    from intentrec.train.checkpoint import atomic_write_text

    t0 = time.perf_counter()
    if map_method not in {"tsne", "pca"}:
        raise ConfigError(f"--map {map_method!r}: use tsne or pca")
    if not 2 <= k_min <= k_max:
        raise ConfigError(f"--k-min {k_min} / --k-max {k_max}: need 2 <= k-min <= k-max")
    src = load_source(run_dir, progress=False)
    art = _need_run(src, "intentrec analyze")
    data = art.data
    tgt = _targets(data, targets, max_users, seed)
    log(f"analyze {src.cfg.model.label} on {data.spec.dataset}: {len(tgt):,} users ({targets} targets)")
    readout = _read_many(src, data, tgt, what="read-out", progress=progress)
    out_dir = Path(out)
    clusters = emb = primary = shifts = sessions = None
    profiles = None
    if readout.intent_embedding is not None and readout.attention is not None and readout.n:
        try:
            clusters = cluster_embeddings(readout.intent_embedding, k=k, k_range=range(k_min, k_max + 1),
                                          n_init=n_init, seed=seed)
        except ValueError as err:
            raise ConfigError(f"{err} (--k)") from None
        except ImportError as err:
            raise ConfigError(f"clustering needs scikit-learn: pip install 'intentrec[analysis]' ({err})") from None
        log(f"K-means++: K = {clusters.k}, silhouette {clusters.silhouette.get(clusters.k, float('nan')):.3f}; "
            f"best silhouette at K = {clusters.best_k}")
        emb = embed_2d(clusters.z_std, method=map_method, perplexity=perplexity, seed=seed)  # type: ignore[arg-type]
        primary = primary_intents(readout)
        profiles = cluster_profiles(readout, data, clusters)
        st = session_start_targets(data, tgt[:, 0], max_sessions)
        if len(st):
            sessions = _read_many(src, data, st, what="sessions", progress=progress)
            shifts = intent_shifts(sessions)
    else:
        log("this model has no intent attention: only the alignment of its intent heads is reported")
    align = alignment(readout, data, None if clusters is None else clusters.labels)
    run_info = {
        "run": str(Path(run_dir).resolve()), "model": src.cfg.model.label, "dataset": data.spec.dataset,
        "targets": targets, "users": int(readout.n), "k": k, "k_range": f"{k_min}-{k_max}", "n_init": n_init,
        "seed": seed, "map": map_method, "max_sessions": max_sessions,
    }
    files = write_analysis_report(out_dir, title=f"Intent analysis · {src.cfg.model.label} · {data.spec.dataset}",
                                  run_info=run_info, clusters=clusters, embedding_2d=emb, profiles=profiles,
                                  primary=primary, shifts=shifts, alignment=align,
                                  map_method="t-SNE" if map_method == "tsne" else "PCA")
    doc = analysis_summary(run_info=run_info, clusters=clusters, profiles=profiles, primary=primary, shifts=shifts,
                           alignment=align)
    files["analysis_json"] = out_dir / "analysis.json"
    atomic_write_text(files["analysis_json"], json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    files["users_parquet"] = out_dir / "users.parquet"
    write_columns(user_table(readout, data, clusters, primary, embedding_2d=emb, alignment=align),
                  files["users_parquet"])
    if sessions is not None:
        files["sessions_parquet"] = out_dir / "sessions.parquet"
        write_columns(_session_table(sessions, data), files["sessions_parquet"])
    summary = AnalyzeSummary(
        out=out_dir, files=files, n_users=int(readout.n), k=None if clusters is None else clusters.k,
        best_k=None if clusters is None else clusters.best_k,
        primary_shares={} if primary is None else dict(zip(readout.head_names, map(float, primary.shares),
                                                             strict=True)),
        alignment={h: s.rate for h, s in align.overall.items()},
        seconds=time.perf_counter() - t0,
    )
    log(f"report: {files['report_html']} ({summary.seconds:.1f}s)")
    return summary


def _session_table(sessions: IntentReadout, data: EncodedSequences) -> dict[str, Any]:
    """Per session start: user, position, session number, primary intent and every head's attention."""
    u, p = sessions.targets[:, 0], sessions.targets[:, 1]
    att = sessions.attention
    assert att is not None
    table: dict[str, Any] = {
        "user_id": [data.user_ids[i] for i in u.tolist()],
        "position": p,
        "session": data.session[data.offsets[u] + p],
        "primary_intent": [sessions.head_names[i] for i in np.argmax(att, axis=1).tolist()],
    }
    for m, name in enumerate(sessions.head_names):
        table[f"attention_{name}"] = att[:, m]
    return table


# ----------------------------------------------------------------------------------------------------------
# layout
# ----------------------------------------------------------------------------------------------------------

LAYOUT_TOP_K = 500
"""Ranked items a page is filled from (rows take the best-ranked matching items among them)."""


def layout(
    source: str | Path | ModelSource,
    *,
    user_id: str | None = None,
    items: list[str] | None = None,
    events: str | Path | None = None,
    columns: dict[str, str] | None = None,
    at: str | float | None = None,
    n_rows: int = 8,
    row_size: int = 10,
    order: str = "intent",
    row_score: str = "probability",
    exclude_seen: bool | None = None,
) -> Any:
    """An intent-driven home page for one member (``intentrec layout``): rows ("Top picks", "Continue watching",
    "New releases", genre rows, "Something different", …) ordered by the member's predicted intent probability
    (``order="intent"``) or in the fixed order of training label shares (``order="fixed"``, needs a run), each
    filled with the best-ranked matching items, no item twice.

    Returns:
        The :class:`~intentrec.analysis.layout.Page`.

    Raises:
        ConfigError: bad arguments, or ``order="fixed"`` with a bundle (it needs the training label counts).
    """
    from intentrec.evaluate.evaluator import intent_label_counts

    if (user_id is None) == (items is None):
        raise ConfigError("give exactly one of --user or --items")
    if order not in {"intent", "fixed"} or row_score not in {"probability", "lift"}:
        raise ConfigError(f"--order {order!r} / --row-score {row_score!r}: use intent|fixed and probability|lift")
    src = source if isinstance(source, ModelSource) else load_source(source)
    skip_seen = _exclude_seen(src.cfg, src.spec) if exclude_seen is None else exclude_seen
    req = _request(src, user_id, items, Path(events) if events else None, columns, at, LAYOUT_TOP_K, skip_seen)
    labels = ItemLabels.from_live(src.live, src.spec, src.label_vocabs)
    counts = None
    if order == "fixed" or row_score == "lift":
        counts = intent_label_counts(_need_run(src, f"--order {order} --row-score {row_score}").data)
    try:
        return build_page(
            req.readout.top_items[0], {h: v[0] for h, v in req.readout.intent_probs.items()}, labels,
            request_time=req.request_time, history=req.history, n_rows=n_rows, row_size=row_size,
            order=order,  # type: ignore[arg-type]
            fixed_order=fixed_row_order(counts, labels) if order == "fixed" and counts is not None else None,
            row_score=row_score,  # type: ignore[arg-type]
            label_prior=label_shares(counts, smoothing=1.0) if row_score == "lift" and counts is not None else None,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None


def evaluate_layout(
    run_dir: str | Path | ModelSource,
    *,
    split: str = "test",
    n_rows: int = 8,
    row_size: int = 10,
    row_score: str = "probability",
    max_targets: int | None = 20_000,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Any:
    """Offline evaluation of the intent-driven page (``intentrec layout RUN --evaluate``): for every target of
    ``split`` (at most ``max_targets``, a seeded sample), the 1-based row of the next engaged item on the
    intent-ordered page and on the fixed-order page (a miss counts as ``n_rows + 1``; lower is better), with a
    paired t-test and a bootstrap CI of the difference. ``out``: also write the JSON there.

    Returns:
        The :class:`~intentrec.analysis.layout.LayoutEvaluation`.
    """
    from intentrec.evaluate.evaluator import intent_label_counts
    from intentrec.train.checkpoint import atomic_write_text

    if split not in {"test", "validation"}:
        raise ConfigError(f"--split {split!r}: use test or validation")
    if row_score not in {"probability", "lift"}:
        raise ConfigError(f"--row-score {row_score!r}: use probability or lift")
    src = run_dir if isinstance(run_dir, ModelSource) else load_source(run_dir)
    art = _need_run(src, "intentrec layout --evaluate")
    data = art.data
    targets = data.split.test_targets if split == "test" else data.split.val_targets
    targets = targets[targets[:, 1] >= 1]
    if max_targets is not None and len(targets) > max_targets:
        rng = np.random.default_rng(seed)
        targets = targets[np.sort(rng.choice(len(targets), size=max_targets, replace=False))]
    if not len(targets):
        raise ConfigError(f"this run has no {split} targets to evaluate")
    log(f"layout evaluation of {src.cfg.model.label} on {data.spec.dataset}: {len(targets):,} {split} targets, "
        f"{n_rows} rows x {row_size} items from the top {LAYOUT_TOP_K} of the full-catalogue ranking")
    readout = _read_many(src, data, targets, top_k=LAYOUT_TOP_K, exclude_seen=_exclude_seen(src.cfg, src.spec),
                         what="rank", progress=progress)
    with _progress(progress, "pages", len(targets)) as advance:
        ev = evaluate_layouts(readout, data, ItemLabels.from_live(src.live, src.spec, src.label_vocabs),
                              label_counts=intent_label_counts(data), n_rows=n_rows, row_size=row_size,
                              row_score=row_score, seed=seed, progress=advance)  # type: ignore[arg-type]
    if out is not None:
        doc = {"run": str(src.path), "model": src.cfg.model.label, "dataset": data.spec.dataset, "split": split,
               **ev.to_json()}
        atomic_write_text(Path(out), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return ev
