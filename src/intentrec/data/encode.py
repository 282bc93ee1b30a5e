"""Fit vocabularies and statistics on TRAINING events only, and encode frames to numpy (the exit from Polars).

Layouts (others rely on them):

* items: (N,) int64, ``UNK_IDX`` (1) for items not seen in training events;
* single-valued attribute: (N,) int64 class index, 0 = no value (PAD), 1 = ``other``;
* multi-valued attribute: (N, L) int64, each row's distinct class indices sorted by index (most frequent
  training label first) with ``other`` (1) last, then 0-padding; at most ``MAX_LABELS_PER_EVENT`` (16) per row;
  ``L`` = the largest count of labels of any event (>= 1); an event with no labels is all zeros;
* numeric: (N, F) float32 min-max scaled with training-event min/max, clipped to [0, 1], missing -> 0;
* duration: (N,) float32, missing/NaN/negative/absurd (> ``DURATION_MAX``) filled with the training median.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from intentrec.data.io import date_to_seconds
from intentrec.data.schema import DURATION, DURATION_MAX
from intentrec.errors import ConfigError
from intentrec.vocab import PAD_IDX, UNK_IDX, ItemVocab, LabelVocab

__all__ = [
    "MAX_LABELS_PER_EVENT",
    "duration_values",
    "encode_duration",
    "encode_items",
    "encode_labels",
    "encode_numeric",
    "fill_duration",
    "item_counts",
    "item_indices",
    "label_counts",
    "numeric_expr",
    "numeric_values",
    "scale_numeric",
    "usable_median",
    "valid_duration",
]

MAX_LABELS_PER_EVENT = 16


def item_counts(items: pl.Series, train: np.ndarray) -> dict[str, int]:
    """Number of training events of each raw item id.

    Args:
        items: (N,) raw item ids (Utf8).
        train: (N,) bool training-event mask.
    """
    counts = items.filter(pl.Series(train)).value_counts()
    return dict(zip(counts[items.name].to_list(), counts["count"].to_list(), strict=True))


def item_indices(items: pl.Series, vocab: ItemVocab) -> np.ndarray:
    """(N,) int64 item indices of raw ids (``UNK_IDX`` for ids not in ``vocab``)."""
    mapping = {raw: j + 2 for j, raw in enumerate(vocab.ids)}
    idx = items.replace_strict(mapping, default=UNK_IDX, return_dtype=pl.Int64)  # (N,)
    return idx.to_numpy().astype(np.int64, copy=False)


def encode_items(items: pl.Series, train: np.ndarray) -> tuple[ItemVocab, np.ndarray]:
    """Fit the item vocabulary on training events and encode every event.

    Args:
        items: (N,) raw item ids (Utf8).
        train: (N,) bool training-event mask.

    Returns:
        ``(vocab, item_idx)`` with item_idx (N,) int64 (``UNK_IDX`` where unseen in training).
    """
    vocab = ItemVocab.fit(item_counts(items, train))
    return vocab, item_indices(items, vocab)


def _exploded(frame: pl.DataFrame, expr: pl.Expr) -> pl.DataFrame:
    """(event index, label) rows of a List(Utf8) expression (duplicates within an event possible)."""
    return (
        frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), expr.alias("_l"))
        .explode("_l")
        .drop_nulls("_l")
    )


def label_counts(frame: pl.DataFrame, expr: pl.Expr, multi: bool, train: np.ndarray) -> dict[str, int]:
    """Number of training events carrying each label (a label counts once per event)."""
    if multi:
        ex = _exploded(frame, expr)
        ex = ex.filter(pl.Series(train[ex["_i"].to_numpy()])).unique(["_i", "_l"])
        counts = ex.group_by("_l").len()
    else:
        values = frame.select(expr.alias("_l")).filter(pl.Series(train)).drop_nulls("_l")
        counts = values.group_by("_l").len()
    return dict(zip(counts["_l"].to_list(), counts["len"].to_list(), strict=True))


def encode_labels(frame: pl.DataFrame, expr: pl.Expr, multi: bool, vocab: LabelVocab) -> np.ndarray:
    """Encode raw labels with a fitted vocabulary.

    Args:
        frame: the event frame.
        expr: Utf8 (single) or List(Utf8) (multi) label expression; null = no label.
        multi: whether ``expr`` is a list.
        vocab: the attribute's vocabulary (unknown labels -> ``other`` = 1).

    Returns:
        (N,) int64, or (N, L) int64 for multi-valued attributes (layout in the module docstring).
    """
    mapping = {lab: j for j, lab in enumerate(vocab.labels) if j >= 2}
    n = frame.height
    if not multi:
        codes = frame.select(
            pl.when(expr.is_null()).then(pl.lit(PAD_IDX, dtype=pl.Int64))
            .otherwise(expr.replace_strict(mapping, default=UNK_IDX, return_dtype=pl.Int64))
            .alias("_c")
        )["_c"]
        return codes.to_numpy().astype(np.int64, copy=False)  # (N,)
    ex = _exploded(frame, expr)
    codes = ex.select(pl.col("_l").replace_strict(mapping, default=UNK_IDX, return_dtype=pl.Int64))["_l"]
    event = ex["_i"].to_numpy()  # (E,) event of each (event, label) pair
    code = codes.to_numpy()  # (E,)
    n_classes = len(vocab)
    sort_key = np.where(code == UNK_IDX, n_classes, code)  # ``other`` sorts after every known label
    pairs = np.sort(event * (n_classes + 1) + sort_key)  # (E,) sorted by (event, key)
    distinct = np.ones(len(pairs), dtype=bool)  # (E,)
    distinct[1:] = pairs[1:] != pairs[:-1]
    uniq = pairs[distinct]  # (E',) duplicates removed
    event, sort_key = uniq // (n_classes + 1), uniq % (n_classes + 1)  # (E',), (E',)
    code = np.where(sort_key == n_classes, UNK_IDX, sort_key)  # (E',)
    starts = np.ones(len(uniq), dtype=bool)  # (E',)
    starts[1:] = event[1:] != event[:-1]
    idx = np.arange(len(uniq))
    rank = idx - np.maximum.accumulate(np.where(starts, idx, 0))  # (E',) position within the event's labels
    width = int(min(MAX_LABELS_PER_EVENT, rank.max() + 1)) if len(uniq) else 1
    keep = rank < width
    out = np.zeros((n, width), dtype=np.int64)  # (N, L)
    out[event[keep], rank[keep]] = code[keep]
    return out


def numeric_expr(frame: pl.DataFrame, column: str, key: str) -> pl.Expr:
    """A Float64 expression of a numeric, boolean or date column (dates in seconds).

    Raises:
        ConfigError: the column is not numeric (``key`` names the config entry).
    """
    dtype = frame.schema[column]
    if dtype == pl.Boolean:
        return pl.col(column).cast(pl.Float64)
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return date_to_seconds(pl.col(column), dtype)
    if dtype.is_numeric():
        return pl.col(column).cast(pl.Float64)
    if dtype == pl.String:
        number = pl.col(column).cast(pl.Float64, strict=False)
        text = frame.select(pl.col(column).filter(number.is_null() & pl.col(column).is_not_null()).first()).item()
        numbers = int(frame.select(number.is_not_null().sum()).item())
        if numbers and text is not None:
            raise ConfigError(
                f"{key} = {column!r} holds numbers mixed with text (e.g. {text!r}); fix or blank those values in the "
                "data (a missing value is scaled to 0), or list the column under data.features.categorical"
            )
    raise ConfigError(
        f"{key} = {column!r} has type {dtype}, not numbers; list it under data.features.categorical instead"
    )


def numeric_values(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """(N, F) float64 raw values of the numeric columns, NaN where missing or not finite.

    Raises:
        ConfigError: a column is not numeric.
    """
    out = np.empty((frame.height, len(columns)), dtype=np.float64)  # (N, F)
    for f, column in enumerate(columns):
        expr = numeric_expr(frame, column, f"data.features.numeric[{f}]")
        x = frame.select(expr.alias("_x"))["_x"].to_numpy().astype(np.float64)  # (N,)
        out[:, f] = np.where(np.isfinite(x), x, np.nan)
    return out


def scale_numeric(values: np.ndarray, stats: Sequence[tuple[float, float] | None]) -> np.ndarray:
    """Min-max scale (N, F) raw values with per-column training (min, max); a None column stays 0.

    Returns:
        (N, F) float32 in [0, 1], NaN -> 0.
    """
    out = np.zeros(values.shape, dtype=np.float32)  # (N, F)
    for f, lo_hi in enumerate(stats):
        if lo_hi is None:  # no finite training value
            continue
        lo, hi = lo_hi
        scale = hi - lo if hi > lo else 1.0
        scaled = np.clip((values[:, f] - lo) / scale, 0.0, 1.0)  # (N,)
        out[:, f] = np.nan_to_num(scaled, nan=0.0)
    return out


def encode_numeric(
    frame: pl.DataFrame, columns: Sequence[str], train: np.ndarray
) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """Min-max scale numeric columns with training-event statistics.

    Args:
        frame: the event frame (item columns attached).
        columns: the ``data.features.numeric`` columns, in order.
        train: (N,) bool training-event mask.

    Returns:
        ``(values, stats)``: values (N, F) float32 in [0, 1] (missing/NaN -> 0); stats column -> (min, max) of
        finite training values ((0, 0) when there are none).

    Raises:
        ConfigError: a column is not numeric.
    """
    x = numeric_values(frame, columns)  # (N, F)
    found: list[tuple[float, float] | None] = []
    for f in range(len(columns)):
        xt = x[train & np.isfinite(x[:, f]), f]
        found.append((float(xt.min()), float(xt.max())) if xt.size else None)
    stats = {column: lo_hi or (0.0, 0.0) for column, lo_hi in zip(columns, found, strict=True)}
    return scale_numeric(x, found), stats


def duration_values(frame: pl.DataFrame) -> np.ndarray | None:
    """(N,) float64 raw engagement values, or None when the frame has no ``duration`` column."""
    if DURATION not in frame.columns:
        return None
    return frame[DURATION].cast(pl.Float64).to_numpy().astype(np.float64)  # (N,)


def valid_duration(d: np.ndarray) -> np.ndarray:
    """(N,) bool: the engagement value is finite, not negative and at most ``DURATION_MAX``."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(d) & (d >= 0) & (d <= DURATION_MAX)


