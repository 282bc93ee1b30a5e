"""Per-event attributes: intent labels and categorical/numeric input columns, as raw values.

Each label describes the event *itself* (its action, its item's genres, its release age, whether it repeats an
earlier item); the features stage shifts them by one to make next-event targets. Encoding to class indices, with
vocabularies fitted on training events, happens in ``encode``.

Label names fixed here (others use them):

* recency: one label per bucket named from the edges, e.g. edges (7, 30, 365) give ``<=7d``, ``7d-30d``,
  ``30d-365d``, ``>365d`` (an age equal to an edge falls in the lower bucket; negative ages, i.e. events before
  the release date, fall in the first bucket); a missing release date gives ``other``;
* repeat: ``new`` and ``repeat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from intentrec.config import DataConfig, IntentConfig
from intentrec.data.io import date_to_seconds
from intentrec.data.schema import ITEM_ID, TIMESTAMP, USER_ID, public_columns
from intentrec.errors import ConfigError
from intentrec.vocab import OTHER_LABEL, REPEAT_LABELS, recency_labels

__all__ = [
    "REPEAT_LABELS",
    "AttributeSource",
    "attach_item_columns",
    "check_release_scale",
    "label_column",
    "plan_attributes",
    "recency_labels",
    "release_scale",
]

_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class AttributeSource:
    """Where one categorical attribute (intent or input feature) comes from."""

    name: str
    """Attribute name: the intent name, or the column name for extra features."""
    kind: str
    """``categorical``, ``multi_label``, ``recency``, ``repeat`` (intents) or ``feature`` (extra input)."""
    column: str | None
    """Source column (interaction or item), if any."""
    key: str
    """Config key naming the column (for messages)."""
    intent: IntentConfig | None = None
    """The intent's config (None for extra features)."""


def _columns_text(frame: pl.DataFrame, items: pl.DataFrame | None) -> str:
    inter = public_columns(frame.columns)
    item_cols = public_columns(items.columns) if items is not None else []
    return f"interaction columns: {inter}; item columns: {item_cols}"


def _resolve(column: str, key: str, frame: pl.DataFrame, items: pl.DataFrame | None) -> None:
    if column.startswith("_"):
        raise ConfigError(f"{key} = {column!r}: names starting with '_' are reserved; {_columns_text(frame, items)}")
    if column in frame.columns or (items is not None and column in items.columns):
        return
    raise ConfigError(f"{key} = {column!r} is not a column of this data; {_columns_text(frame, items)}")


def plan_attributes(cfg: DataConfig, frame: pl.DataFrame, items: pl.DataFrame | None, *, timed: bool) -> list[AttributeSource]:
    """Check every configured intent/feature column exists and list the categorical attributes in order.

    The order is: intents in ``data.intents`` order, then ``data.features.categorical``.

    Raises:
        ConfigError: a column exists nowhere (the message names the key and lists the available columns), a
            recency intent on untimed data, or an attribute name used twice.
    """
    out: list[AttributeSource] = []
    for i, intent in enumerate(cfg.intents):
        key = f"data.intents[{i}].column"
        if intent.kind == "recency" and not timed:
            raise ConfigError(
                f"data.intents[{i}] ({intent.name!r}) is a recency intent, but this data is untimed (only the event "
                "order is known), so the time since release cannot be computed; remove the intent or use timed data"
            )
        if intent.kind == "repeat":
            if intent.series_column is not None:
                _resolve(intent.series_column, f"data.intents[{i}].series_column", frame, items)
        elif intent.column is not None:
            _resolve(intent.column, key, frame, items)
        out.append(AttributeSource(intent.name, intent.kind, intent.column, key, intent))
    names = {a.name for a in out}
    for j, column in enumerate(cfg.features.categorical):
        key = f"data.features.categorical[{j}]"
        _resolve(column, key, frame, items)
        if column in names:
            raise ConfigError(
                f"{key} = {column!r} has the same name as an intent; attribute names must be unique (rename the intent)"
            )
        names.add(column)
        out.append(AttributeSource(column, "feature", column, key))
    for j, column in enumerate(cfg.features.numeric):
        _resolve(column, f"data.features.numeric[{j}]", frame, items)
    return out


def attach_item_columns(frame: pl.DataFrame, items: pl.DataFrame | None, columns: Sequence[str]) -> pl.DataFrame:
    """Join the item attributes among ``columns`` that are not interaction columns (interaction columns win)."""
    if items is None:
        return frame
    wanted = [c for c in dict.fromkeys(columns) if c is not None and c not in frame.columns and c in items.columns]
    if not wanted:
        return frame
    table = items.select([ITEM_ID, *wanted]).unique(ITEM_ID, keep="first", maintain_order=True)  # never fan out
    return frame.join(table, on=ITEM_ID, how="left", maintain_order="left")


def _as_string_list(frame: pl.DataFrame, column: str) -> pl.Expr:
    dtype = frame.schema[column]
    if isinstance(dtype, pl.List):
        return pl.col(column).list.eval(pl.element().cast(pl.String)).list.drop_nulls()
    return pl.concat_list([pl.col(column).cast(pl.String)]).list.drop_nulls()


