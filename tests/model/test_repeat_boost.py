"""``model.repeat_boost``: a learned score for the items already in the input (RepeatBoost, score_positions)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from intentrec.model import IntentRecLoss, SampledSoftmax, build_model, score_positions
from intentrec.model.layers import RepeatBoost, add_history_boost, history_boost_of
from intentrec.structs import DataSpec, SequenceBatch
from intentrec.testing import (
    random_batch,
    random_spec,
    score_every_position,
    tiny_model_config,
    with_left_padding,
)

B, N = 3, 10
CASES = [
    pytest.param("intentrec", {"variant": "V3"}, id="intentrec-V3"),
    pytest.param("intentrec", {"variant": "V0", "item_head": "linear"}, id="intentrec-V0-linear"),
    pytest.param("sasrec", {}, id="sasrec"),
    pytest.param("gru", {}, id="gru"),
    pytest.param("transformer", {"item_head": "dot", "item_emb_dim": 32}, id="transformer-dot"),
    pytest.param("transact", {"transact_k": 3}, id="transact"),
]


def _boost_module(model: nn.Module) -> RepeatBoost:
    found = [m for m in model.modules() if isinstance(m, RepeatBoost)]
    assert len(found) == 1
    return found[0]


def _model(spec: DataSpec, architecture: str, overrides: dict[str, object], *, active: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(architecture=architecture, repeat_boost=True, **overrides), spec).eval()
    if active:  # leave the zero start, so the boost is visible
        boost = _boost_module(model)
        with torch.no_grad():
            boost.gate_weight.normal_(0.0, 1.0)
            boost.gate_bias.fill_(0.5)
            boost.log_decay.normal_(0.0, 0.5)
    return model


def _with_repeats(batch: SequenceBatch) -> SequenceBatch:
    """Make some items of each row occur twice (the interesting case of the boost)."""
    item_idx = batch.item_idx.clone()
    real = batch.valid
    for b in range(item_idx.shape[0]):
        cols = real[b].nonzero().squeeze(1)
        if len(cols) >= 4:
            item_idx[b, cols[-1]] = item_idx[b, cols[0]]
            item_idx[b, cols[-2]] = item_idx[b, cols[1]]
    return replace(batch, item_idx=item_idx)



@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_boost_adds_the_gated_decayed_score_of_every_earlier_input_item(
    architecture: str, overrides: dict[str, object]
) -> None:
    spec = random_spec()
    model = _model(spec, architecture, overrides)
    batch = _with_repeats(random_batch(spec, B, N, seed=3, pad_left=[0, 2, 5]))
    boost = _boost_module(model)
    with torch.no_grad():
        out = model(batch)
        got = score_every_position(model, batch)
        for b in range(B):
            for k in range(N):
                if not batch.valid[b, k]:
                    continue
                h = out.item_hidden[b, k]
                gate = float(h @ boost.gate_weight + boost.gate_bias)
                expected = model.score_items(h[None])[0].clone()  # (I,)
                for i in range(k + 1):
                    item = int(batch.item_idx[b, i])
                    if batch.valid[b, i] and item >= 2:
                        expected[item] += gate * float(boost.log_decay[min(k - i, len(boost.log_decay) - 1)].exp())
                torch.testing.assert_close(got[b, k], expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_untrained_boost_scores_like_the_plain_head(architecture: str, overrides: dict[str, object]) -> None:
    spec = random_spec()
    model = _model(spec, architecture, overrides, active=False)
    batch = _with_repeats(random_batch(spec, B, N, seed=4))
    with torch.no_grad():
        out = model(batch)
        plain = model.score_items(out.item_hidden)  # (B, n, I)
        torch.testing.assert_close(score_every_position(model, batch), plain)


@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_boosted_scores_are_causal(architecture: str, overrides: dict[str, object]) -> None:
    spec = random_spec()
    model = _model(spec, architecture, overrides)
    batch = _with_repeats(random_batch(spec, B, N, seed=5, pad_left=[0, 2, 5]))
    b, j = 1, 6
    item_idx = batch.item_idx.clone()
    item_idx[b, j] = 2 + (int(item_idx[b, j]) - 2 + 7) % (spec.n_items - 2)
    changed = replace(batch, item_idx=item_idx)
    with torch.no_grad():
        before, after = score_every_position(model, batch), score_every_position(model, changed)
    torch.testing.assert_close(after[b, 2:j], before[b, 2:j], atol=1e-5, rtol=0)  # earlier real positions
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]], atol=1e-5, rtol=0)  # other rows
    assert not torch.allclose(after[b, j], before[b, j], atol=1e-4)


@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_boosted_scores_ignore_left_padding(architecture: str, overrides: dict[str, object]) -> None:
    spec = random_spec()
    model = _model(spec, architecture, overrides)
    batch = _with_repeats(random_batch(spec, B, N, seed=6, pad_left=[0, 3, 6]))
    with torch.no_grad():
        short = score_every_position(model, batch)
        long = score_every_position(model, with_left_padding(batch, 4))
    torch.testing.assert_close(long[:, 4:][batch.valid], short[batch.valid], atol=1e-4, rtol=1e-5)


def test_loss_is_the_cross_entropy_of_the_boosted_scores_and_trains_the_boost() -> None:
    spec = random_spec()
    model = _model(spec, "intentrec", {"variant": "V3"})
    model.train()
    batch = _with_repeats(random_batch(spec, B, N, seed=7, pad_left=[0, 2, 5]))
    torch.manual_seed(1)
    out = model(batch)
    loss = IntentRecLoss(0.0)(model, out, batch)
    sel = batch.target_item > 0  # (B, n)
    rows, cols = sel.nonzero(as_tuple=True)
    scores = score_positions(model, out, batch, rows, cols)  # (P, I)
    weight = batch.target_weight[rows, cols]
    expected = (F.cross_entropy(scores, batch.target_item[rows, cols], reduction="none") * weight).sum() / weight.sum()
    torch.testing.assert_close(loss.parts["item"], expected, atol=1e-5, rtol=1e-5)
    loss.total.backward()
    boost = _boost_module(model)
    for p in (boost.gate_weight, boost.gate_bias, boost.log_decay):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


def test_sampled_softmax_adds_the_boost_to_the_target_and_the_negatives() -> None:
    spec = random_spec()
    model = _model(spec, "sasrec", {})
    batch = _with_repeats(random_batch(spec, B, N, seed=8))
    out = model(batch)
    # every real item as the negatives, no log-Q: the sampled loss is then the full softmax (the target column,
    # removed from the negatives as an accidental hit, is the positive column)
    sampler = SampledSoftmax(torch.zeros(spec.n_items), n_negatives=spec.n_items - 2)
    sampler.sample = lambda device, rows=1: torch.arange(2, spec.n_items, device=device)  # type: ignore[method-assign]
    sampled = IntentRecLoss(0.0, item_sampler=sampler)(model, out, batch).parts["item"]
    full = IntentRecLoss(0.0)(model, out, batch).parts["item"]
    torch.testing.assert_close(sampled, full, atol=1e-4, rtol=1e-4)
    plain = replace(out, history_boost=None)
    assert abs(float(IntentRecLoss(0.0, item_sampler=sampler)(model, plain, batch).parts["item"].detach()) - float(full.detach())) > 1e-3


def test_helpers_agree_and_give_pad_and_unk_nothing() -> None:
    items = torch.tensor([[0, 1, 5, 3, 5], [4, 4, 4, 2, 0]])  # PAD 0, UNK 1
    boost = torch.tensor([[9.0, 9.0, 1.0, 2.0, 0.5], [1.0, 1.0, 1.0, 3.0, 9.0]])
    dense = add_history_boost(torch.zeros(2, 6), items, boost, n_masked=2)
    assert dense.tolist() == [[0, 0, 0, 2.0, 0, 1.5], [0, 0, 3.0, 0, 3.0, 0]]
    shifted = add_history_boost(torch.zeros(2, 4), items, boost, n_masked=2, offset=2)
    assert torch.equal(shifted, dense[:, 2:])
    assert torch.equal(history_boost_of(torch.arange(6), items, boost, n_masked=2), dense)  # PAD/UNK give nothing


def test_bert4rec_refuses_the_boost() -> None:
    with pytest.raises(ValueError, match="repeat_boost works on the causal models only"):
        tiny_model_config(architecture="bert4rec", repeat_boost=True)
