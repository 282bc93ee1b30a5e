"""Exact quantiles and medians of data seen in chunks, with bounded memory (a multi-pass radix selection).

Out-of-core preparation needs the same numbers as ``np.quantile`` (temporal cut-offs) and ``np.median``
(duration median) over all events without holding all of them. :func:`order_statistics` finds the values at given
ranks of the ascending order by reading the chunks a few times: each pass narrows every wanted rank to one bucket
of the next 16 bits of the values' order-preserving 64-bit keys, until a bucket holds at most ``limit`` values,
which are then sorted. :func:`quantile` and :func:`median` combine those values with numpy's own arithmetic, so the
results are bit-identical to ``np.quantile(x, q)`` (``linear`` method) and ``np.median(x)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["median", "order_statistics", "quantile", "quantiles"]

Chunks = Callable[[], Iterable[np.ndarray]]
"""Called once per pass; yields the (n_i,) float64 chunks of the data, the same values on every call."""

_BITS = 16
_SIGN = np.uint64(1 << 63)


def _keys(values: np.ndarray) -> np.ndarray:
    """(n,) uint64 keys whose unsigned order is the float order (NaN-free input)."""
    u = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)  # (n,)
    return np.where(u & _SIGN, ~u, u | _SIGN)


@dataclass
class _Target:
    rank: int
    """Rank still to find within the values matching ``prefix``."""
    count: int
    """Number of values matching ``prefix``."""
    prefix: int = 0
    fixed: int = 0
    """Leading key bits fixed by ``prefix``."""
    value: float | None = None


def _matching(keys: np.ndarray, t: _Target) -> np.ndarray:
    if t.fixed == 0:
        return np.ones(keys.shape, dtype=bool)
    return (keys >> np.uint64(64 - t.fixed)) == np.uint64(t.prefix)


def order_statistics(chunks: Chunks, ranks: Sequence[int], total: int, *, limit: int = 1 << 21) -> list[float]:
    """The values at 0-based ``ranks`` of the ascending order of all chunk values (exact).

    Args:
        chunks: yields the data in chunks; called once per pass (a few passes: 64-bit keys, 16 bits per pass,
            stopping early once a rank's bucket holds at most ``limit`` values).
        ranks: wanted ranks, each in ``[0, total)``.
        total: the number of values (NaN-free).
        limit: most values collected and sorted at once per rank.

    Returns:
        The values, in the order of ``ranks``.

    Raises:
        ValueError: a rank is out of range, or the chunks do not hold ``total`` values.
    """
    if any(not 0 <= r < total for r in ranks):
        raise ValueError(f"ranks {list(ranks)} out of range for {total} values")
    targets = [_Target(rank=int(r), count=total) for r in ranks]
    while any(t.value is None for t in targets):
        todo = [t for t in targets if t.value is None]
        collect = [t.count <= limit or t.fixed >= 64 - _BITS for t in todo]
        hists = [np.zeros(1 << _BITS, dtype=np.int64) for _ in todo]
        found: list[list[np.ndarray]] = [[] for _ in todo]
        for chunk in chunks():
            values = np.asarray(chunk, dtype=np.float64).reshape(-1)  # (n,)
            keys = _keys(values)  # (n,)
            for j, t in enumerate(todo):
                hit = _matching(keys, t)  # (n,)
                if collect[j]:
                    found[j].append(values[hit])
                else:
                    shift = np.uint64(64 - t.fixed - _BITS)
                    digits = ((keys[hit] >> shift) & np.uint64((1 << _BITS) - 1)).astype(np.int64)
                    hists[j] += np.bincount(digits, minlength=1 << _BITS)
        for j, t in enumerate(todo):
            if collect[j]:
                pool = np.sort(np.concatenate(found[j])) if found[j] else np.zeros(0)
                if len(pool) != t.count:
                    raise ValueError("the chunks changed between passes (or do not hold `total` values)")
                t.value = float(pool[t.rank])
                continue
            if int(hists[j].sum()) != t.count:
                raise ValueError("the chunks changed between passes (or do not hold `total` values)")
            cum = np.cumsum(hists[j])  # (65536,)
            digit = int(np.searchsorted(cum, t.rank, side="right"))
            t.rank -= int(cum[digit - 1]) if digit else 0
            t.count = int(hists[j][digit])
            t.prefix = (t.prefix << _BITS) | digit
            t.fixed += _BITS
    return [float(t.value) for t in targets if t.value is not None]


def quantiles(chunks: Chunks, qs: Sequence[float], total: int, *, limit: int = 1 << 21) -> list[float]:
    """``[np.quantile(all values, q) for q in qs]`` (linear interpolation), bit-identical, from chunks.

    The order statistics of every quantile are found in the same passes.

    Args:
        chunks: as :func:`order_statistics`.
        qs: quantiles in [0, 1].
        total: the number of values (> 0).
        limit: as :func:`order_statistics`.
    """
    plans: list[tuple[float, int, float]] = []  # (virtual index, lower rank, gamma); lower rank -1 = the maximum
    ranks: set[int] = set()
    for q in qs:
        virtual = (total - 1) * np.asarray(q, dtype=np.float64)  # numpy's "linear" virtual index
        if virtual >= total - 1:
            plans.append((float(virtual), -1, 0.0))
            ranks.add(total - 1)
            continue
        below = math.floor(float(virtual))
        plans.append((float(virtual), below, float(virtual - below)))
        ranks.update((below, below + 1))
    order = sorted(ranks)
    found = dict(zip(order, order_statistics(chunks, order, total, limit=limit), strict=True))
    out: list[float] = []
    for _, below, gamma in plans:
        if below < 0:
            out.append(found[total - 1])
        else:  # numpy's own interpolation of the two neighbours
            out.append(float(np.quantile(np.array([found[below], found[below + 1]]), gamma)))
    return out


def quantile(chunks: Chunks, q: float, total: int, *, limit: int = 1 << 21) -> float:
    """``np.quantile(all values, q)`` (linear interpolation), bit-identical, from chunks (see :func:`quantiles`)."""
    return quantiles(chunks, [q], total, limit=limit)[0]


def median(chunks: Chunks, total: int, *, limit: int = 1 << 21) -> float:
    """``np.median(all values)``, bit-identical, from chunks (``total`` > 0)."""
    middle = sorted({(total - 1) // 2, total // 2})
    return float(np.median(np.array(order_statistics(chunks, middle, total, limit=limit))))
