"""Item and intent metrics: hand-computed values and hypothesis properties."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from intentrec.evaluate import metrics
from intentrec.evaluate.metrics import (
    accuracy,
    hit_at_k,
    macro_f1,
    mrr,
    mrr_at_k,
    multilabel_average_precision,
    multilabel_recall_at_k,
    ndcg_at_k,
    summarize,
)

RANKS = [1, 2, 3, 11]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(metrics)
    assert result.attempted > 0 and result.failed == 0


def test_item_metrics_by_hand() -> None:
    # ranks 1, 2, 3, 11 with k = 10
    assert hit_at_k(RANKS, 10).tolist() == [1.0, 1.0, 1.0, 0.0]
    expected_ndcg = [1.0, 1 / math.log2(3), 1 / math.log2(4), 0.0]  # 1, 0.6309..., 0.5, 0
    assert ndcg_at_k(RANKS, 10) == pytest.approx(expected_ndcg)
    assert ndcg_at_k(RANKS, 10)[1] == pytest.approx(0.6309297535714575)
    assert mrr(RANKS) == pytest.approx([1.0, 0.5, 1 / 3, 1 / 11])
    assert mrr_at_k(RANKS, 10) == pytest.approx([1.0, 0.5, 1 / 3, 0.0])
    assert hit_at_k(RANKS, 2).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert ndcg_at_k(RANKS, 1).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_summarize_by_hand() -> None:
    m = summarize(RANKS, ks=(10, 1))
    assert m["hr@10"] == m["recall@10"] == 0.75
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 0.5) / 4)
    assert m["mrr"] == pytest.approx((1 + 0.5 + 1 / 3 + 1 / 11) / 4)
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 1 / 3) / 4)
    assert m["hr@1"] == m["ndcg@1"] == 0.25
    assert set(m) == {"hr@1", "recall@1", "ndcg@1", "mrr@1", "hr@10", "recall@10", "ndcg@10", "mrr@10", "mrr"}
    assert all(isinstance(v, float) for v in m.values())


def test_accepts_torch_tensors() -> None:
    assert summarize(torch.tensor(RANKS), ks=(10,)) == summarize(np.array(RANKS), ks=(10,))


def test_bad_ranks_and_k() -> None:
    with pytest.raises(ValueError):
        hit_at_k([0, 1], 5)
    with pytest.raises(ValueError):
        ndcg_at_k([1, 2], 0)
    with pytest.raises(ValueError):
        summarize([], ks=(5,))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=50), st.integers(1, 100))
def test_ndcg_in_unit_interval_and_bounded_by_hit(ranks: list[int], k: int) -> None:
    ndcg = ndcg_at_k(ranks, k)
    hr = hit_at_k(ranks, k)
    assert np.all((ndcg >= 0) & (ndcg <= 1))
    assert np.all(ndcg <= hr)
    assert np.all(mrr_at_k(ranks, k) <= ndcg + 1e-12)  # 1/r <= 1/log2(r+1)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.integers(min_value=1, max_value=100))
def test_perfect_ranking_scores_one(n: int, k: int) -> None:
    ones = np.ones(n, dtype=np.int64)
    m = summarize(ones, ks=(k,))
    assert m[f"ndcg@{k}"] == m[f"hr@{k}"] == m["mrr"] == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=50), st.integers(1, 100))
def test_hit_rate_and_ndcg_monotone_in_k(ranks: list[int], k: int) -> None:
    assert np.all(hit_at_k(ranks, k) <= hit_at_k(ranks, k + 1))
    assert np.all(ndcg_at_k(ranks, k) <= ndcg_at_k(ranks, k + 1))
    assert summarize(ranks, (k,))[f"hr@{k}"] <= summarize(ranks, (k + 1,))[f"hr@{k + 1}"]


# ------------------------------------------------------------------------------------------------------
# intents
# ------------------------------------------------------------------------------------------------------


def test_accuracy_ignores_pad_targets() -> None:
    assert accuracy([2, 3, 4], [2, 0, 4]) == 1.0
    assert accuracy([2, 3, 4], [2, 0, 4], ignore_index=None) == pytest.approx(2 / 3)
    assert math.isnan(accuracy([2], [0]))


def test_macro_f1_hand_example() -> None:
    pred = [2, 2, 3, 4, 4, 4, 5]
    true = [2, 3, 3, 4, 2, 4, 0]  # last row has no label (PAD) -> dropped
    # label 2: tp 1, fp 1, fn 1 -> 2/4 = 0.5
    # label 3: tp 1, fp 0, fn 1 -> 2/3
    # label 4: tp 2, fp 1, fn 0 -> 4/5
    # label 6: never true, never predicted -> 0 (zero_division=0)
    expected = (0.5 + 2 / 3 + 0.8 + 0.0) / 4
    assert macro_f1(pred, true, labels=[2, 3, 4, 6]) == pytest.approx(expected)
    # without the unseen label
    assert macro_f1(pred, true, labels=[2, 3, 4]) == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)


def test_macro_f1_prediction_outside_label_set_is_a_miss() -> None:
    # predicting class 9 (not in labels) for a true 2: fn of label 2
    assert macro_f1([9, 2], [2, 2], labels=[2]) == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))


def test_macro_f1_perfect_is_one() -> None:
    y = [2, 3, 4, 2, 3]
    assert macro_f1(y, y, labels=[2, 3, 4]) == 1.0


def test_multilabel_recall_hand_cases() -> None:
    #          PAD   1    2    3    4    5
    scores = [[9.0, 0.1, 0.9, 0.8, 0.2, 0.7], [0.0, 0.5, 0.5, 0.5, 0.1, 0.0]]
    targets = [[3, 4, 0], [2, 0, 0]]
    # row 0: top-2 = {2, 3} -> true {3, 4}: 1/2; top-3 = {2, 3, 5}: 1/2; top-4 adds 4: 2/2
    assert multilabel_recall_at_k(scores, targets, 2)[0] == 0.5
    assert multilabel_recall_at_k(scores, targets, 3)[0] == 0.5
    assert multilabel_recall_at_k(scores, targets, 4)[0] == 1.0
    # row 1: class 2 ties with 1 and 3 -> rank 3 (ties count against the model)
    assert multilabel_recall_at_k(scores, targets, 2)[1] == 0.0
    assert multilabel_recall_at_k(scores, targets, 3)[1] == 1.0


def test_multilabel_rows_without_labels_are_nan() -> None:
    r = multilabel_recall_at_k([[0.0, 1.0, 2.0]], [[0, 0]], 1)
    assert math.isnan(r[0])
    assert math.isnan(multilabel_average_precision([[0.0, 1.0, 2.0]], [[0, 0]])[0])


def test_multilabel_average_precision_hand_cases() -> None:
    #          PAD   1    2    3    4
    scores = [[5.0, 0.9, 0.8, 0.1, 0.7]]  # order: 1, 2, 4, 3
    assert multilabel_average_precision(scores, [[1, 2]])[0] == pytest.approx(1.0)
    assert multilabel_average_precision(scores, [[2, 3]])[0] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert multilabel_average_precision(scores, [[3, 0]])[0] == pytest.approx(1 / 4)
    # duplicates in the target list count once
    assert multilabel_average_precision(scores, [[3, 3]])[0] == pytest.approx(1 / 4)
    # ties: classes 1 and 2 tied at the top, only 2 true -> precision 1/2
    assert multilabel_average_precision([[0.0, 1.0, 1.0, 0.0]], [[2]])[0] == pytest.approx(0.5)


def test_multilabel_single_label_column_and_validation() -> None:
    assert multilabel_recall_at_k([[0.0, 0.2, 0.9]], [2], 1).tolist() == [1.0]
    with pytest.raises(ValueError):
        multilabel_recall_at_k([[0.0, 0.2, 0.9]], [[3]], 1)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 12), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_multilabel_properties(n_classes: int, n_rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(n_rows, n_classes + 1)).astype(np.float64)
    targets = rng.integers(0, n_classes + 1, size=(n_rows, 3))
    targets[:, 0] = rng.integers(1, n_classes + 1, size=n_rows)  # at least one label
    ap = multilabel_average_precision(scores, targets)
    assert np.all((ap > 0) & (ap <= 1))
    prev = np.zeros(n_rows)
    for k in range(1, n_classes + 1):
        rec = multilabel_recall_at_k(scores, targets, k)
        assert np.all((rec >= prev) & (rec <= 1))
        prev = rec
    assert np.all(prev == 1.0)  # k = all classes -> everything retrieved
    # a perfect scorer: true labels strictly above all others
    perfect = np.zeros_like(scores)
    perfect[np.arange(n_rows)[:, None], targets] = 1.0
    perfect[:, 0] = 100.0  # PAD is ignored
    assert np.allclose(multilabel_average_precision(perfect, targets), 1.0)


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    n_classes=st.integers(min_value=2, max_value=9),
    n_rows=st.integers(min_value=1, max_value=6),
)
def test_multilabel_metrics_match_a_brute_force(data: st.DataObject, n_classes: int, n_rows: int) -> None:
    """Ties included (scores drawn from a few values), against a direct per-label loop."""
    scores = np.array(data.draw(st.lists(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=n_classes,
                                                  max_size=n_classes), min_size=n_rows, max_size=n_rows)))
    labels = [data.draw(st.lists(st.integers(1, n_classes - 1), min_size=1, max_size=3, unique=True))
              for _ in range(n_rows)]
    targets = np.zeros((n_rows, 3), dtype=np.int64)
    for r, row in enumerate(labels):
        targets[r, : len(row)] = row
    k = data.draw(st.integers(1, n_classes))
    recall = multilabel_recall_at_k(scores, targets, k)
    ap = multilabel_average_precision(scores, targets)
    for r, row in enumerate(labels):
        s = scores[r, 1:]
        def at_or_above(c: int, among: range | list[int], s: np.ndarray = s) -> int:
            return sum(1 for j in among if s[j - 1] >= s[c - 1])
        everything = range(1, n_classes)
        hits = sum(1 for c in row if at_or_above(c, everything) <= k)
        assert recall[r] == pytest.approx(hits / len(row))
        expected_ap = np.mean([at_or_above(c, row) / at_or_above(c, everything) for c in row])
        assert ap[r] == pytest.approx(expected_ap)
