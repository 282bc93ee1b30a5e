"""Paired significance tests, bootstrap CIs, relative improvement and seed aggregation."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats

from intentrec.evaluate import compare
from intentrec.evaluate.compare import bootstrap_ci, mean_std, paired_t_test, relative_improvement


def test_docstring_examples_run() -> None:
    result = doctest.testmod(compare)
    assert result.attempted > 0 and result.failed == 0


def test_paired_t_test_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(200)
    b = a - 0.05 + rng.normal(0, 0.1, 200)
    t, p = paired_t_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)
    assert t > 0 and p < 0.01


def test_paired_t_test_degenerate_cases() -> None:
    a = [0.1, 0.5, 0.3]
    assert paired_t_test(a, a) == (0.0, 1.0)
    t, p = paired_t_test([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert t == math.inf and p == 0.0
    with pytest.raises(ValueError):
        paired_t_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        paired_t_test([1.0], [1.0])
    with pytest.raises(ValueError):
        paired_t_test([1.0, float("nan")], [1.0, 2.0])


def test_bootstrap_ci_contains_mean_and_is_seeded() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(300)
    b = rng.random(300)
    mean, lo, hi = bootstrap_ci(a, b, n_resamples=1000, seed=7)
    assert mean == pytest.approx(float(np.mean(a - b)))
    assert lo < mean < hi
    assert bootstrap_ci(a, b, n_resamples=1000, seed=7) == (mean, lo, hi)
    assert bootstrap_ci(a, b, n_resamples=1000, seed=8) != (mean, lo, hi)
    # a wider level gives a wider interval
    _, lo99, hi99 = bootstrap_ci(a, b, n_resamples=1000, seed=7, level=0.99)
    assert lo99 <= lo and hi99 >= hi


def test_bootstrap_ci_identical_is_zero() -> None:
    a = [0.2, 0.4, 0.9]
    assert bootstrap_ci(a, a) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        bootstrap_ci(a, a, level=1.0)
    with pytest.raises(ValueError):
        bootstrap_ci(a, a, n_resamples=0)


def test_relative_improvement() -> None:
    assert relative_improvement(0.3, 0.2) == pytest.approx(0.5)
    assert relative_improvement(0.1, 0.2) == pytest.approx(-0.5)
    assert relative_improvement(0.1, 0.0) is None
    assert relative_improvement(None, 0.2) is None
    assert relative_improvement(0.1, None) is None
    assert relative_improvement(float("nan"), 0.2) is None


def test_mean_std() -> None:
    mean, std = mean_std([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0)  # sample std (ddof=1)
    assert mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        mean_std([])
