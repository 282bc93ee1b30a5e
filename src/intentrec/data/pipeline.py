"""``prepare``: raw source -> cleaned, sessionised, labelled, split and encoded sequences (cached on disk).

Two builders give the same result: :func:`build` holds the whole log in memory (small data, or no cache folder);
:func:`intentrec.data.chunked.build_chunked` streams it in chunks of users straight into the cache entry, with
memory bounded by a chunk plus the vocabularies (used when ``data.cache_dir`` is set and the input files hold at
least :data:`STREAM_MIN_BYTES`). Cached arrays are memory-mapped read-only when loaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from intentrec.config import DataConfig
from intentrec.data import adapters
from intentrec.data.cache import begin_entry, cache_key, commit_entry, load_cached, save_cached, write_meta
from intentrec.data.chunked import build_chunked
from intentrec.data.clean import clean
from intentrec.data.encode import encode_duration, encode_items, encode_labels, encode_numeric, label_counts
from intentrec.data.labels import (
    REPEAT_LABELS,
    attach_item_columns,
    label_column,
    plan_attributes,
    recency_labels,
)
from intentrec.data.prepared import NAME_COLUMNS, Prepared, Progress, item_names, user_offsets
from intentrec.data.schema import ITEM_ID, TIMESTAMP, USER_ID
from intentrec.data.sessions import SESSION, assign_sessions
from intentrec.data.split import check_split, finalize_split, plan_split, training_mask
from intentrec.errors import DataError
from intentrec.structs import AttributeSpec, DataSpec, EncodedSequences
from intentrec.vocab import LabelVocab

__all__ = ["NAME_COLUMNS", "STREAM_MIN_BYTES", "Prepared", "build", "prepare", "prepare_with_report"]

STREAM_MIN_BYTES = 8 * 2**20
"""Input size (sum of the source files) from which a cached preparation streams in chunks (``build_chunked``)."""


def prepare(cfg: DataConfig, *, progress: bool = False) -> EncodedSequences:
    """Read, clean, sessionise, label, split and encode a dataset (cached under ``cfg.cache_dir``).

    Vocabularies (items, labels) and statistics (numeric min/max, duration median) are fitted on training
    events only (positions ``< split.train_len[u]``).

    Args:
        cfg: the ``data`` section.
        progress: print stage timings to stderr.

    Returns:
        The encoded sequences; ``fingerprint`` is the cache key.

    Raises:
        ConfigError: the config does not fit the data (missing column, recency on untimed data, ...).
        SchemaError: a required column is missing from a file.
        DataError: a file is missing, empty or unreadable, or nothing is left after cleaning.
    """
    return prepare_with_report(cfg, progress=progress).data


def prepare_with_report(cfg: DataConfig, *, progress: bool = False) -> Prepared:
    """Like :func:`prepare`, also returning the cleaning report and statistics (used by ``describe``)."""
    say = Progress(progress)
    files = adapters.source_files(cfg.source)
    key = cache_key(cfg, files)
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir is not None else None
    if root is not None:
        hit = load_cached(root, key)
        if hit is not None:
            data, extra = hit
            say(f"loaded from cache {root / key}")
            return Prepared(data, dict(extra.get("report", {})), dict(extra.get("stats", {})), cached=True)
        if sum(f.stat().st_size for f in files) >= STREAM_MIN_BYTES:
            return _prepare_chunked(cfg, root, key, progress=progress)
    prepared = build(cfg, fingerprint=key, progress=progress)
    if root is not None:
        save_cached(root, key, prepared.data, {"report": prepared.report, "stats": prepared.stats})
        say(f"cached at {root / key}")
    return prepared


def _prepare_chunked(cfg: DataConfig, root: Path, key: str, *, progress: bool) -> Prepared:
    """Build out of core straight into a new cache entry, commit it and map it."""
    say = Progress(progress)
    tmp: Path | None = None
    try:
        tmp = begin_entry(root, key)
        prepared = build_chunked(cfg, tmp, fingerprint=key, progress=progress)
        write_meta(tmp, key, prepared.data, {"report": prepared.report, "stats": prepared.stats})
        final = commit_entry(root, key, tmp)
        tmp = None
    except OSError as err:
        raise DataError(
            f"cannot write the prepared data to the cache at {root}: {err}; free disk space there, or set "
            "data.cache_dir to another folder (null prepares in memory)"
        ) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"cached at {final}")
    hit = load_cached(root, key)  # map the committed files (the arrays built point into the renamed folder)
    if hit is None:
        return prepared
    return Prepared(hit[0], prepared.report, prepared.stats)


def build(cfg: DataConfig, *, fingerprint: str = "", progress: bool = False) -> Prepared:
    """Prepare without the cache (see :func:`prepare`)."""
    say = Progress(progress)
    raw = adapters.load(cfg.source)
    say(f"read {raw.dataset}: {raw.interactions.height} events")
    report = dict(raw.report)
    frame = clean(raw.interactions, cfg.clean, report, origin=raw.dataset)
    if not raw.timed:  # order index 0, 1, 2, ... after removals
        frame = frame.with_columns(pl.int_range(pl.len()).over(USER_ID).cast(pl.Float64).alias(TIMESTAMP))
    frame = assign_sessions(frame, cfg.sessions, timed=raw.timed)
    say(f"cleaned: {frame.height} events, {frame[USER_ID].n_unique()} users")

    attrs = plan_attributes(cfg, frame, raw.items, timed=raw.timed)
    needed = [a.column for a in attrs if a.column] + [
        i.series_column for i in cfg.intents if i.kind == "repeat" and i.series_column
    ] + list(cfg.features.numeric)
    if raw.items is not None:
        missing_meta = int((~frame[ITEM_ID].is_in(raw.items[ITEM_ID].implode())).sum())
        if missing_meta:
            report["events_without_item_metadata"] = missing_meta
    frame = attach_item_columns(frame, raw.items, needed)

    user_ids, offsets = user_offsets(frame[USER_ID])
    timestamps = frame[TIMESTAMP].to_numpy().astype(np.float64)  # (N,)
    plan = plan_split(offsets, timestamps, cfg.split, timed=raw.timed)
    train = training_mask(offsets, plan.train_len)  # (N,)
    item_vocab, item_idx = encode_items(frame[ITEM_ID], train)
    split = finalize_split(plan, offsets, item_idx)
    check_split(split, offsets, timestamps, plan.cutoffs or None)
    say(f"split ({split.protocol}): {int(train.sum())} training events, {item_vocab.n_known} items in vocabulary")

    categorical: dict[str, np.ndarray] = {}
    vocabs: dict[str, LabelVocab] = {}
    specs: list[AttributeSpec] = []
    for attr in attrs:
        expr, multi = label_column(frame, attr, report)
        intent = attr.intent
        if attr.kind == "recency" and intent is not None:
            vocab = LabelVocab.from_labels(attr.name, recency_labels(intent.buckets_days))
        elif attr.kind == "repeat":
            vocab = LabelVocab.from_labels(attr.name, REPEAT_LABELS)
        else:
            counts = label_counts(frame, expr, multi, train)
            min_count = intent.min_count if intent is not None else 1
            max_labels = intent.max_labels if intent is not None else None
            vocab = LabelVocab.fit(attr.name, counts, min_count=min_count, max_labels=max_labels)
        categorical[attr.name] = encode_labels(frame, expr, multi, vocab)  # (N,) or (N, L)
        vocabs[attr.name] = vocab
        specs.append(AttributeSpec(
            name=attr.name, n_classes=len(vocab), multi_valued=multi,
            is_input=intent.as_feature if intent is not None else True, is_intent=intent is not None,
        ))
    numeric, numeric_stats = encode_numeric(frame, cfg.features.numeric, train)  # (N, F)
    duration, median = encode_duration(frame, train, report)  # (N,)
    say(f"encoded {len(specs)} categorical attributes, {len(cfg.features.numeric)} numeric features")

    spec = DataSpec(
        n_items=len(item_vocab), attributes=tuple(specs), numeric=tuple(cfg.features.numeric), timed=raw.timed,
        dataset=raw.dataset, exclude_seen_default=raw.exclude_seen_default,
    )
    data = EncodedSequences(
        user_ids=user_ids, offsets=offsets, item_idx=item_idx, timestamps=timestamps, duration=duration,
        session=frame[SESSION].to_numpy().astype(np.int64), categorical=categorical, numeric=numeric,
        split=split, spec=spec, item_vocab=item_vocab, label_vocabs=vocabs, duration_median=median,
        fingerprint=fingerprint, item_names=item_names(raw.items, item_vocab.ids),
    )
    stats: dict[str, Any] = {
        "items_after_clean": int(frame[ITEM_ID].n_unique()),
        "cutoffs": {k: float(v) for k, v in plan.cutoffs.items()},
        "numeric_min_max": {k: [lo, hi] for k, (lo, hi) in numeric_stats.items()},
        "n_val_users": plan.n_val_users,
        "n_test_users": plan.n_test_users,
    }
    return Prepared(data, report, stats)
