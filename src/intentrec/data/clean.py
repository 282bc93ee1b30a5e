"""Cleaning: stable time order, duplicate removal, k-core, latest-n and minimum events per user.

Every removal is counted in the ``report`` dict passed in, so nothing disappears silently.
"""

from __future__ import annotations

import polars as pl

from intentrec.config import CleanConfig
from intentrec.data.schema import ACTION, ITEM_ID, ROW, TIMESTAMP, USER_ID
from intentrec.errors import DataError

__all__ = ["clean", "dedupe", "drop_short_users", "k_core", "keep_latest", "nothing_left", "sort_events"]


def _add(report: dict[str, int], key: str, value: int) -> None:
    report[key] = report.get(key, 0) + int(value)  # zeros too: the report lists every step that ran


def sort_events(frame: pl.DataFrame) -> pl.DataFrame:
    """Stable sort by (user, timestamp, original row): the one event order used everywhere downstream."""
    return frame.sort([USER_ID, TIMESTAMP, ROW], maintain_order=True)


def k_core(frame: pl.DataFrame, k: int, report: dict[str, int]) -> pl.DataFrame:
    """Iteratively keep users and items with at least ``k`` events until both conditions hold.

    Args:
        frame: interactions.
        k: minimum events per user and per item (0 or 1 = no-op).
        report: receives ``kcore_events_removed``, ``kcore_users_removed``, ``kcore_items_removed``.

    Returns:
        The k-core (order preserved); possibly empty.
    """
    if k <= 1:
        return frame
    users0, items0, n0 = frame[USER_ID].n_unique(), frame[ITEM_ID].n_unique(), frame.height
    while True:
        kept = frame.filter((pl.len().over(USER_ID) >= k) & (pl.len().over(ITEM_ID) >= k))
        if kept.height == frame.height:
            break
        frame = kept
    _add(report, "kcore_events_removed", n0 - frame.height)
    _add(report, "kcore_users_removed", users0 - frame[USER_ID].n_unique())
    _add(report, "kcore_items_removed", items0 - frame[ITEM_ID].n_unique())
    return frame


def dedupe(frame: pl.DataFrame, report: dict[str, int]) -> pl.DataFrame:
    """Drop exact duplicates of (user, item, timestamp[, action]), keeping the first (``duplicates_dropped``)."""
    subset = [USER_ID, ITEM_ID, TIMESTAMP] + ([ACTION] if ACTION in frame.columns else [])
    n = frame.height
    frame = frame.unique(subset=subset, keep="first", maintain_order=True)
    _add(report, "duplicates_dropped", n - frame.height)
    return frame


def keep_latest(frame: pl.DataFrame, n_max: int, report: dict[str, int]) -> pl.DataFrame:
    """Keep each user's latest ``n_max`` events of a (user, time)-sorted frame (``events_dropped_max_per_user``)."""
    n = frame.height
    rank = pl.int_range(pl.len()).over(USER_ID)
    n_user = pl.len().over(USER_ID).cast(pl.Int64)  # u32 would wrap below zero
    frame = frame.filter(rank >= n_user - n_max)
    _add(report, "events_dropped_max_per_user", n - frame.height)
    return frame


def drop_short_users(frame: pl.DataFrame, n_min: int, report: dict[str, int]) -> pl.DataFrame:
    """Drop users with fewer than ``n_min`` events (``users_dropped_min_events``, ``events_dropped_min_events``)."""
    counts = pl.len().over(USER_ID)
    users_before, n = frame[USER_ID].n_unique(), frame.height
    frame = frame.filter(counts >= n_min)
    _add(report, "users_dropped_min_events", users_before - frame[USER_ID].n_unique())
    _add(report, "events_dropped_min_events", n - frame.height)
    return frame


def clean(frame: pl.DataFrame, cfg: CleanConfig, report: dict[str, int], *, origin: str = "") -> pl.DataFrame:
    """Apply the cleaning steps of ``data.clean`` in order.

    1. stable sort by (user, timestamp, original row);
    2. drop exact duplicates of (user, item, timestamp[, action]) when ``dedupe`` (first kept);
    3. iterative ``k_core`` on users and items;
    4. keep each user's latest ``max_events_per_user`` events;
    5. drop users with fewer than ``min_events_per_user`` events.

    Args:
        frame: canonical interactions.
        cfg: the ``data.clean`` section.
        report: receives a count for every removal.
        origin: dataset name for messages.

    Returns:
        The cleaned interactions in (user, time, row) order.

    Raises:
        DataError: nothing is left after cleaning.
    """
    frame = sort_events(frame)
    report["events_read"] = frame.height
    report["users_read"] = frame[USER_ID].n_unique()
    report["items_read"] = frame[ITEM_ID].n_unique()
    if cfg.dedupe:
        frame = dedupe(frame, report)
    frame = k_core(frame, cfg.k_core, report)
    if cfg.max_events_per_user is not None:
        frame = keep_latest(frame, cfg.max_events_per_user, report)
    if cfg.min_events_per_user > 1:
        frame = drop_short_users(frame, cfg.min_events_per_user, report)
    if frame.height == 0:
        raise nothing_left(cfg, origin)
    return frame


def nothing_left(cfg: CleanConfig, origin: str) -> DataError:
    """The error raised when cleaning removed every event."""
    return DataError(
        f"{origin}: no events left after cleaning (k_core={cfg.k_core}, min_events_per_user="
        f"{cfg.min_events_per_user}, max_events_per_user={cfg.max_events_per_user}); relax data.clean"
    )
