"""Time-derived per-position fields: short-term window starts (PAPER Eq. 1), gap buckets, relative times.

All functions take one user's (or one window's) events in time order and are pure numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gap_buckets", "next_gap_buckets", "relative_time", "window_starts"]


def window_starts(
    timestamps: np.ndarray, horizon_seconds: float | None, timed: bool, max_events: int
) -> np.ndarray:
    """pos_k for every position k: the earliest index i <= k with T_k - T_i <= H (PAPER §2, Eq. 1).

    Args:
        timestamps: (n,) float64 non-decreasing event times (seconds), or order indices when untimed.
        horizon_seconds: H; ``None`` turns the window off (every position sees its whole prefix: pos_k = 0).
        timed: False for data that only has an order: the window is then the last ``max_events`` events
            (PAPER §10 #23).
        max_events: m, the window length in events for untimed data.

    Returns:
        (n,) int64 window starts, each in ``[0, k]``.

    Example:
        >>> window_starts(np.array([0.0, 10.0, 20.0, 100.0]), 15.0, True, 10).tolist()
        [0, 0, 1, 3]
        >>> window_starts(np.arange(5.0), None, False, 2).tolist()
        [0, 0, 1, 2, 3]
    """
    n = timestamps.shape[0]
    k = np.arange(n, dtype=np.int64)  # (n,)
    if not timed:
        return np.maximum(k - max_events + 1, 0)
    if horizon_seconds is None:
        return np.zeros(n, dtype=np.int64)
    # earliest i with T_i >= T_k - H; timestamps are sorted, so a binary search per position
    starts = np.searchsorted(timestamps, timestamps - horizon_seconds, side="left").astype(np.int64)  # (n,)
    starts = np.minimum(starts, k)
    # T_k - H is rounded: settle the boundary on the definition T_k - T_i <= H itself (ties move as a block)
    prev = np.maximum(starts - 1, 0)  # (n,)
    back = (starts > 0) & (timestamps - timestamps[prev] <= horizon_seconds)
    starts = np.where(back, np.searchsorted(timestamps, timestamps[prev], side="left"), starts)
    ahead = timestamps - timestamps[starts] > horizon_seconds
    starts = np.where(ahead, np.searchsorted(timestamps, timestamps[starts], side="right"), starts)
    return np.minimum(starts, k).astype(np.int64)


def gap_buckets(timestamps: np.ndarray, n_buckets: int, timed: bool) -> np.ndarray:
    """Log2-bucketed gap (seconds) to the previous event: 0 for the first event, else 1 .. n_buckets - 1.

    Bucket ``1 + floor(log2(1 + gap))``, capped at ``n_buckets - 1`` (PAPER §10 #8). Untimed data: every
    non-first event gets bucket 1.

    Example:
        >>> gap_buckets(np.array([0.0, 0.0, 1.0, 4.0, 1e9]), 32, True).tolist()
        [0, 1, 2, 3, 30]
    """
    n = timestamps.shape[0]
    out = np.zeros(n, dtype=np.int64)  # (n,)
    if n <= 1:
        return out
    if not timed:
        out[1:] = 1
        return out
    out[1:] = _log2_buckets(np.diff(timestamps), n_buckets)  # (n - 1,)
    return out


def _log2_buckets(gaps: np.ndarray, n_buckets: int) -> np.ndarray:
    """``1 + floor(log2(1 + gap))`` of gaps in seconds (negative = 0), capped at ``n_buckets - 1``."""
    gaps = np.maximum(gaps, 0.0)
    return np.minimum(1 + np.floor(np.log2(1.0 + gaps)).astype(np.int64), n_buckets - 1)


def next_gap_buckets(timestamps: np.ndarray, next_times: np.ndarray, n_buckets: int, timed: bool) -> np.ndarray:
    """Log2-bucketed time from each event to the next request (``model.request_gap``): 0 where it is unknown.

    ``next_times[k]`` is when the prediction made after event k is asked for: the next event's time in training and
    evaluation, the request time at a live request's last event. Buckets as :func:`gap_buckets` (a negative
    gap counts as 0 seconds); untimed data: bucket 1 wherever the next time is known.

    Example:
        >>> next_gap_buckets(np.array([0.0, 10.0, 20.0]), np.array([10.0, 20.0, np.nan]), 32, True).tolist()
        [4, 4, 0]
    """
    known = np.isfinite(next_times)  # (n,)
    if not timed:
        return known.astype(np.int64)
    buckets = _log2_buckets(np.where(known, next_times - timestamps, 0.0), n_buckets)  # (n,)
    return np.where(known, buckets, 0).astype(np.int64)


def relative_time(timestamps: np.ndarray, timed: bool) -> np.ndarray:
    """Hours since the window's first event (timed data) or the event's order in the window (untimed).

    Example:
        >>> relative_time(np.array([3600.0, 7200.0, 18000.0]), True).tolist()
        [0.0, 1.0, 4.0]
    """
    n = timestamps.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    if not timed:
        return np.arange(n, dtype=np.float32)
    return ((timestamps - timestamps[0]) / 3600.0).astype(np.float32)
