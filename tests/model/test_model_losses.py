"""Losses: weighted CE, multi-positive CE, IntentRecLoss (PAPER §4, §10 #12, #13)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from intentrec.errors import ConfigError
from intentrec.model import IntentRecLoss, build_model, multi_positive_cross_entropy, weighted_cross_entropy
from intentrec.testing import random_batch, random_spec, tiny_model_config


def test_weighted_ce_with_unit_weights_is_plain_ce() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(7, 5), torch.randint(0, 5, (7,))
    torch.testing.assert_close(weighted_cross_entropy(logits, target, torch.ones(7)), F.cross_entropy(logits, target))


def test_weighted_ce_weights() -> None:
    torch.manual_seed(1)
    logits, target = torch.randn(4, 6), torch.randint(0, 6, (4,))
    w = torch.tensor([1.0, 2.0, 0.0, 0.5])
    ce = F.cross_entropy(logits, target, reduction="none")
    expected = (w * ce).sum() / w.sum()
    torch.testing.assert_close(weighted_cross_entropy(logits, target, w), expected)
    # scaling every weight changes nothing
    torch.testing.assert_close(weighted_cross_entropy(logits, target, 3.7 * w), expected)
    # an integer weight equals repeating the row; a zero weight drops it
    dup_logits = torch.cat([logits[[0]], logits[[1]], logits[[1]]])
    dup_target = torch.cat([target[[0]], target[[1]], target[[1]]])
    torch.testing.assert_close(
        weighted_cross_entropy(logits[:2], target[:2], torch.tensor([1.0, 2.0])),
        F.cross_entropy(dup_logits, dup_target),
    )


def test_weighted_ce_without_rows_is_zero() -> None:
    logits = torch.zeros(0, 3, requires_grad=True)
    loss = weighted_cross_entropy(logits, torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert loss.item() == 0.0
    loss.backward()


def test_multi_positive_ce_by_hand() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.5, 0.0, 0.0, 3.0]])
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])

    def log_softmax(row: list[float]) -> list[float]:
        z = math.log(sum(math.exp(v) for v in row))
        return [v - z for v in row]

    lp0, lp1 = log_softmax([1.0, 2.0, 0.0, -1.0]), log_softmax([0.5, 0.0, 0.0, 3.0])
    row0 = -(lp0[1] + lp0[2]) / 2
    row1 = -lp1[3]
    got = multi_positive_cross_entropy(logits, targets, torch.ones(2))
    assert float(got) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    weighted = multi_positive_cross_entropy(logits, targets, torch.tensor([3.0, 1.0]))
    assert float(weighted) == pytest.approx((3 * row0 + row1) / 4, rel=1e-6)


def test_multi_positive_ce_single_positive_is_ce_and_empty_rows_are_ignored() -> None:
    torch.manual_seed(2)
    logits = torch.randn(3, 5)
    targets = torch.tensor([[2, 0], [0, 0], [4, 0]])
    got = multi_positive_cross_entropy(logits, targets, torch.ones(3))
    expected = F.cross_entropy(logits[[0, 2]], torch.tensor([2, 4]))
    torch.testing.assert_close(got, expected)


def _setup(variant: str = "V3", lambda_intent: float = 1.0, item_head: str = "tied"):
    spec = random_spec()
    torch.manual_seed(0)
    model = build_model(tiny_model_config(variant=variant, item_head=item_head), spec)
    batch = random_batch(spec, 3, 8, seed=0, pad_left=[0, 2, 4])
    return spec, model, batch, IntentRecLoss(lambda_intent)


@pytest.mark.parametrize("item_head", ["tied", "linear"])
def test_item_part_matches_full_scoring(item_head: str) -> None:
    _, model, batch, loss_fn = _setup(item_head=item_head)
    target_item = batch.target_item.clone()
    target_item[0, 3] = 0  # a position without target is skipped even though it is valid
    batch = replace(batch, target_item=target_item)
    out = model(batch)
    loss = loss_fn(model, out, batch)
    full = model.score_items(out.item_hidden)  # (B, n, I): fine for a test
    sel = batch.target_item > 0
    expected = weighted_cross_entropy(full[sel], batch.target_item[sel], batch.target_weight[sel])
    torch.testing.assert_close(loss.parts["item"], expected)


def test_parts_and_lambda() -> None:
    _, model, batch, _ = _setup()
    out = model(batch)
    zero = IntentRecLoss(0.0)(model, out, batch)
    assert set(zero.parts) == {"item", "intent/action", "intent/genre"}
    assert torch.equal(zero.total, zero.parts["item"])
    half = IntentRecLoss(0.5)(model, out, batch)
    expected = half.parts["item"] + 0.5 * (half.parts["intent/action"] + half.parts["intent/genre"])
    torch.testing.assert_close(half.total, expected)


def test_intent_parts_by_hand() -> None:
    _, model, batch, loss_fn = _setup()
    out = model(batch)
    loss = loss_fn(model, out, batch)
    sel = batch.target_intents["action"] > 0
    expected = weighted_cross_entropy(
        out.intent_logits["action"][sel], batch.target_intents["action"][sel], batch.target_weight[sel]
    )
    torch.testing.assert_close(loss.parts["intent/action"], expected)
    genre = batch.target_intents["genre"]
    gsel = (genre > 0).any(dim=-1)
    expected_genre = multi_positive_cross_entropy(
        out.intent_logits["genre"][gsel], genre[gsel], batch.target_weight[gsel]
    )
    torch.testing.assert_close(loss.parts["intent/genre"], expected_genre)


def test_weights_scale_invariance_in_the_total() -> None:
    _, model, batch, loss_fn = _setup()
    out = model(batch)
    a = loss_fn(model, out, batch).total
    b = loss_fn(model, out, replace(batch, target_weight=batch.target_weight * 4.0)).total
    torch.testing.assert_close(a, b)


def test_v0_loss_has_only_the_item_part() -> None:
    _, model, batch, loss_fn = _setup(variant="V0")
    loss = loss_fn(model, model(batch), batch)
    assert set(loss.parts) == {"item"}
    assert torch.equal(loss.total, loss.parts["item"])


def test_missing_intent_target_and_bad_lambda() -> None:
    _, model, batch, loss_fn = _setup()
    out = model(batch)
    with pytest.raises(ConfigError, match="genre"):
        loss_fn(model, out, replace(batch, target_intents={"action": batch.target_intents["action"]}))
    with pytest.raises(ValueError, match="lambda_intent"):
        IntentRecLoss(-1.0)


def test_batch_without_targets_gives_zero_and_backpropagates() -> None:
    _, model, batch, loss_fn = _setup()
    empty = replace(
        batch,
        target_item=torch.zeros_like(batch.target_item),
        target_intents={k: torch.zeros_like(v) for k, v in batch.target_intents.items()},
        target_weight=torch.zeros_like(batch.target_weight),
    )
    loss = loss_fn(model, model(empty), empty)
    assert loss.total.item() == 0.0
    loss.total.backward()


def test_item_loss_weight_multiplies_the_item_weights_only() -> None:
    _, model, batch, loss_fn = _setup()
    out = model(batch)
    assert out.item_loss_weight is None
    plain = loss_fn(model, out, batch)
    # ones change nothing
    ones = loss_fn(model, replace(out, item_loss_weight=torch.ones_like(batch.target_weight)), batch)
    torch.testing.assert_close(ones.total, plain.total)
    # a multiplier with zeros (positions left out) and other values (re-weighted)
    multiplier = torch.zeros_like(batch.target_weight)  # (B, n)
    multiplier[:, -1] = 1.0
    multiplier[0, 2] = 0.5
    multiplier[1, 4] = 3.0
    weighted = loss_fn(model, replace(out, item_loss_weight=multiplier), batch)
    sel = (batch.target_item > 0) & (multiplier > 0)  # (B, n)
    full = model.score_items(out.item_hidden)  # (B, n, I): fine for a test
    expected = weighted_cross_entropy(full[sel], batch.target_item[sel], (batch.target_weight * multiplier)[sel])
    torch.testing.assert_close(weighted.parts["item"], expected)
    for name in ("intent/action", "intent/genre"):  # the intent parts ignore it
        torch.testing.assert_close(weighted.parts[name], plain.parts[name])
    # an all-zero multiplier leaves no item position: 0, still connected to the graph
    none = loss_fn(model, replace(out, item_loss_weight=torch.zeros_like(batch.target_weight)), batch)
    assert none.parts["item"].item() == 0.0
    none.total.backward()
