"""Out-of-core preparation: the steps of :func:`intentrec.data.pipeline.build`, over chunks of users, written
straight into a cache entry as ``.npy`` files.

Memory is bounded by one chunk of about ``chunk_events`` events plus what grows with the vocabularies and the
users (the user and item tables, per-user offsets and training lengths); the per-event arrays never sit in memory
whole. The result is bit-identical to the in-memory :func:`~intentrec.data.pipeline.build`.

Passes over the data (each chunk holds whole users, and chunks follow the global user order):

1. **stage** — the source is scanned lazily (:func:`intentrec.data.adapters.scan`: Parquet shards, table files;
   other adapters are loaded in memory first); rows without a user, item or time are dropped and counted, and the
   columns later steps read are written to one Parquet file by Polars' streaming engine (``sink_parquet``);
   events per user are counted (streaming ``group_by``) and the users, sorted by id, are cut into contiguous
   ranges of about ``chunk_events`` events;
2. **partition** — the staged file is read slice by slice (its row groups) and each slice's rows are appended to
   their range's folder of Parquet parts, user ids replaced by their rank in id order;
3. **clean** — per chunk: the (user, time, row) sort, de-duplication, latest-n, minimum events, sessions, item
   attributes and raw labels (the iterative k-core, when on, first counts users and items over all chunks until
   it converges); the cleaned chunk is written with only the columns later passes read;
4. **cut-offs** (temporal split) — exact global quantiles of the event times (:mod:`intentrec.data.orderstats`);
5. **fit** — per chunk: the split plan of its users, then training counts of items and labels, numeric min/max,
   and the exact training median of the durations;
6. **encode** — per chunk: item and label indices, scaled numerics, durations, sessions and evaluation targets,
   appended to the ``.npy`` files of the entry.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import polars as pl

from intentrec.config import DataConfig
from intentrec.data import adapters
from intentrec.data.cache import array_path, load_array
from intentrec.data.clean import dedupe, drop_short_users, keep_latest, nothing_left, sort_events
from intentrec.data.encode import (
    duration_values,
    encode_labels,
    fill_duration,
    item_counts,
    item_indices,
    label_counts,
    numeric_expr,
    numeric_values,
    scale_numeric,
    usable_median,
    valid_duration,
)
from intentrec.data.labels import (
    REPEAT_LABELS,
    AttributeSource,
    attach_item_columns,
    check_release_scale,
    label_column,
    plan_attributes,
    recency_labels,
    release_scale,
)
from intentrec.data.orderstats import median, quantiles
from intentrec.data.prepared import Prepared, Progress, item_names
from intentrec.data.schema import (
    ACTION,
    DURATION,
    ITEM_ID,
    ROW,
    SESSION_ID,
    TIMESTAMP,
    USER_ID,
    validate_interactions,
    validate_items,
)
from intentrec.data.sessions import SESSION, assign_sessions
from intentrec.data.split import (
    SplitPlan,
    check_protocol,
    check_split,
    cutoff_quantiles,
    describe_split,
    drop_cold_targets,
    plan_split,
    training_mask,
    user_roles,
)
from intentrec.errors import DataError
from intentrec.structs import AttributeSpec, DataSpec, EncodedSequences, Split
from intentrec.vocab import ItemVocab, LabelVocab

__all__ = ["BATCH_ROWS", "CHUNK_EVENTS", "NpyWriter", "build_chunked"]

CHUNK_EVENTS = 1_000_000
"""Events per chunk of users (a user is never split, so a chunk can be larger): the memory knob."""
BATCH_ROWS = 250_000
"""Rows per slice of the source while streaming it into per-chunk parts."""
_WORK = "work"


# ----------------------------------------------------------------------------------------------------------
# .npy writers
# ----------------------------------------------------------------------------------------------------------


class NpyWriter:
    """Write an ``.npy`` file of known shape chunk by chunk (rows appended in order), never holding it whole."""

    def __init__(self, path: Path, dtype: type | np.dtype[Any], shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.shape = path, np.dtype(dtype), shape
        self.rows = 0
        self.file: IO[bytes] = path.open("wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, values: np.ndarray) -> None:
        """Append rows (``values.shape[1:]`` must match the file's trailing shape)."""
        arr = np.ascontiguousarray(values, dtype=self.dtype)
        if arr.shape[1:] != self.shape[1:] or self.rows + arr.shape[0] > self.shape[0]:
            raise DataError(f"internal error: rows of shape {arr.shape} do not fit {self.path.name} {self.shape}")
        self.file.write(arr.data)
        self.rows += arr.shape[0]

    def close(self) -> None:
        """Close the file; raises when fewer rows than declared were written."""
        self.file.close()
        if self.rows != self.shape[0]:
            raise DataError(f"internal error: {self.path.name} got {self.rows} of {self.shape[0]} rows")

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.file.close()


class _PairAppender:
    """Append (K, 2) int64 rows of unknown total count; :meth:`finish` writes the ``.npy`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = path.with_name(path.name + ".raw")
        self.file: IO[bytes] = self.raw.open("wb")
        self.rows = 0

    def write(self, pairs: np.ndarray) -> None:
        arr = np.ascontiguousarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.file.write(arr.data)
        self.rows += arr.shape[0]

    def finish(self) -> None:
        self.file.close()
        with self.path.open("wb") as out, self.raw.open("rb") as src:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int64)), "fortran_order": False,
                      "shape": (self.rows, 2)}
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(src, out, 1 << 22)
        self.raw.unlink()


# ----------------------------------------------------------------------------------------------------------
# source, partition
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """The canonical interactions to prepare and the dataset facts."""

    lazy: pl.LazyFrame
    """Canonical interactions, rows with null keys included (sliced without breaking the scan's pushdown)."""
    keep: pl.Expr
    """True on rows with a user, an item and a time."""
    items: pl.DataFrame | None
    timed: bool
    dataset: str
    exclude_seen_default: bool
    report: dict[str, int]


def _open_source(cfg: DataConfig) -> _Source:
    """The canonical interactions as a lazy frame, the filter that drops null keys, and the dataset facts."""
    scanned = adapters.scan(cfg.source)
    if scanned is None:  # parsed in memory by the adapter (null keys already dropped, validated)
        raw = adapters.load(cfg.source)
        return _Source(raw.interactions.lazy(), pl.lit(True), raw.items, raw.timed, raw.dataset,
                       raw.exclude_seen_default, dict(raw.report))
    report = dict(scanned.report)
    lazy = scanned.interactions
    present = pl.lit(True)
    checks = []
    for column in (USER_ID, ITEM_ID, TIMESTAMP):  # counted in the order load() drops them
        checks.append((present & pl.col(column).is_null()).sum().alias(column))
        present = present & pl.col(column).is_not_null()
    counts = lazy.select(pl.len().alias("_n"), *checks).collect(engine="streaming").row(0, named=True)
    for column in (USER_ID, ITEM_ID, TIMESTAMP):
        if counts[column]:
            report[f"rows_missing_{column}"] = report.get(f"rows_missing_{column}", 0) + int(counts[column])
    if counts["_n"] == sum(int(counts[c]) for c in (USER_ID, ITEM_ID, TIMESTAMP)):
        raise DataError(
            f"{scanned.dataset}: no interactions left after reading (every row lacked a user, item or time)"
        )
    validate_interactions(pl.DataFrame(schema=lazy.collect_schema()), scanned.dataset)
    if scanned.items is not None:
        validate_items(scanned.items, scanned.dataset)
    return _Source(lazy, present, scanned.items, scanned.timed, scanned.dataset, scanned.exclude_seen_default,
                   report)


_KEYS = (USER_ID, ITEM_ID, TIMESTAMP, ROW, ACTION, DURATION, SESSION_ID)
"""Canonical columns cleaning and encoding read (besides the configured attribute and feature columns)."""


def _stage(source: _Source, needed: Sequence[str], work: Path) -> pl.LazyFrame:
    """Write the rows with keys and the columns later steps read to one Parquet file (streaming); scan it.

    Row groups of :data:`BATCH_ROWS` rows let :func:`_partition` read it slice by slice.
    """
    names = source.lazy.collect_schema().names()
    columns = [c for c in names if c in _KEYS or c in needed]
    staging = work / "staging.parquet"
    source.lazy.filter(source.keep).select(columns).sink_parquet(staging, row_group_size=BATCH_ROWS)
    return pl.scan_parquet(staging)


def _partition(
    staged: pl.LazyFrame, work: Path, chunk_events: int, report: dict[str, int]
) -> tuple[list[Path], pl.Series]:
    """Stream the events into per-chunk folders of Parquet parts (users sorted by id, cut every ~chunk_events).

    The staged file is read in slices of :data:`BATCH_ROWS` rows (a slice of a Parquet scan reads only its row
    groups), so at most one slice is in memory. In the parts, ``user_id`` holds the user's rank in id order
    (Int64): the same order, grouping and equality as the raw ids, cheaper to sort and group.

    Returns:
        The chunk folders, and the raw user ids in id order (rank -> id).
    """
    users = staged.group_by(USER_ID).agg(pl.len().alias("_n")).collect(engine="streaming").sort(USER_ID)
    n_items = staged.select(pl.col(ITEM_ID).n_unique()).collect(engine="streaming").item()
    counts = users["_n"].to_numpy().astype(np.int64)  # (U,)
    report["events_read"] = int(counts.sum())
    report["users_read"] = users.height
    report["items_read"] = int(n_items)
    start = np.cumsum(counts) - counts  # (U,) first event of each user in the sorted order
    _, chunk = np.unique(start // max(chunk_events, 1), return_inverse=True)  # (U,) consecutive chunk numbers
    keys = users.select(USER_ID).with_columns(
        pl.Series("_chunk", chunk.astype(np.int32)), pl.int_range(pl.len(), dtype=pl.Int64).alias("_rank")
    )
    del users
    folders = [work / f"parts-{c:05d}" for c in range(int(chunk.max()) + 1)]
    for folder in folders:
        folder.mkdir()
    for i, offset in enumerate(range(0, report["events_read"], BATCH_ROWS)):
        batch = (
            staged.slice(offset, BATCH_ROWS).collect().join(keys, on=USER_ID, how="inner")
            .with_columns(pl.col("_rank").alias(USER_ID)).drop("_rank")
        )
        for (c,), part in batch.partition_by("_chunk", as_dict=True, include_key=False).items():
            part.write_parquet(folders[int(c)] / f"{i:06d}.parquet")  # type: ignore[call-overload]
        del batch
    return folders, keys[USER_ID]


def _read_parts(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted(folder.glob("*.parquet")))


# ----------------------------------------------------------------------------------------------------------
# clean
# ----------------------------------------------------------------------------------------------------------


def _merge(report: dict[str, int], part: dict[str, int]) -> None:
    for key, value in part.items():
        report[key] = report.get(key, 0) + int(value)


def _k_core(
    folders: list[Path], work: Path, k: int, dedupe_events: bool, report: dict[str, int]
) -> tuple[pl.Series, pl.Series]:
    """Sort (and de-duplicate) every chunk, written back, then iterate the k-core over all chunks.

    Each round counts the current events per user (within its chunk) and per item (over all chunks) and keeps
    users and items with at least ``k``, as :func:`intentrec.data.clean.k_core` does on the whole frame.

    Returns:
        The users and items whose events survive.
    """
    users0: list[pl.Series] = []
    items0: list[pl.Series] = []
    for j, folder in enumerate(folders):
        frame = sort_events(_read_parts(folder))
        if dedupe_events:
            frame = dedupe(frame, report)
        frame.write_parquet(work / f"sorted-{j:05d}.parquet")
        users0.append(frame[USER_ID].unique())
        items0.append(frame[ITEM_ID].unique())
    users = pl.concat(users0).unique()
    items = pl.concat(items0).unique()
    n_users0, n_items0 = users.len(), items.len()
    n0 = -1
    while True:
        user_counts: list[pl.DataFrame] = []
        per_chunk_items: list[pl.DataFrame] = []
        n = 0
        for j in range(len(folders)):
            frame = pl.read_parquet(work / f"sorted-{j:05d}.parquet", columns=[USER_ID, ITEM_ID]).filter(
                pl.col(USER_ID).is_in(users.implode()) & pl.col(ITEM_ID).is_in(items.implode())
            )
            n += frame.height
            user_counts.append(frame.group_by(USER_ID).len())
            per_chunk_items.append(frame.group_by(ITEM_ID).len())
        n0 = n if n0 < 0 else n0
        per_user = pl.concat(user_counts)
        per_item = pl.concat(per_chunk_items).group_by(ITEM_ID).agg(pl.col("len").sum())
        kept_users = per_user.filter(pl.col("len") >= k)[USER_ID]
        kept_items = per_item.filter(pl.col("len") >= k)[ITEM_ID]
        if kept_users.len() == per_user.height and kept_items.len() == per_item.height:  # nothing removed
            users, items = per_user[USER_ID], per_item[ITEM_ID]
            break
        users, items = kept_users, kept_items
    report["kcore_events_removed"] = report.get("kcore_events_removed", 0) + n0 - n
    report["kcore_users_removed"] = report.get("kcore_users_removed", 0) + n_users0 - users.len()
    report["kcore_items_removed"] = report.get("kcore_items_removed", 0) + n_items0 - items.len()
    return users, items


@dataclass
class _Chunk:
    """One cleaned chunk: its file and its rows of the global user and event order."""

    path: Path
    u0: int
    u1: int
    e0: int
    e1: int

    def offsets(self, offsets: np.ndarray) -> np.ndarray:
        """(u1 - u0 + 1,) offsets local to the chunk."""
        return offsets[self.u0 : self.u1 + 1] - self.e0


@dataclass
class _Cleaned:
    """The cleaned chunks, in user order, and what the later passes need about them."""

    chunks: list[_Chunk]
    user_ids: list[str]
    offsets: np.ndarray
    multi: list[bool]
    items_after_clean: int


def _clean(
    cfg: DataConfig, source: _Source, folders: list[Path], names: pl.Series, work: Path,
    attrs: list[AttributeSource], needed: list[str], report: dict[str, int],
) -> _Cleaned:
    """Clean every chunk, derive sessions, item attributes and raw labels, and write the columns later passes read."""
    kcore = cfg.clean.k_core > 1
    survivors: tuple[pl.Series, pl.Series] | None = None
    if kcore:
        survivors = _k_core(folders, work, cfg.clean.k_core, cfg.clean.dedupe, report)
    parts: list[dict[str, int]] = [{} for _ in range(5)]  # dedupe, max, min, metadata, labels: report order
    chunks: list[_Chunk] = []
    user_ids: list[str] = []
    lengths: list[np.ndarray] = []
    items_seen: pl.Series | None = None
    multi: list[bool] = [False] * len(attrs)
    scale: dict[int, int] = {}  # attribute -> largest integer release value over the chunks
    n_events = 0
    for j, folder in enumerate(folders):
        if survivors is not None:
            frame = pl.read_parquet(work / f"sorted-{j:05d}.parquet")
            frame = frame.filter(
                pl.col(USER_ID).is_in(survivors[0].implode()) & pl.col(ITEM_ID).is_in(survivors[1].implode())
            )
        else:
            frame = sort_events(_read_parts(folder))
            if cfg.clean.dedupe:
                frame = dedupe(frame, parts[0])
        if cfg.clean.max_events_per_user is not None:
            frame = keep_latest(frame, cfg.clean.max_events_per_user, parts[1])
        if cfg.clean.min_events_per_user > 1:
            frame = drop_short_users(frame, cfg.clean.min_events_per_user, parts[2])
        if frame.height == 0:
            continue
        if not source.timed:  # order index 0, 1, 2, ... after removals
            frame = frame.with_columns(pl.int_range(pl.len()).over(USER_ID).cast(pl.Float64).alias(TIMESTAMP))
        frame = assign_sessions(frame, cfg.sessions, timed=source.timed)
        if source.items is not None:
            missing = int((~frame[ITEM_ID].is_in(source.items[ITEM_ID].implode())).sum())
            if missing:
                _merge(parts[3], {"events_without_item_metadata": missing})
        frame = attach_item_columns(frame, source.items, needed)
        columns = [pl.col(USER_ID), pl.col(ITEM_ID), pl.col(TIMESTAMP), pl.col(SESSION)]
        if DURATION in frame.columns:
            columns.append(pl.col(DURATION))
        label_report: dict[str, int] = {}  # label_column sets its counts: merge them chunk by chunk
        for a, attr in enumerate(attrs):
            expr, multi[a] = label_column(frame, attr, label_report, check_scale=False)
            largest = release_scale(frame, attr)
            if largest is not None:
                scale[a] = max(largest, scale.get(a, largest))
            columns.append(expr.alias(f"_a{a}"))
        _merge(parts[4], label_report)
        for f, column in enumerate(cfg.features.numeric):
            columns.append(numeric_expr(frame, column, f"data.features.numeric[{f}]").alias(f"_n{f}"))
        out = frame.select(columns)
        del frame
        rank = out[USER_ID].to_numpy()  # (n_c,) user ranks, ascending
        first = np.flatnonzero(np.r_[True, rank[1:] != rank[:-1]])  # (u_c,) each user's first row
        path = work / f"clean-{len(chunks):05d}.parquet"
        out.write_parquet(path)
        chunks.append(_Chunk(path, len(user_ids), len(user_ids) + len(first), n_events, n_events + out.height))
        user_ids.extend(names.gather(rank[first]).to_list())
        lengths.append(np.diff(np.append(first, len(rank))))
        n_events += out.height
        unique = out[ITEM_ID].unique()
        items_seen = unique if items_seen is None else pl.concat([items_seen, unique]).unique()
        del out
    for part in parts:
        _merge(report, part)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    for sorted_file in work.glob("sorted-*.parquet"):
        sorted_file.unlink()
    if n_events == 0:
        raise nothing_left(cfg.clean, source.dataset)
    for a, largest in scale.items():
        check_release_scale(attrs[a], largest)
    counts = np.concatenate(lengths)  # (U,)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # (U + 1,)
    return _Cleaned(chunks, user_ids, offsets, multi, int(items_seen.len()) if items_seen is not None else 0)


# ----------------------------------------------------------------------------------------------------------
# fit and encode
# ----------------------------------------------------------------------------------------------------------


def _read(chunk: _Chunk, columns: Sequence[str] | None = None) -> pl.DataFrame:
    return pl.read_parquet(chunk.path, columns=list(columns) if columns is not None else None)


def _plan(cfg: DataConfig, chunk: _Chunk, offsets: np.ndarray, timestamps: np.ndarray, timed: bool,
          cutoffs: dict[str, float] | None, roles: np.ndarray | None) -> SplitPlan:
    return plan_split(chunk.offsets(offsets), timestamps, cfg.split, timed=timed, cutoffs=cutoffs,
                      roles=None if roles is None else roles[chunk.u0 : chunk.u1])


@dataclass
class _Fitted:
    """Training lengths, vocabularies and statistics fitted on training events."""

    train_len: np.ndarray
    item_vocab: ItemVocab
    vocabs: dict[str, LabelVocab]
    specs: list[AttributeSpec]
    numeric: list[tuple[float, float] | None]
    median: float
    n_bad_duration: int


def _fit(
    cfg: DataConfig, cleaned: _Cleaned, attrs: list[AttributeSource], timed: bool,
    cutoffs: dict[str, float] | None, roles: np.ndarray | None, say: Progress,
) -> _Fitted:
    """Training lengths per user, then vocabularies and statistics from training events, chunk by chunk."""
    n_users = len(cleaned.user_ids)
    train_len = np.zeros(n_users, dtype=np.int64)  # (U,)
    items: dict[str, int] = {}
    labels: dict[int, dict[str, int]] = {a: {} for a, attr in enumerate(attrs) if attr.kind not in {"recency", "repeat"}}
    n_numeric = len(cfg.features.numeric)
    lo = np.full(n_numeric, np.inf)
    hi = np.full(n_numeric, -np.inf)
    has_duration = False
    n_valid_train = n_bad = 0
    for chunk in cleaned.chunks:
        frame = _read(chunk)
        timestamps = frame[TIMESTAMP].to_numpy().astype(np.float64)  # (n,)
        plan = _plan(cfg, chunk, cleaned.offsets, timestamps, timed, cutoffs, roles)
        train_len[chunk.u0 : chunk.u1] = plan.train_len
        train = training_mask(chunk.offsets(cleaned.offsets), plan.train_len)  # (n,)
        for raw, count in item_counts(frame[ITEM_ID], train).items():
            items[raw] = items.get(raw, 0) + count
        for a, counts in labels.items():
            for label, count in label_counts(frame, pl.col(f"_a{a}"), cleaned.multi[a], train).items():
                counts[label] = counts.get(label, 0) + count
        if n_numeric:
            x = numeric_values(frame, [f"_n{f}" for f in range(n_numeric)])  # (n, F)
            for f in range(n_numeric):
                xt = x[train & np.isfinite(x[:, f]), f]
                if xt.size:
                    lo[f], hi[f] = min(lo[f], float(xt.min())), max(hi[f], float(xt.max()))
        d = duration_values(frame)
        if d is not None:
            has_duration = True
            valid = valid_duration(d)
            n_valid_train += int((train & valid).sum())
            n_bad += int((~valid).sum())
    item_vocab = ItemVocab.fit(items)
    say(f"split ({cfg.split.protocol}): {int(train_len.sum())} training events, {item_vocab.n_known} items in "
        "vocabulary")
    vocabs: dict[str, LabelVocab] = {}
    specs: list[AttributeSpec] = []
    for a, attr in enumerate(attrs):
        intent = attr.intent
        if attr.kind == "recency" and intent is not None:
            vocab = LabelVocab.from_labels(attr.name, recency_labels(intent.buckets_days))
        elif attr.kind == "repeat":
            vocab = LabelVocab.from_labels(attr.name, REPEAT_LABELS)
        else:
            min_count = intent.min_count if intent is not None else 1
            max_labels = intent.max_labels if intent is not None else None
            vocab = LabelVocab.fit(attr.name, labels[a], min_count=min_count, max_labels=max_labels)
        vocabs[attr.name] = vocab
        specs.append(AttributeSpec(
            name=attr.name, n_classes=len(vocab), multi_valued=cleaned.multi[a],
            is_input=intent.as_feature if intent is not None else True, is_intent=intent is not None,
        ))
    numeric = [(float(lo[f]), float(hi[f])) if np.isfinite(lo[f]) else None for f in range(n_numeric)]
    found: float | None = None
    if has_duration and n_valid_train:

        def train_durations() -> Iterator[np.ndarray]:
            for chunk in cleaned.chunks:
                d = duration_values(_read(chunk, [DURATION]))
                train = training_mask(chunk.offsets(cleaned.offsets), train_len[chunk.u0 : chunk.u1])
                if d is not None:
                    yield d[train & valid_duration(d)]

        found = median(train_durations, n_valid_train)
    return _Fitted(train_len, item_vocab, vocabs, specs, numeric,
                   usable_median(found) if has_duration else 1.0, n_bad)


def _encode(
    cfg: DataConfig, cleaned: _Cleaned, attrs: list[AttributeSource], fitted: _Fitted, timed: bool,
    cutoffs: dict[str, float] | None, roles: np.ndarray | None, folder: Path, work: Path,
) -> tuple[SplitPlan, dict[str, int], int, int]:
    """Encode every chunk into the entry's ``.npy`` files; returns the merged plan facts and target counts."""
    n = int(cleaned.offsets[-1])
    n_numeric = len(cfg.features.numeric)
    writers = {
        "item_idx": NpyWriter(array_path(folder, "item_idx"), np.int64, (n,)),
        "timestamps": NpyWriter(array_path(folder, "timestamps"), np.float64, (n,)),
        "duration": NpyWriter(array_path(folder, "duration"), np.float32, (n,)),
        "session": NpyWriter(array_path(folder, "session"), np.int64, (n,)),
        "numeric": NpyWriter(array_path(folder, "numeric"), np.float32, (n, n_numeric)),
    }
    for a in range(len(attrs)):
        if not cleaned.multi[a]:
            writers[f"cat_{a}"] = NpyWriter(array_path(folder, f"cat_{a}"), np.int64, (n,))
    multi_parts: dict[int, list[Path]] = {a: [] for a in range(len(attrs)) if cleaned.multi[a]}
    targets = {"val": _PairAppender(array_path(folder, "val_targets")),
               "test": _PairAppender(array_path(folder, "test_targets"))}
    excluded = {"no_history": 0}
    cold_val = cold_test = n_val_users = n_test_users = 0
    mode = "next"
    try:
        for c, chunk in enumerate(cleaned.chunks):
            frame = _read(chunk)
            local = chunk.offsets(cleaned.offsets)
            timestamps = frame[TIMESTAMP].to_numpy().astype(np.float64)  # (n_c,)
            plan = _plan(cfg, chunk, cleaned.offsets, timestamps, timed, cutoffs, roles)
            mode = plan.targets
            item_idx = item_indices(frame[ITEM_ID], fitted.item_vocab)  # (n_c,)
            val, test, cv, ct = drop_cold_targets(plan, local, item_idx)
            split = Split(train_len=plan.train_len, val_targets=val, test_targets=test, protocol=plan.protocol)  # type: ignore[arg-type]
            check_split(split, local, timestamps, plan.cutoffs or None)
            excluded["no_history"] += plan.excluded.get("no_history", 0)
            cold_val, cold_test = cold_val + cv, cold_test + ct
            n_val_users, n_test_users = n_val_users + plan.n_val_users, n_test_users + plan.n_test_users
            shift = np.array([chunk.u0, 0], dtype=np.int64)  # local user rows -> global
            targets["val"].write(val + shift)
            targets["test"].write(test + shift)
            writers["item_idx"].write(item_idx)
            writers["timestamps"].write(timestamps)
            d = duration_values(frame)
            writers["duration"].write(
                np.ones(frame.height, dtype=np.float32) if d is None else fill_duration(d, fitted.median)
            )
            writers["session"].write(frame[SESSION].to_numpy().astype(np.int64))
            x = numeric_values(frame, [f"_n{f}" for f in range(n_numeric)])  # (n_c, F)
            writers["numeric"].write(scale_numeric(x, fitted.numeric))
            for a, attr in enumerate(attrs):
                codes = encode_labels(frame, pl.col(f"_a{a}"), cleaned.multi[a], fitted.vocabs[attr.name])
                if cleaned.multi[a]:
                    path = work / f"multi-{a}-{c:05d}.npy"
                    np.save(path, codes, allow_pickle=False)
                    multi_parts[a].append(path)
                else:
                    writers[f"cat_{a}"].write(codes)
        for writer in writers.values():
            writer.close()
        for appender in targets.values():
            appender.finish()
    finally:
        for writer in writers.values():
            writer.file.close()
    for a, paths in multi_parts.items():  # L = the widest chunk (>= 1); narrower chunks are 0-padded
        width = max(int(np.load(p, mmap_mode="r").shape[1]) for p in paths)
        with NpyWriter(array_path(folder, f"cat_{a}"), np.int64, (n, width)) as writer:
            for p in paths:
                codes = np.load(p)
                writer.write(np.pad(codes, ((0, 0), (0, width - codes.shape[1]))))
                p.unlink()
    merged = SplitPlan(cfg.split.protocol, fitted.train_len, np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64),
                       excluded, targets=mode, cutoffs=dict(cutoffs or {}), n_val_users=n_val_users,
                       n_test_users=n_test_users)
    return merged, excluded, cold_val, cold_test


# ----------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------


def build_chunked(
    cfg: DataConfig, folder: Path, *, fingerprint: str = "", progress: bool = False, chunk_events: int | None = None
) -> Prepared:
    """Prepare out of core, writing the arrays into ``folder`` (a new cache entry's temporary folder).

    The result equals :func:`intentrec.data.pipeline.build` (same arrays, vocabularies, split, report and
    statistics); its arrays are read-only memory maps of the ``.npy`` files written to ``folder`` (names from
    :func:`intentrec.data.cache.array_path`); ``meta.json`` is left to the caller.

    Args:
        cfg: the data section.
        folder: an empty folder that receives the arrays (scratch files go to ``folder/work``, removed at the end).
        fingerprint: stored as :attr:`EncodedSequences.fingerprint`.
        progress: print stage timings to stderr.
        chunk_events: events per chunk of users (default :data:`CHUNK_EVENTS`).

    Returns:
        The prepared sequences (memory-mapped), report and statistics.

    Raises:
        ConfigError, SchemaError, DataError: as :func:`intentrec.data.pipeline.prepare`.
        OSError: the folder cannot be written (e.g. the disk is full).
    """
    say = Progress(progress)
    work = folder / _WORK
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = _open_source(cfg)
        report = dict(source.report)
        check_protocol(cfg.split, timed=source.timed)
        schema = pl.DataFrame(schema=source.lazy.collect_schema()).with_columns(pl.lit(0, pl.Int64).alias(SESSION))
        attrs = plan_attributes(cfg, schema, source.items, timed=source.timed)
        needed = [a.column for a in attrs if a.column] + [
            i.series_column for i in cfg.intents if i.kind == "repeat" and i.series_column
        ] + list(cfg.features.numeric)
        staged = _stage(source, needed, work)
        source.lazy = staged  # drops an adapter's in-memory frame
        folders, names = _partition(staged, work, chunk_events or CHUNK_EVENTS, report)
        (work / "staging.parquet").unlink()
        say(f"read {source.dataset}: {report['events_read']} events into {len(folders)} chunks of users")
        cleaned = _clean(cfg, source, folders, names, work, attrs, needed, report)
        del names
        n = int(cleaned.offsets[-1])
        say(f"cleaned: {n} events, {len(cleaned.user_ids)} users")

        cutoffs: dict[str, float] | None = None
        if cfg.split.protocol == "temporal":

            def times() -> Iterator[np.ndarray]:
                for chunk in cleaned.chunks:
                    yield _read(chunk, [TIMESTAMP])[TIMESTAMP].to_numpy().astype(np.float64)

            q = cutoff_quantiles(cfg.split)
            cutoffs = dict(zip(q, quantiles(times, list(q.values()), n), strict=True))
        roles = user_roles(len(cleaned.user_ids), cfg.split) if cfg.split.protocol == "user" else None
        fitted = _fit(cfg, cleaned, attrs, source.timed, cutoffs, roles, say)
        if fitted.n_bad_duration:
            report["duration_filled_with_median"] = fitted.n_bad_duration
        plan, excluded, cold_val, cold_test = _encode(cfg, cleaned, attrs, fitted, source.timed, cutoffs, roles,
                                                      folder, work)
        np.save(array_path(folder, "offsets"), cleaned.offsets, allow_pickle=False)
        np.save(array_path(folder, "train_len"), fitted.train_len, allow_pickle=False)
        say(f"encoded {len(fitted.specs)} categorical attributes, {len(cfg.features.numeric)} numeric features")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    val, test = load_array(array_path(folder, "val_targets")), load_array(array_path(folder, "test_targets"))
    excluded["cold_item"] = cold_val + cold_test
    split = Split(
        train_len=load_array(array_path(folder, "train_len")), val_targets=val, test_targets=test,
        protocol=plan.protocol,  # type: ignore[arg-type]
        description=describe_split(plan, n_val=len(val), n_test=len(test), cold_val=cold_val, cold_test=cold_test,
                                   no_history=excluded["no_history"]),
        excluded=excluded,
        cold_targets={"validation": cold_val, "test": cold_test},
    )
    spec = DataSpec(
        n_items=len(fitted.item_vocab), attributes=tuple(fitted.specs), numeric=tuple(cfg.features.numeric),
        timed=source.timed, dataset=source.dataset, exclude_seen_default=source.exclude_seen_default,
    )
    data = EncodedSequences(
        user_ids=tuple(cleaned.user_ids), offsets=load_array(array_path(folder, "offsets")),
        item_idx=load_array(array_path(folder, "item_idx")), timestamps=load_array(array_path(folder, "timestamps")),
        duration=load_array(array_path(folder, "duration")), session=load_array(array_path(folder, "session")),
        categorical={attr.name: load_array(array_path(folder, f"cat_{a}")) for a, attr in enumerate(attrs)},
        numeric=load_array(array_path(folder, "numeric")), split=split, spec=spec, item_vocab=fitted.item_vocab,
        label_vocabs=fitted.vocabs, duration_median=fitted.median, fingerprint=fingerprint,
        item_names=item_names(source.items, fitted.item_vocab.ids),
    )
    stats: dict[str, Any] = {
        "items_after_clean": cleaned.items_after_clean,
        "cutoffs": {k: float(v) for k, v in (cutoffs or {}).items()},
        "numeric_min_max": {
            column: list(lo_hi) if lo_hi is not None else [0.0, 0.0]
            for column, lo_hi in zip(cfg.features.numeric, fitted.numeric, strict=True)
        },
        "n_val_users": plan.n_val_users,
        "n_test_users": plan.n_test_users,
    }
    return Prepared(data, report, stats)

