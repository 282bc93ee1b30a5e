"""Session numbers within each user (0, 1, 2, ...)."""

from __future__ import annotations

import polars as pl

from intentrec.config import SessionConfig, parse_duration
from intentrec.data.schema import SESSION_ID, TIMESTAMP, USER_ID

__all__ = ["SESSION", "assign_sessions"]

SESSION = "_session"
"""Column holding the session number within the user (Int64)."""


def assign_sessions(frame: pl.DataFrame, cfg: SessionConfig, *, timed: bool) -> pl.DataFrame:
    """Number each user's sessions 0, 1, 2, ... in event order.

    A new session starts at a user's first event and then:

    * when ``session_id`` exists: whenever it differs from the previous event's ``session_id``;
    * else, for timed data: when the gap to the previous event exceeds ``cfg.gap``;
    * else (untimed, no session id): never — one session per user.

    Args:
        frame: interactions sorted by (user, time).
        cfg: the ``data.sessions`` section.
        timed: whether ``timestamp`` holds real seconds.

    Returns:
        ``frame`` with an Int64 column ``_session``.
    """
    first = pl.int_range(pl.len()).over(USER_ID) == 0
    if SESSION_ID in frame.columns:
        sid = pl.col(SESSION_ID)
        changed = sid.ne_missing(sid.shift(1).over(USER_ID))
        starts = first | changed
    elif timed:
        gap = parse_duration(cfg.gap)
        delta = pl.col(TIMESTAMP) - pl.col(TIMESTAMP).shift(1).over(USER_ID)
        starts = first | (delta > gap).fill_null(False)
    else:
        starts = first
    return (
        frame.with_columns(starts.cast(pl.Int64).alias("_start"))
        .with_columns((pl.col("_start").cum_sum().over(USER_ID) - 1).alias(SESSION))
        .drop("_start")
    )
