"""Comparing models on the same evaluation targets (EVALUATION.md "Significance and reporting").

numpy/scipy only. Per-target arrays come from :mod:`intentrec.evaluate.metrics` (e.g. ``ndcg_at_k(ranks, 10)``)
for two models evaluated on the *same* targets in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["bootstrap_ci", "mean_std", "paired_t_test", "relative_improvement"]

_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 22  # cap on the (resamples, P) index block held at once


def _paired(a: Any, b: Any) -> np.ndarray:
    """Paired differences ``a - b`` as a float64 vector, validated."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)  # (P,)
    y = np.asarray(b, dtype=np.float64).reshape(-1)  # (P,)
    if x.shape != y.shape:
        raise ValueError(
            f"paired comparison needs per-target values for the same targets: got {x.size} and {y.size} values"
        )
    if x.size < 2:
        raise ValueError(f"paired comparison needs at least 2 targets, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("per-target values must be finite (drop or fill NaN values first)")
    return x - y  # (P,)


def paired_t_test(a: Any, b: Any) -> tuple[float, float]:
    """Two-sided paired t-test of ``mean(a - b) = 0`` (``scipy.stats.ttest_rel``).

    Degenerate cases never return NaN: identical arrays give ``(0.0, 1.0)``; a constant non-zero difference
    gives ``(±inf, 0.0)``.

    Args:
        a: (P,) per-target values of model A (e.g. NDCG@10).
        b: (P,) per-target values of model B on the same targets.

    Returns:
        ``(t, p)``: the t statistic (positive when A is better) and the two-sided p-value.

    Raises:
        ValueError: different lengths, fewer than 2 targets, or non-finite values.

    Example:
        >>> paired_t_test([0.5, 0.2, 1.0], [0.5, 0.2, 1.0])
        (0.0, 1.0)
    """
    d = _paired(a, b)  # (P,)
    if np.all(d == 0.0):
        return 0.0, 1.0
    if np.all(d == d[0]):
        return math.copysign(math.inf, float(d[0])), 0.0
    res = stats.ttest_rel(np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1))
    return float(res.statistic), float(res.pvalue)


def bootstrap_ci(
    a: Any, b: Any, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of the mean paired difference ``mean(a - b)``.

    Targets are resampled with replacement (``numpy.random.default_rng(seed)``), so the result depends only on
    the inputs, ``n_resamples`` and ``seed``.

    Args:
        a: (P,) per-target values of model A.
        b: (P,) per-target values of model B on the same targets.
        n_resamples: bootstrap resamples (EVALUATION.md asks for >= 1,000).
        seed: seed of the resampling.
        level: confidence level in (0, 1).

    Returns:
        ``(mean_diff, lo, hi)``: the observed mean difference and the interval bounds.

    Raises:
        ValueError: bad inputs (see :func:`paired_t_test`), ``n_resamples < 1`` or ``level`` outside (0, 1).

    Example:
        >>> bootstrap_ci([1.0, 1.0, 1.0], [0.5, 0.5, 0.5])
        (0.5, 0.5, 0.5)
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = _paired(a, b)  # (P,)
    n = d.size
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)  # (R,)
    step = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))  # (r, P)
        means[start:stop] = d[idx].mean(axis=1)  # (r,)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(d.mean()), float(lo), float(hi)


def relative_improvement(model: float | None, reference: float | None) -> float | None:
    """``(model - reference) / reference``, as the paper reports it (0.05 = +5%).

    Args:
        model: the metric of the model.
        reference: the metric of the reference model.

    Returns:
        The relative change, or ``None`` when it is undefined: ``reference`` is 0, either value is None,
        NaN or infinite. ``None`` serialises to JSON ``null`` (NaN is not valid JSON).

    Example:
        >>> round(relative_improvement(0.21, 0.20), 4)
        0.05
        >>> relative_improvement(0.1, 0.0) is None
        True
    """
    if model is None or reference is None:
        return None
    m, r = float(model), float(reference)
    if not (math.isfinite(m) and math.isfinite(r)) or r == 0.0:
        return None
    return (m - r) / r


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) over runs, e.g. seeds.

    Args:
        values: one metric value per run.

    Returns:
        ``(mean, std)``; ``std`` is 0.0 for a single run.

    Raises:
        ValueError: no values, or a non-finite value.

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    x = np.asarray(list(values), dtype=np.float64).reshape(-1)  # (S,)
    if x.size == 0:
        raise ValueError("mean_std needs at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError("mean_std values must be finite")
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return float(x.mean()), std
