"""``model.request_gap``: the time from each event to the request its prediction answers (RequestGapEmbedding)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from intentrec.config import ModelConfig
from intentrec.features.windows import next_gap_buckets
from intentrec.model import build_model
from intentrec.model.layers import RequestGapEmbedding
from intentrec.structs import DataSpec, SequenceBatch
from intentrec.testing import (
    overfit,
    random_batch,
    random_spec,
    score_every_position,
    tiny_model_config,
    with_left_padding,
)

B, N = 3, 10
CASES = [
    pytest.param("intentrec", {"variant": "V3"}, id="intentrec-V3"),
    pytest.param("intentrec", {"variant": "V1"}, id="intentrec-V1"),
    pytest.param("intentrec", {"variant": "V0", "item_head": "linear"}, id="intentrec-V0-linear"),
    pytest.param("sasrec", {}, id="sasrec"),
    pytest.param("gru", {}, id="gru"),
    pytest.param("transact", {"transact_k": 3}, id="transact"),
]


def _gap_modules(model: nn.Module) -> list[RequestGapEmbedding]:
    return [m for m in model.modules() if isinstance(m, RequestGapEmbedding)]


def _model(spec: DataSpec, architecture: str, overrides: dict[str, object], *, gap: bool = True,
           active: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(architecture=architecture, request_gap=gap, **overrides), spec).eval()
    if gap and active:  # leave the zero start, so the embedding is visible
        for module in _gap_modules(model):
            with torch.no_grad():
                module.weight.normal_(0.0, 1.0)
    return model


def _with_gaps(batch: SequenceBatch, seed: int) -> SequenceBatch:
    """Distinct known buckets at every real position (random_batch fills them from its own gaps already)."""
    g = torch.Generator().manual_seed(seed)
    buckets = torch.randint(1, 32, batch.valid.shape, generator=g)  # (B, n)
    return replace(batch, next_gap_bucket=torch.where(batch.valid, buckets, torch.zeros_like(buckets)))


@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_zero_start_scores_exactly_like_the_model_without_it(architecture: str, overrides: dict[str, object]) -> None:
    spec = random_spec()
    batch = _with_gaps(random_batch(spec, B, N, seed=1, pad_left=[0, 2, 5]), seed=1)
    with_gap = _model(spec, architecture, overrides, active=False)
    without = _model(spec, architecture, overrides, gap=False)
    assert len(_gap_modules(with_gap)) == (2 if overrides.get("variant") == "V3" else 1)
    with torch.no_grad():
        torch.testing.assert_close(score_every_position(with_gap, batch), score_every_position(without, batch))


@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_a_position_s_gap_changes_that_prediction_and_later_ones_only(
    architecture: str, overrides: dict[str, object]
) -> None:
    spec = random_spec()
    model = _model(spec, architecture, overrides)
    batch = _with_gaps(random_batch(spec, B, N, seed=2, pad_left=0), seed=2)
    k = 6
    moved = replace(batch, next_gap_bucket=batch.next_gap_bucket.clone())
    moved.next_gap_bucket[:, k] = torch.where(batch.next_gap_bucket[:, k] == 3, 20, 3)
    with torch.no_grad():
        before, after = score_every_position(model, batch), score_every_position(model, moved)
    torch.testing.assert_close(before[:, :k], after[:, :k])  # earlier predictions never see it (no padding here)
    assert (before[:, k] - after[:, k]).abs().max() > 1e-3  # the prediction at k reads its own request time


@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_future_items_never_change_an_earlier_prediction_and_padding_changes_nothing(
    architecture: str, overrides: dict[str, object]
) -> None:
    spec = random_spec()
    model = _model(spec, architecture, overrides)
    batch = _with_gaps(random_batch(spec, B, N, seed=4, pad_left=[0, 1, 3]), seed=4)
    k = 6
    item_idx = batch.item_idx.clone()
    item_idx[:, k + 1 :] = torch.randint(2, spec.n_items, item_idx[:, k + 1 :].shape)
    changed = replace(batch, item_idx=item_idx)
    with torch.no_grad():
        base = score_every_position(model, batch)
        early = batch.valid.clone()
        early[:, k + 1 :] = False  # real positions up to k (padding outputs are meaningless)
        torch.testing.assert_close(score_every_position(model, changed)[early], base[early])
        padded = score_every_position(model, with_left_padding(batch, 4))[:, 4:]
    real = batch.valid
    torch.testing.assert_close(padded[real], base[real], atol=1e-5, rtol=1e-5)


def test_unknown_bucket_adds_nothing() -> None:
    module = RequestGapEmbedding(tiny_model_config(request_gap=True), 8)
    with torch.no_grad():
        module.weight.normal_()
    spec = random_spec()
    batch = random_batch(spec, 2, 5, seed=0, pad_left=[0, 2])
    batch = replace(batch, next_gap_bucket=torch.tensor([[0, 3, 99, 0, 1], [0, 0, 0, 5, 0]]))
    out = module(batch)  # (2, 5, 8)
    assert (out[0, 0] == 0).all() and (out[1, :3] == 0).all() and (out[1, 4] == 0).all()
    torch.testing.assert_close(out[0, 2], module.weight[31])  # out of range: the last bucket
    torch.testing.assert_close(out[1, 3], module.weight[5])


@pytest.mark.parametrize("architecture", ["intentrec", "sasrec"])
def test_a_tiny_model_learns_what_only_the_request_gap_tells(architecture: str) -> None:
    """Identical histories whose next item depends only on how soon the request comes: with the gap the model
    memorises the rule; without it, it cannot beat the majority (one history, two answers)."""
    spec = random_spec()
    batch = random_batch(spec, 16, 6, seed=5, pad_left=0)
    item_idx = batch.item_idx[:1].expand_as(batch.item_idx).clone()  # one history for every row
    soon = torch.arange(16) % 2 == 0  # (B,) half the requests come minutes later, half days later
    bucket = torch.where(soon, 4, 25)[:, None].expand(-1, 6).clone()  # (B, n)
    target = torch.zeros_like(batch.target_item)
    target[:, -1] = torch.where(soon, 2, 3)  # item 2 in a session going on, item 3 on a new visit
    weight = torch.zeros_like(batch.target_weight)
    weight[:, -1] = 1.0
    batch = replace(batch, item_idx=item_idx, numeric=batch.numeric[:1].expand_as(batch.numeric).clone(),
                    categorical={k: v[:1].expand_as(v).clone() for k, v in batch.categorical.items()},
                    time_hours=batch.time_hours[:1].expand_as(batch.time_hours).clone(),
                    gap_bucket=batch.gap_bucket[:1].expand_as(batch.gap_bucket).clone(),
                    window_start=batch.window_start[:1].expand_as(batch.window_start).clone(),
                    next_gap_bucket=bucket, target_item=target, target_weight=weight,
                    target_intents={k: torch.zeros_like(v) for k, v in batch.target_intents.items()})
    results = {}
    for gap in (True, False):
        torch.manual_seed(0)
        model = build_model(tiny_model_config(architecture=architecture, request_gap=gap, variant="V3"), spec)
        results[gap] = overfit(model, batch, steps=150, lr=1e-2).item_accuracy
    assert results[True] == 1.0
    assert results[False] <= 0.5


def test_config_refuses_bert4rec_and_buckets_follow_the_rule() -> None:
    with pytest.raises(ValueError, match="request_gap works on the causal models only"):
        ModelConfig(architecture="bert4rec", request_gap=True)
    ts = np.array([0.0, 60.0, 3600.0])
    nxt = np.array([60.0, 3600.0, 3600.0 + 3 * 86400.0])
    # 1 + floor(log2(1 + gap)): 60 s -> 6, 3540 s -> 12, 3 days -> 18; unknown -> 0; untimed -> 1 where known
    assert next_gap_buckets(ts, nxt, 32, True).tolist() == [6, 12, 18]
    assert next_gap_buckets(ts, np.array([60.0, np.nan, 10.0]), 32, True).tolist() == [6, 0, 1]
    assert next_gap_buckets(ts, np.array([1.0, 2.0, np.nan]), 32, False).tolist() == [1, 1, 0]
