"""What preparation returns (:class:`Prepared`) and small helpers shared by the in-memory and chunked builders."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from intentrec.data.schema import ITEM_ID
from intentrec.structs import EncodedSequences

__all__ = ["NAME_COLUMNS", "Prepared", "Progress", "item_names", "user_offsets"]


@dataclass(frozen=True)
class Prepared:
    """Prepared sequences plus what happened on the way."""

    data: EncodedSequences
    """The encoded sequences."""
    report: dict[str, int]
    """Every repair and removal made during preparation, by name (e.g. ``duplicates_dropped``)."""
    stats: dict[str, Any]
    """Extra facts for ``describe`` (distinct items after cleaning, cut-offs, numeric min/max)."""
    cached: bool = False
    """True when loaded from the cache."""


class Progress:
    """Stage timings printed to stderr (a no-op when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        """Print ``message`` with the seconds since this object was made."""
        if self.enabled:
            print(f"[data {time.perf_counter() - self.start:6.2f}s] {message}", file=sys.stderr, flush=True)


def user_offsets(users: pl.Series) -> tuple[tuple[str, ...], np.ndarray]:
    """Raw ids and CSR offsets of the users of a frame sorted by user.

    Returns:
        ``(user_ids, offsets)``: U ids in order of appearance and (U + 1,) int64 offsets.
    """
    starts = users.ne_missing(users.shift(1)).fill_null(True).to_numpy()  # (N,)
    first = np.nonzero(starts)[0].astype(np.int64)  # (U,)
    offsets = np.append(first, len(users)).astype(np.int64)  # (U + 1,)
    user_ids = tuple(users.gather(first).to_list())
    return user_ids, offsets


NAME_COLUMNS = ("title", "name")
"""Item-metadata columns used as display names, in order of preference."""


def item_names(items: pl.DataFrame | None, ids: tuple[str, ...]) -> tuple[str, ...]:
    """Display names aligned with the item vocabulary (``()`` when the metadata has no title/name column)."""
    if items is None:
        return ()
    column = next((c for c in NAME_COLUMNS if c in items.columns and c != ITEM_ID), None)
    if column is None:
        return ()
    names = dict(zip(items[ITEM_ID].cast(pl.String).to_list(), items[column].cast(pl.String).to_list(), strict=True))
    return tuple(names.get(i) or "" for i in ids)