def _as_string(frame: pl.DataFrame, column: str, key: str, what: str) -> pl.Expr:
    dtype = frame.schema[column]
    if isinstance(dtype, pl.List | pl.Array | pl.Struct):
        raise ConfigError(
            f"{key} = {column!r} holds several values per event ({dtype}); a {what} needs one value per event. "
            "Use an intent of kind 'multi_label' for it (or a single-valued column)."
        )
    return pl.col(column).cast(pl.String)


def release_scale(frame: pl.DataFrame, source: AttributeSource) -> int | None:
    """The largest absolute value of an integer release-date column of a recency attribute (None otherwise).

    A column whose largest value is below 10,000 holds years, not seconds (:func:`check_release_scale`).
    """
    column = source.column
    if source.kind != "recency" or column is None or not frame.schema[column].is_integer():
        return None
    largest = frame.select(pl.col(column).abs().max()).item()
    return None if largest is None else int(largest)


def check_release_scale(source: AttributeSource, largest: int | None) -> None:
    """Raise when a recency attribute's integer release column looks like years (largest value < 10,000).

    Raises:
        ConfigError: ``largest`` is below 10,000.
    """
    if largest is not None and largest < 10_000:
        raise ConfigError(
            f"{source.key} = {source.column!r} looks like years (largest value {largest}), not dates in seconds; "
            "point the recency intent at a release-date column (e.g. 'release_date' for MovieLens)"
        )


def label_column(
    frame: pl.DataFrame, source: AttributeSource, report: dict[str, int], *, check_scale: bool = True
) -> tuple[pl.Expr, bool]:
    """The raw label expression of one attribute.

    Args:
        frame: interactions sorted by (user, time), with the needed item columns attached.
        source: the attribute.
        report: receives ``recency_negative_age_<name>`` (events before the release date) and
            ``recency_missing_release_<name>``.
        check_scale: check that an integer release column is not years (:func:`check_release_scale`); a caller
            that sees the events in chunks turns it off and checks the largest value over all chunks itself.

    Returns:
        ``(expr, multi)``: a Utf8 expression (null = no label) or, when ``multi``, a List(Utf8) expression.

    Raises:
        ConfigError: the column has the wrong kind of values for the attribute.
    """
    if source.kind == "repeat":
        intent = source.intent
        series = intent.series_column if intent is not None else None
        if series is not None:
            key_expr = pl.concat_str(
                [pl.lit("s:"), _as_string(frame, series, f"{source.key.rsplit('.', 1)[0]}.series_column", "series")]
            )
            key_expr = pl.coalesce(key_expr, pl.concat_str([pl.lit("i:"), pl.col(ITEM_ID)]))
        else:
            key_expr = pl.col(ITEM_ID)
        seen_before = pl.int_range(pl.len()).over([pl.col(USER_ID), key_expr]) > 0
        return pl.when(seen_before).then(pl.lit(REPEAT_LABELS[1])).otherwise(pl.lit(REPEAT_LABELS[0])), False
    column = source.column
    if column is None:  # guarded by IntentConfig validation
        raise ConfigError(f"{source.key}: attribute {source.name!r} needs a column")
    if source.kind == "recency":
        intent = source.intent
        edges = intent.buckets_days if intent is not None else ()
        dtype = frame.schema[column]
        if dtype == pl.String:
            raise ConfigError(
                f"{source.key} = {column!r} holds text, not dates in seconds; list it in data.source.date_columns "
                "so it is parsed (table adapter), or point the recency intent at a numeric release-date column"
            )
        if not (dtype.is_numeric() or dtype == pl.Date or isinstance(dtype, pl.Datetime)):
            raise ConfigError(f"{source.key} = {column!r} has type {dtype}; a recency intent needs a release date")
        if check_scale:
            check_release_scale(source, release_scale(frame, source))
        release = date_to_seconds(pl.col(column), dtype)
        days = (pl.col(TIMESTAMP) - release) / _SECONDS_PER_DAY
        missing = release.is_null() | release.is_nan()
        stats = frame.select(missing.sum().alias("m"), ((days < 0) & ~missing).sum().alias("neg")).row(0)
        if stats[0]:
            report[f"recency_missing_release_{source.name}"] = int(stats[0])
        if stats[1]:
            report[f"recency_negative_age_{source.name}"] = int(stats[1])
        labels = recency_labels(edges)
        expr = pl.when(missing).then(pl.lit(OTHER_LABEL))
        for edge, label in zip(edges, labels[:-1], strict=True):
            expr = expr.when(days <= edge).then(pl.lit(label))
        return expr.otherwise(pl.lit(labels[-1])), False
    if source.kind == "multi_label":
        return _as_string_list(frame, column), True
    if source.kind == "categorical":
        return _as_string(frame, column, source.key, "categorical intent"), False
    # extra input feature: multi-valued columns stay multi-valued
    if isinstance(frame.schema[column], pl.List):
        return _as_string_list(frame, column), True
    return _as_string(frame, column, source.key, "categorical feature"), False
