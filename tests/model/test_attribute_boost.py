"""``model.repeat_boost_attributes``: the repeat boost at the level of an item attribute (AttributeRepeatBoost)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from intentrec.errors import ConfigError
from intentrec.model import (
    IntentRecLoss,
    SampledSoftmax,
    build_model,
    score_positions,
    set_item_attribute_codes,
)
from intentrec.model.layers import AttributeRepeatBoost, add_attribute_boost, attribute_boost_of
from intentrec.structs import DataSpec
from intentrec.testing import (
    random_batch,
    random_spec,
    score_every_position,
    tiny_model_config,
    with_left_padding,
)

B, N = 3, 10
ATTRIBUTE = "country"  # single-valued input attribute of random_spec
CASES = [
    pytest.param("intentrec", {"variant": "V3"}, id="intentrec-V3"),
    pytest.param("intentrec", {"variant": "V0", "item_head": "linear", "repeat_boost": True}, id="V0-linear-both"),
    pytest.param("sasrec", {}, id="sasrec"),
    pytest.param("gru", {"repeat_boost": True}, id="gru-both"),
    pytest.param("transact", {"transact_k": 3}, id="transact"),
]


def _labels(spec: DataSpec) -> torch.Tensor:
    """(I,) a label per item: groups of items share labels 2..5, a few carry 1 (``other``), PAD/UNK 0."""
    n_classes = next(a.n_classes for a in spec.attributes if a.name == ATTRIBUTE)
    labels = 2 + torch.arange(spec.n_items) % min(4, n_classes - 2)  # (I,)
    labels[::7] = 1
    labels[:2] = 0
    return labels


def _boost_module(model: nn.Module) -> AttributeRepeatBoost:
    found = [m for m in model.modules() if isinstance(m, AttributeRepeatBoost)]
    assert len(found) == 1
    return found[0]


def _model(spec: DataSpec, architecture: str, overrides: dict[str, object], *, active: bool = True) -> nn.Module:
    torch.manual_seed(0)
    cfg = tiny_model_config(architecture=architecture, repeat_boost_attributes=(ATTRIBUTE,), **overrides)
    model = build_model(cfg, spec).eval()
    assert set_item_attribute_codes(model, {ATTRIBUTE: _labels(spec).numpy()}) == 1
    if active:  # leave the zero start, so the boost is visible
        with torch.no_grad():
            for module in model.modules():
                if hasattr(module, "gate_weight"):  # every RepeatBoost, the item-level one included
                    module.gate_weight.normal_(0.0, 1.0)
                    module.gate_bias.fill_(0.5)
                    module.log_decay.normal_(0.0, 0.5)
    return model



@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_boost_adds_the_gated_decayed_score_to_every_item_sharing_an_earlier_items_label(
    architecture: str, overrides: dict[str, object]
) -> None:
    spec = random_spec()
    labels = _labels(spec)
    model = _model(spec, architecture, overrides)
    batch = random_batch(spec, B, N, seed=3, pad_left=[0, 2, 5])
    module = _boost_module(model).boosts[0]
    with torch.no_grad():
        out = model(batch)
        got = score_every_position(model, batch)
        plain = replace(out, attribute_boosts=())
        for b in range(B):
            for k in range(N):
                if not batch.valid[b, k]:
                    continue
                h = out.item_hidden[b, k]
                gate = float(h @ module.gate_weight + module.gate_bias)
                expected = score_positions(model, plain, batch, torch.tensor([b]), torch.tensor([k]))[0].clone()
                for i in range(k + 1):
                    label = int(labels[int(batch.item_idx[b, i])])
                    if batch.valid[b, i] and label >= 2:
                        add = gate * float(module.log_decay[min(k - i, len(module.log_decay) - 1)].exp())
                        expected[labels == label] += add
                torch.testing.assert_close(got[b, k], expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_untrained_boost_scores_like_the_plain_head(architecture: str, overrides: dict[str, object]) -> None:
    spec = random_spec()
    model = _model(spec, architecture, overrides, active=False)
    batch = random_batch(spec, B, N, seed=4)
    with torch.no_grad():
        out = model(batch)
        plain = model.score_items(out.item_hidden)  # (B, n, I)
        torch.testing.assert_close(score_every_position(model, batch), plain)


@pytest.mark.parametrize(("architecture", "overrides"), CASES)
def test_boosted_scores_are_causal_and_ignore_left_padding(architecture: str, overrides: dict[str, object]) -> None:
    spec = random_spec()
    labels = _labels(spec)
    model = _model(spec, architecture, overrides)
    batch = random_batch(spec, B, N, seed=5, pad_left=[0, 2, 5])
    b, j = 1, 6
    item_idx = batch.item_idx.clone()
    new = next(x for x in range(2, spec.n_items) if int(labels[x]) >= 2 and labels[x] != labels[item_idx[b, j]])
    item_idx[b, j] = new  # another label: the boost of the later positions moves
    changed = replace(batch, item_idx=item_idx)
    with torch.no_grad():
        before, after = score_every_position(model, batch), score_every_position(model, changed)
        padded = score_every_position(model, with_left_padding(batch, 4))
    torch.testing.assert_close(after[b, 2:j], before[b, 2:j], atol=1e-5, rtol=0)  # earlier real positions
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]], atol=1e-5, rtol=0)  # other rows
    assert not torch.allclose(after[b, j], before[b, j], atol=1e-4)
    torch.testing.assert_close(padded[:, 4:][batch.valid], before[batch.valid], atol=1e-4, rtol=1e-5)


def test_loss_is_the_cross_entropy_of_the_boosted_scores_and_trains_the_boost() -> None:
    spec = random_spec()
    model = _model(spec, "intentrec", {"variant": "V3", "repeat_boost": True})
    model.train()
    batch = random_batch(spec, B, N, seed=7, pad_left=[0, 2, 5])
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
    module = _boost_module(model).boosts[0]
    for p in (module.gate_weight, module.gate_bias, module.log_decay):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


@pytest.mark.parametrize("item_level", [False, True], ids=["attribute", "attribute+item"])
def test_sampled_softmax_adds_the_boost_to_the_target_and_the_negatives(item_level: bool) -> None:
    spec = random_spec()
    model = _model(spec, "sasrec", {"repeat_boost": item_level})
    batch = random_batch(spec, B, N, seed=8)
    out = model(batch)
    # every real item as the negatives, no log-Q: the sampled loss is then the full softmax
    sampler = SampledSoftmax(torch.zeros(spec.n_items), n_negatives=spec.n_items - 2)
    sampler.sample = lambda device, rows=1: torch.arange(2, spec.n_items, device=device)  # type: ignore[method-assign]
    sampled = IntentRecLoss(0.0, item_sampler=sampler)(model, out, batch).parts["item"]
    full = IntentRecLoss(0.0)(model, out, batch).parts["item"]
    torch.testing.assert_close(sampled, full, atol=1e-4, rtol=1e-4)
    plain = IntentRecLoss(0.0, item_sampler=sampler)(model, replace(out, attribute_boosts=()), batch).parts["item"]
    assert abs(float(plain.detach()) - float(full.detach())) > 1e-3


def test_helpers_agree_and_labels_pad_and_other_share_nothing() -> None:
    codes = torch.tensor([0, 0, 2, 3, 2, 1, 1, 3])  # items 0/1 PAD/UNK; 5 and 6 carry "other"
    items = torch.tensor([[0, 2, 5, 3], [6, 4, 4, 1]])
    boost = torch.tensor([[9.0, 1.0, 9.0, 2.0], [9.0, 0.5, 0.25, 9.0]])
    dense = add_attribute_boost(torch.zeros(2, 8), items, boost, codes, n_classes=4)
    # row 0: label 2 (items 2, 4) +1, label 3 (items 3, 7) +2; row 1: label 2 (items 2, 4) +0.75
    assert dense.tolist() == [[0, 0, 1.0, 2.0, 1.0, 0, 0, 2.0], [0, 0, 0.75, 0, 0.75, 0, 0, 0]]
    shifted = add_attribute_boost(torch.zeros(2, 6), items, boost, codes, n_classes=4, offset=2)
    assert torch.equal(shifted, dense[:, 2:])
    assert torch.equal(attribute_boost_of(torch.arange(8), items, boost, codes), dense)


def test_config_and_model_refuse_what_the_boost_cannot_use() -> None:
    with pytest.raises(ValueError, match="repeat_boost_attributes works on the causal models only"):
        tiny_model_config(architecture="bert4rec", repeat_boost_attributes=("country",))
    with pytest.raises(ValueError, match="repeat_boost_attributes repeats a name"):
        tiny_model_config(repeat_boost_attributes=("country", "country"))
    spec = random_spec()
    multi = next(a.name for a in spec.attributes if a.multi_valued)
    with pytest.raises(ConfigError, match="one label per item"):
        build_model(tiny_model_config(repeat_boost_attributes=(multi,)), spec)
    with pytest.raises(ConfigError, match=r"repeat_boost_attributes names \['nope'\]"):
        build_model(tiny_model_config(repeat_boost_attributes=("nope",)), spec)
    model = build_model(tiny_model_config(repeat_boost_attributes=(ATTRIBUTE,)), spec)
    with pytest.raises(ValueError, match="one label per item"):
        set_item_attribute_codes(model, {ATTRIBUTE: torch.full((spec.n_items, 2), 2).numpy()})
    with pytest.raises(ValueError, match="no item labels"):
        set_item_attribute_codes(model, {})
