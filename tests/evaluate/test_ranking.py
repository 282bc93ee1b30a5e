"""Full-catalogue ranking: tie policy, exclusions, PAD/UNK, NaN, and invariance properties."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from intentrec.evaluate import ranking
from intentrec.evaluate.ranking import seen_mask, target_ranks, topk_items

NEG_INF = float("-inf")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(ranking, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0


def test_strictly_best_target_has_rank_1() -> None:
    scores = torch.tensor([[100.0, 100.0, 0.9, 0.1, 0.2]])  # PAD/UNK scores are ignored even if huge
    assert target_ranks(scores, torch.tensor([2])).tolist() == [1]


def test_target_tied_with_two_others_gets_rank_3() -> None:
    scores = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.5, 0.1]])
    assert target_ranks(scores, torch.tensor([3])).tolist() == [3]
    # one strictly higher + two ties -> 4
    scores = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.5, 0.9]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [4]


def test_hand_computed_batch() -> None:
    scores = torch.tensor(
        [
            [0.0, 0.0, 0.3, 0.2, 0.1, 0.4],  # target 4: three higher -> 4
            [0.0, 0.0, 0.3, 0.2, 0.1, 0.4],  # target 5: best -> 1
            [9.0, 9.0, 0.3, 0.3, 0.3, 0.3],  # all tied -> 4 (the catalogue size)
        ]
    )
    assert target_ranks(scores, torch.tensor([4, 5, 2])).tolist() == [4, 1, 4]


def test_pad_and_unk_never_ranked() -> None:
    scores = torch.tensor([[5.0, 5.0, 1.0, 0.0]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [1]
    # with no invalid columns they would count
    assert target_ranks(scores, torch.tensor([2]), invalid_columns=()).tolist() == [3]


def test_target_in_invalid_column_raises() -> None:
    with pytest.raises(ValueError, match="PAD/UNK"):
        target_ranks(torch.zeros(1, 5), torch.tensor([1]))
    with pytest.raises(ValueError, match="range"):
        target_ranks(torch.zeros(1, 5), torch.tensor([5]))
    with pytest.raises(ValueError, match="shape"):
        target_ranks(torch.zeros(2, 5), torch.tensor([2]))


def test_exclusions_remove_items_but_never_the_target() -> None:
    scores = torch.tensor([[0.0, 0.0, 0.9, 0.8, 0.7, 0.6]])
    target = torch.tensor([5])
    assert target_ranks(scores, target).tolist() == [4]
    exclude = torch.tensor([[False, False, True, True, False, True]])  # target's own flag is ignored
    assert target_ranks(scores, target, exclude).tolist() == [2]
    # excluded items that tie with the target do not count either
    scores = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.5]])
    exclude = torch.tensor([[False, False, False, True, False]])
    assert target_ranks(scores, torch.tensor([2]), exclude).tolist() == [2]


def test_nan_scores_count_as_minus_inf() -> None:
    nan = float("nan")
    scores = torch.tensor([[0.0, 0.0, nan, 0.5, 0.1, nan]])
    assert target_ranks(scores, torch.tensor([4])).tolist() == [2]  # NaN items rank below
    # a NaN target ties with the other NaN item and ranks last
    assert target_ranks(scores, torch.tensor([2])).tolist() == [4]
    # excluded items do not tie with a -inf target
    exclude = torch.tensor([[False, False, False, True, False, True]])
    assert target_ranks(scores, torch.tensor([2]), exclude).tolist() == [2]


def test_integer_and_half_scores() -> None:
    assert target_ranks(torch.tensor([[0, 0, 3, 5, 3]]), torch.tensor([2])).tolist() == [3]
    assert target_ranks(torch.tensor([[0, 0, 3, 5, 3]], dtype=torch.float16), torch.tensor([3])).tolist() == [1]


def test_empty_batch() -> None:
    assert target_ranks(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)).shape == (0,)


def test_seen_mask_ignores_pad_and_duplicates() -> None:
    hist = torch.tensor([[0, 0, 2, 4, 2], [3, 3, 3, 3, 3], [0, 0, 0, 0, 0]])
    mask = seen_mask(hist, 6)
    assert mask.tolist() == [
        [False, False, True, False, True, False],
        [False, False, False, True, False, False],
        [False] * 6,
    ]
    with pytest.raises(ValueError):
        seen_mask(torch.tensor([[7]]), 6)


def test_seen_mask_with_ranks_end_to_end() -> None:
    scores = torch.tensor([[0.0, 0.0, 0.9, 0.8, 0.7, 0.6]])
    hist = torch.tensor([[0, 2, 3, 5]])  # the target (5) was seen before: still ranked
    assert target_ranks(scores, torch.tensor([5]), seen_mask(hist, 6)).tolist() == [2]


def test_topk_items_excludes_and_orders_ties_by_index() -> None:
    scores = torch.tensor([[9.0, 9.0, 0.5, 0.7, 0.7, 0.1]])
    values, idx = topk_items(scores, 3)
    assert idx.tolist() == [[3, 4, 2]]
    assert values[0].tolist() == pytest.approx([0.7, 0.7, 0.5])
    exclude = torch.tensor([[False, False, False, True, False, False]])
    _, idx = topk_items(scores, 2, exclude)
    assert idx.tolist() == [[4, 2]]


def test_topk_items_short_rows_pad_with_minus_inf_never_invalid() -> None:
    scores = torch.tensor([[9.0, 9.0, 0.5, 0.7, 0.1]])
    exclude = torch.tensor([[False, False, True, True, False]])
    values, idx = topk_items(scores, 3, exclude)
    assert idx[0, 0].item() == 4
    assert values[0, 1:].tolist() == [NEG_INF, NEG_INF]
    assert not set(idx.flatten().tolist()) & {0, 1}
    with pytest.raises(ValueError):
        topk_items(scores, 4)


# ------------------------------------------------------------------------------------------------------
# properties
# ------------------------------------------------------------------------------------------------------

_score_rows = st.integers(min_value=3, max_value=30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(min_value=-3, max_value=3), min_size=n, max_size=n),  # small range: many ties
        st.integers(min_value=2, max_value=n - 1),
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.randoms(use_true_random=False),
    )
)


def _brute_force_rank(scores: list[float], target: int, exclude: list[bool]) -> int:
    t = scores[target]
    rank = 1
    for j, s in enumerate(scores):
        if j in (0, 1) or j == target or exclude[j]:
            continue
        if s >= t:
            rank += 1
    return rank


@settings(max_examples=150, deadline=None)
@given(_score_rows)
def test_rank_matches_brute_force_and_bounds(data: tuple) -> None:
    raw, target, exclude, _ = data
    scores = torch.tensor([raw], dtype=torch.float32)
    ex = torch.tensor([exclude])
    rank = int(target_ranks(scores, torch.tensor([target]), ex)[0])
    assert rank == _brute_force_rank(raw, target, exclude)
    n_ranked = sum(1 for j in range(2, len(raw)) if j == target or not exclude[j])
    assert 1 <= rank <= n_ranked <= len(raw) - 2


@settings(max_examples=150, deadline=None)
@given(_score_rows)
def test_permuting_non_target_scores_keeps_the_rank(data: tuple) -> None:
    raw, target, _, rnd = data
    scores = torch.tensor([raw], dtype=torch.float32)
    others = [j for j in range(2, len(raw)) if j != target]
    shuffled = others[:]
    rnd.shuffle(shuffled)
    permuted = scores.clone()
    permuted[0, others] = scores[0, shuffled]
    t = torch.tensor([target])
    assert target_ranks(permuted, t).tolist() == target_ranks(scores, t).tolist()


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=20), st.integers(min_value=0, max_value=2**31 - 1))
def test_vectorised_rows_equal_single_rows(n_rows: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (n_rows, 12), generator=gen).float()
    targets = torch.randint(2, 12, (n_rows,), generator=gen)
    exclude = torch.rand(n_rows, 12, generator=gen) < 0.3
    batch = target_ranks(scores, targets, exclude)
    single = [int(target_ranks(scores[i : i + 1], targets[i : i + 1], exclude[i : i + 1])[0]) for i in range(n_rows)]
    assert batch.tolist() == single


def test_large_random_against_numpy() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, size=(64, 500)).astype(np.float32)
    targets = rng.integers(2, 500, size=64)
    ranks = target_ranks(torch.from_numpy(scores), torch.from_numpy(targets))
    t = scores[np.arange(64), targets][:, None]
    expected = (scores[:, 2:] >= t).sum(axis=1)
    assert ranks.numpy().tolist() == expected.tolist()
