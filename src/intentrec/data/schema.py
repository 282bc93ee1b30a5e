"""Canonical column names of the interaction and item frames, and their validation.

Every adapter turns its source into two canonical Polars frames:

* **interactions** — ``user_id`` (Utf8), ``item_id`` (Utf8), ``timestamp`` (Float64 seconds since the epoch, or
  the event's order index within the user for untimed data), ``_row`` (Int64 original row number, used to report
  rows in errors and as the last sort key), and optionally ``action`` (Utf8), ``duration`` (Float64),
  ``session_id`` (Utf8) plus any extra columns kept from the source;
* **items** — ``item_id`` (Utf8) plus attributes: categorical Utf8, multi-valued List(Utf8), numeric, and dates as
  Float64 seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from intentrec.errors import SchemaError

__all__ = [
    "ACTION",
    "DURATION",
    "INTERNAL_PREFIX",
    "ITEM_ID",
    "ROW",
    "SESSION_ID",
    "TIMESTAMP",
    "USER_ID",
    "public_columns",
    "require_columns",
    "validate_interactions",
    "validate_items",
]

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
ACTION = "action"
DURATION = "duration"
SESSION_ID = "session_id"
ROW = "_row"
INTERNAL_PREFIX = "_"
"""Columns starting with an underscore are bookkeeping, never attributes."""

_INTERACTION_DTYPES: dict[str, type[pl.DataType] | pl.DataType] = {
    USER_ID: pl.String,
    ITEM_ID: pl.String,
    TIMESTAMP: pl.Float64,
    ROW: pl.Int64,
}
_OPTIONAL_DTYPES: dict[str, type[pl.DataType] | pl.DataType] = {
    ACTION: pl.String,
    DURATION: pl.Float64,
    SESSION_ID: pl.String,
}


def public_columns(columns: Iterable[str]) -> list[str]:
    """The column names a user may refer to (bookkeeping columns starting with ``_`` removed)."""
    return [c for c in columns if not c.startswith(INTERNAL_PREFIX)]


def require_columns(
    available: Iterable[str], required: Mapping[str, str], *, origin: str | Path, what: str = "file"
) -> None:
    """Check that every required column exists.

    Args:
        available: the columns the table has.
        required: column name -> the config key that names it (e.g. ``data.source.columns.user_id``).
        origin: the file (or description) the table came from, for the message.
        what: what the table is ("interactions file", "item file"), for the message.

    Raises:
        SchemaError: a column is missing; the message names it, the file, the available columns and the key to set.
    """
    have = list(available)
    for column, key in required.items():
        if column not in have:
            raise SchemaError(
                f"{what} {origin}: column {column!r} not found. Available columns: {have}. "
                f"Fix: set {key} to the name of the column that holds this field."
            )


def _check_dtypes(
    frame: pl.DataFrame, dtypes: Mapping[str, type[pl.DataType] | pl.DataType], origin: str, optional: bool
) -> None:
    for column, dtype in dtypes.items():
        if column not in frame.columns:
            if optional:
                continue
            raise SchemaError(
                f"{origin}: canonical column {column!r} is missing (columns: {frame.columns}); "
                "the adapter must provide it"
            )
        if frame.schema[column] != dtype:
            raise SchemaError(
                f"{origin}: canonical column {column!r} has type {frame.schema[column]}, expected {dtype}"
            )


def validate_interactions(frame: pl.DataFrame, origin: str) -> None:
    """Check the canonical interaction frame (column names and types).

    Raises:
        SchemaError: a canonical column is missing or has the wrong type.
    """
    _check_dtypes(frame, _INTERACTION_DTYPES, origin, optional=False)
    _check_dtypes(frame, _OPTIONAL_DTYPES, origin, optional=True)


def validate_items(frame: pl.DataFrame, origin: str) -> None:
    """Check the canonical item frame: a Utf8 ``item_id`` column.

    Raises:
        SchemaError: ``item_id`` is missing or not a string column.
    """
    _check_dtypes(frame, {ITEM_ID: pl.String}, origin, optional=False)