def usable_median(median: float | None) -> float:
    """The duration median used as the unit weight: 1.0 when there is none, or it is not finite and positive."""
    if median is None or not np.isfinite(median) or median <= 0:
        return 1.0
    return float(median)


def fill_duration(d: np.ndarray, median: float) -> np.ndarray:
    """(N,) float32 engagement with invalid values replaced by the median."""
    return np.where(valid_duration(d), d, median).astype(np.float32)


def encode_duration(frame: pl.DataFrame, train: np.ndarray, report: dict[str, int]) -> tuple[np.ndarray, float]:
    """Engagement values with repairs, and their training median.

    Args:
        frame: the event frame.
        train: (N,) bool training-event mask.
        report: receives ``duration_filled_with_median`` (null, NaN, negative or absurd values replaced).

    Returns:
        ``(duration, median)``: (N,) float32 (1.0 everywhere when there is no ``duration`` column) and the median
        over valid training values (1.0 when there are none, or when it is not positive).
    """
    d = duration_values(frame)
    if d is None:
        return np.ones(frame.height, dtype=np.float32), 1.0
    valid = valid_duration(d)
    tv = d[train & valid]
    median = usable_median(float(np.median(tv)) if tv.size else None)
    n_bad = int((~valid).sum())
    if n_bad:
        report["duration_filled_with_median"] = n_bad
    return fill_duration(d, median), median
