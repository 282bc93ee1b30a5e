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

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from intentrec.errors import SchemaError

__all__ = [
    "ACTION",
    "DURATION",
    "DURATION_MAX",
    "INTERNAL_PREFIX",
    "ITEM_ID",
    "ROW",
    "SESSION_ID",
    "TIMESTAMP",
    "USER_ID",
    "closest_column",
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
DURATION_MAX = 1e10
"""Engagement values above this are absurd in any unit (317 years in seconds, 116 days in milliseconds): they are
treated as invalid (set to null and counted, then filled with the training median), like NaN and negatives."""

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


def _normalised(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def closest_column(wanted: str, available: Iterable[str]) -> str | None:
    """The available column most likely meant by ``wanted`` (``userId`` for ``user_id``), or None.

    A name equal up to case, ``_``, ``-``, spaces and dots wins; otherwise the closest by :mod:`difflib` (ratio
    >= 0.6).
    """
    have = list(available)
    key = _normalised(wanted)
    for name in have:
        if key and _normalised(name) == key:
            return name
    close = difflib.get_close_matches(wanted, have, n=1, cutoff=0.6)
    if close:
        return close[0]
    by_key = difflib.get_close_matches(key, [_normalised(n) for n in have], n=1, cutoff=0.6)
    if by_key:
        return next(n for n in have if _normalised(n) == by_key[0])
    return None


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
        SchemaError: a column is missing; the message names it, the file, the available columns, the closest
            available name (a column another required field already uses is never suggested) and the key to set.
    """
    have = list(available)
    for column, key in required.items():
        if column not in have:
            spare = [c for c in public_columns(have) if c not in required]
            guess = closest_column(column, spare)
            hint = (f"Did you mean {guess!r}? Fix: set {key}: {guess} (or rename the column to {column!r})."
                    if guess is not None else
                    f"Fix: set {key} to the name of the column that holds this field.")
            raise SchemaError(
                f"{what} {origin}: column {column!r} not found. Available columns: {have}. {hint}"
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
