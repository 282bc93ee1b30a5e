"""AdamW parameter groups and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import doctest
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from intentrec.train import optim
from intentrec.train.optim import build_optimizer, get_lr


def test_docstring_examples_run() -> None:
    result = doctest.testmod(optim, extraglobs={"nn": nn})
    assert result.attempted > 0 and result.failed == 0


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.out = nn.Linear(8, 20, bias=True)
        self.out.weight = self.emb.weight  # tied output layer
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)
        self.query = nn.Parameter(torch.zeros(8))  # 1-D custom parameter


def _ids(params: list[torch.Tensor]) -> set[int]:
    return {id(p) for p in params}


def test_param_groups_split_by_module_type() -> None:
    m = _Tied()
    opt = build_optimizer(m, lr=1e-3, weight_decay=0.1)
    decay, no_decay = opt.param_groups
    assert decay["name"] == "decay" and decay["weight_decay"] == 0.1
    assert no_decay["name"] == "no_decay" and no_decay["weight_decay"] == 0.0
    expected_decay = {id(m.proj.weight), id(m.rnn.weight_ih_l0), id(m.rnn.weight_hh_l0)}
    assert _ids(decay["params"]) == expected_decay
    expected_no_decay = {
        id(m.emb.weight),  # tied with out.weight: follows the embedding, appears once
        id(m.proj.bias),
        id(m.norm.weight),
        id(m.norm.bias),
        id(m.rnn.bias_ih_l0),
        id(m.rnn.bias_hh_l0),
        id(m.out.bias),
        id(m.query),
    }
    assert _ids(no_decay["params"]) == expected_no_decay
    n_trainable = len({id(p) for p in m.parameters() if p.requires_grad})
    assert len(decay["params"]) + len(no_decay["params"]) == n_trainable
    assert isinstance(opt, torch.optim.AdamW)


def test_detection_is_by_type_not_name() -> None:
    m = nn.ModuleDict({"bias_like_name": nn.Linear(4, 4), "weight": nn.Embedding(5, 4)})
    opt = build_optimizer(m, lr=1e-3, weight_decay=0.1)
    assert _ids(opt.param_groups[0]["params"]) == {id(m["bias_like_name"].weight)}


def test_build_optimizer_validates() -> None:
    with pytest.raises(ValueError):
        build_optimizer(nn.Linear(2, 2), lr=0.0, weight_decay=0.0)
    with pytest.raises(ValueError):
        build_optimizer(nn.Linear(2, 2), lr=1e-3, weight_decay=-1.0)
    with pytest.raises(ValueError):
        build_optimizer(nn.Linear(2, 2).requires_grad_(False), lr=1e-3, weight_decay=0.0)


def test_weight_decay_only_touches_the_decay_group() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 3))
    before = [p.detach().clone() for p in m.parameters()]
    opt = build_optimizer(m, lr=0.1, weight_decay=0.5)
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradients: only decoupled weight decay moves parameters
    emb, lin_w, lin_b = m.parameters()
    assert torch.equal(emb, before[0]) and torch.equal(lin_b, before[2])
    assert torch.allclose(lin_w, before[1] * (1 - 0.1 * 0.5))


def test_lr_schedule_endpoints() -> None:
    peak, ratio = 2e-3, 0.05
    assert get_lr(0, 1000, peak, 50, ratio) == 0.0
    assert get_lr(25, 1000, peak, 50, ratio) == pytest.approx(peak / 2)
    assert get_lr(50, 1000, peak, 50, ratio) == pytest.approx(peak)
    mid = 50 + (1000 - 50) // 2
    assert get_lr(mid, 1000, peak, 50, ratio) == pytest.approx(ratio * peak + 0.5 * (peak - ratio * peak), rel=1e-2)
    assert get_lr(1000, 1000, peak, 50, ratio) == pytest.approx(ratio * peak)
    assert get_lr(5000, 1000, peak, 50, ratio) == pytest.approx(ratio * peak)


def test_warmup_is_capped_at_ten_percent() -> None:
    # warmup 1000 requested but only 100 total steps -> 10 warm-up steps
    assert get_lr(10, 100, 1.0, 1000, 0.0) == 1.0
    assert get_lr(5, 100, 1.0, 1000, 0.0) == 0.5
    # fewer than 10 total steps: no warm-up at all
    assert get_lr(0, 5, 1.0, 1000, 0.0) == 1.0


def test_no_warmup_starts_at_peak() -> None:
    assert get_lr(0, 100, 3.0, 0, 0.1) == 3.0


def test_bad_arguments() -> None:
    for kwargs in (
        {"step": -1},
        {"total_steps": 0},
        {"peak_lr": 0.0},
        {"warmup_steps": -1},
        {"min_lr_ratio": 1.5},
    ):
        args = {"step": 1, "total_steps": 10, "peak_lr": 1.0, "warmup_steps": 1, "min_lr_ratio": 0.1} | kwargs
        with pytest.raises(ValueError):
            get_lr(**args)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 2000),
    st.integers(0, 1000),
    st.floats(1e-5, 1.0),
    st.floats(0.0, 1.0),
)
def test_schedule_monotone_and_bounded(total: int, warmup: int, peak: float, ratio: float) -> None:
    w = min(warmup, int(0.1 * total))
    lrs = [get_lr(s, total, peak, warmup, ratio) for s in range(total + 3)]
    assert all(0.0 <= v <= peak * (1 + 1e-12) for v in lrs)
    assert all(a <= b + 1e-15 for a, b in itertools.pairwise(lrs[: w + 1]))  # warm-up rises
    assert all(a >= b - 1e-15 for a, b in itertools.pairwise(lrs[w:]))  # then never rises
    assert lrs[-1] == pytest.approx(ratio * peak)
    assert math.isclose(lrs[w], peak)  # peak right after warm-up (at step 0 without warm-up)
