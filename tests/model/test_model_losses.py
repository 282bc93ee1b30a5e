"""Losses: weighted CE, multi-positive CE, IntentRecLoss (PAPER §4, §10 #12, #13)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from intentrec.errors import ConfigError
from intentrec.model import (
    IntentRecLoss,
    SampledSoftmax,
    build_model,
    multi_positive_cross_entropy,
    sampling_log_q,
    weighted_cross_entropy,
)
from intentrec.model.layers import MASKED_LOGIT
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


@pytest.mark.parametrize("architecture", ["intentrec", "sasrec", "bert4rec", "gru", "transformer", "transact"])
@pytest.mark.parametrize("item_head", ["tied", "linear"])
def test_catalogue_logits_give_the_masked_full_softmax_loss_and_gradients(architecture: str, item_head: str) -> None:
    """The loss scores only the real items (catalogue_logits); it must equal CE over score_items with PAD/UNK
    masked, value and gradients."""
    spec = random_spec()
    torch.manual_seed(0)
    model = build_model(tiny_model_config(item_head=item_head, architecture=architecture), spec)
    model.eval()
    batch = random_batch(spec, 3, 8, seed=1, pad_left=[0, 2, 4])
    out = model(batch)
    hidden = out.item_hidden[:, -1]  # (B, D)
    full = model.score_items(hidden)  # (B, I)
    torch.testing.assert_close(model.catalogue_logits(hidden), full[:, 2:])
    assert (full[:, :2] == MASKED_LOGIT).all()

    class FullOnly:  # the same model seen through score_items only
        def score_items(self, h: torch.Tensor) -> torch.Tensor:
            return model.score_items(h)

    loss_fn = IntentRecLoss(1.0)
    fast = loss_fn(model, model(batch), batch).total
    grads_fast = torch.autograd.grad(fast, list(model.parameters()), allow_unused=True)
    slow = loss_fn(FullOnly(), model(batch), batch).total  # type: ignore[arg-type]
    grads_slow = torch.autograd.grad(slow, list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(fast, slow)
    for a, b in zip(grads_fast, grads_slow, strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_sampled_softmax_with_every_item_once_and_uniform_q_is_the_full_softmax() -> None:
    """Negatives = every real item once, uniform q: the log-Q shift is a constant, the target's own copy among
    the negatives is an accidental hit (removed), so the loss is exactly the full-softmax CE."""
    spec, model, batch, _ = _setup(item_head="tied")
    out = model(batch)
    full = IntentRecLoss(0.0)(model, out, batch).parts["item"]
    log_q = sampling_log_q(torch.ones(spec.n_items), alpha=0.0)
    sampler = SampledSoftmax(log_q, n_negatives=5)
    rows = (batch.target_item.reshape(-1) > 0).nonzero().squeeze(1)
    hidden = out.item_hidden.reshape(-1, out.item_hidden.shape[-1])[rows]
    every = torch.arange(2, spec.n_items)
    sampled = sampler(model, hidden, batch.target_item.reshape(-1)[rows], batch.target_weight.reshape(-1)[rows],
                      negatives=every)
    torch.testing.assert_close(sampled, full)


def test_sampled_softmax_log_q_correction_approaches_the_full_softmax_gradient() -> None:
    """With many negatives drawn from a skewed q, the corrected loss's gradient is close to the full softmax's
    (the loss value differs from the full CE by the constant log N·q_target, which has no gradient); without the
    correction the gradient is biased towards the popular items."""
    torch.manual_seed(0)
    n_items, p = 60, 40
    counts = torch.arange(n_items, dtype=torch.float32) ** 2  # skewed popularity
    log_q = sampling_log_q(counts, alpha=1.0)
    assert torch.isinf(log_q[:2]).all() and torch.isclose(log_q[2:].exp().sum(), torch.tensor(1.0))

    class Table:  # a bare item head: score = query . table[j]
        def __init__(self) -> None:
            self.table = torch.randn(n_items, 8)

        def item_query(self, h: torch.Tensor) -> torch.Tensor:
            return h

        def item_table(self) -> tuple[torch.Tensor, None]:
            return self.table, None

    head = Table()
    hidden = torch.randn(p, 8, requires_grad=True)
    target = torch.randint(2, n_items, (p,))
    weight = torch.ones(p)
    full = weighted_cross_entropy((hidden @ head.table.T)[:, 2:], target - 2, weight)
    g_full = torch.autograd.grad(full, hidden)[0].reshape(-1)
    gen = torch.Generator().manual_seed(1)
    neg = torch.multinomial(log_q.exp(), 50_000, replacement=True, generator=gen)
    corrected = SampledSoftmax(log_q, 1)(head, hidden, target, weight, negatives=neg)
    raw = SampledSoftmax(torch.zeros(n_items), 1)(head, hidden, target, weight, negatives=neg)
    g_corr = torch.autograd.grad(corrected, hidden)[0].reshape(-1)
    g_raw = torch.autograd.grad(raw, hidden)[0].reshape(-1)
    cos = torch.nn.functional.cosine_similarity
    assert cos(g_corr, g_full, dim=0) > 0.98
    assert (g_corr - g_full).norm() < 0.2 * g_full.norm()
    assert (g_raw - g_full).norm() > 2 * (g_corr - g_full).norm()


def test_sampled_softmax_removes_accidental_hits_and_trains_only_sampled_rows() -> None:
    spec, model, batch, _ = _setup(item_head="linear")
    out = model(batch)
    rows = (batch.target_item.reshape(-1) > 0).nonzero().squeeze(1)
    hidden = out.item_hidden.reshape(-1, out.item_hidden.shape[-1])[rows]
    target = batch.target_item.reshape(-1)[rows]
    weight = batch.target_weight.reshape(-1)[rows]
    sampler = SampledSoftmax(sampling_log_q(torch.ones(spec.n_items), 0.0), n_negatives=3)
    negatives = torch.tensor([int(target[0]), 2, 3])
    loss = sampler(model, hidden, target, weight, negatives=negatives)
    table, _ = model.item_table()
    grad = torch.autograd.grad(loss, table)[0]  # (I, E)
    touched = set(negatives.tolist()) | set(target.tolist())
    untouched = [j for j in range(spec.n_items) if j not in touched]
    assert torch.all(grad[untouched] == 0)
    # the first row's target among the negatives is removed: same loss as without that negative for that row
    only = sampler(model, hidden[:1], target[:1], weight[:1], negatives=negatives[1:])
    with_hit = sampler(model, hidden[:1], target[:1], weight[:1], negatives=negatives)
    torch.testing.assert_close(only, with_hit)


def test_intentrec_loss_uses_the_sampler_for_the_item_part_only() -> None:
    spec, model, batch, _ = _setup()
    out = model(batch)
    full = IntentRecLoss(1.0)(model, out, batch)
    sampled = IntentRecLoss(1.0, SampledSoftmax(sampling_log_q(torch.ones(spec.n_items), 0.0), 4))(model, out, batch)
    for name, value in full.parts.items():
        if name != "item":
            torch.testing.assert_close(sampled.parts[name], value)
    assert not torch.isclose(sampled.parts["item"], full.parts["item"])


def test_per_row_negatives_score_each_row_against_its_own_set() -> None:
    """Per-row negatives: row r's loss is the shared-negatives loss of row r alone with its own set, accidental
    hits removed per row; the sampler draws one set of N per scored row."""
    spec, model, batch, _ = _setup(item_head="linear")
    out = model(batch)
    rows = (batch.target_item.reshape(-1) > 0).nonzero().squeeze(1)
    hidden = out.item_hidden.reshape(-1, out.item_hidden.shape[-1])[rows]
    target = batch.target_item.reshape(-1)[rows]
    weight = torch.ones_like(target, dtype=torch.float32)
    log_q = sampling_log_q(torch.arange(spec.n_items, dtype=torch.float32), 1.0)
    per_row = SampledSoftmax(log_q, 3, per_row=True)
    gen = torch.Generator().manual_seed(0)
    neg = torch.randint(2, spec.n_items, (len(rows), 3), generator=gen)
    neg[0, 1] = target[0]  # an accidental hit in row 0 only
    loss = per_row(model, hidden, target, weight, negatives=neg)
    shared = SampledSoftmax(log_q, 3)
    one_by_one = torch.stack([shared(model, hidden[r:r + 1], target[r:r + 1], weight[r:r + 1], negatives=neg[r])
                              for r in range(len(rows))])
    torch.testing.assert_close(loss, one_by_one.mean())
    drawn = per_row.sample(torch.device("cpu"), rows=7)
    assert drawn.shape == (7, 3) and bool((drawn >= 2).all())
    assert shared.sample(torch.device("cpu"), rows=7).shape == (3,)


def test_per_row_negatives_with_every_item_in_each_row_and_uniform_q_is_the_full_softmax() -> None:
    spec, model, batch, _ = _setup(item_head="tied")
    out = model(batch)
    full = IntentRecLoss(0.0)(model, out, batch).parts["item"]
    rows = (batch.target_item.reshape(-1) > 0).nonzero().squeeze(1)
    hidden = out.item_hidden.reshape(-1, out.item_hidden.shape[-1])[rows]
    every = torch.arange(2, spec.n_items).expand(len(rows), -1)  # (P, I - 2)
    sampler = SampledSoftmax(sampling_log_q(torch.ones(spec.n_items), 0.0), spec.n_items - 2, per_row=True)
    sampled = sampler(model, hidden, batch.target_item.reshape(-1)[rows], batch.target_weight.reshape(-1)[rows],
                      negatives=every)
    torch.testing.assert_close(sampled, full)


def test_per_row_negatives_give_the_same_loss_and_gradients_whether_gathered_or_scored_densely() -> None:
    """The per-row sampler scores every item once and gathers when the draws outnumber the items, and gathers the
    (P, N, E) rows otherwise: the two are the same computation."""
    torch.manual_seed(0)
    n_items, p, e = 30, 6, 4

    class Table:
        def __init__(self) -> None:
            self.table = torch.randn(n_items, e, requires_grad=True)

        def item_query(self, h: torch.Tensor) -> torch.Tensor:
            return h

        def item_table(self) -> tuple[torch.Tensor, None]:
            return self.table, None

    head = Table()
    hidden = torch.randn(p, e, requires_grad=True)
    target = torch.randint(2, n_items, (p,))
    weight = torch.rand(p)
    log_q = sampling_log_q(torch.arange(n_items, dtype=torch.float32), 0.75)
    sampler = SampledSoftmax(log_q, 3, per_row=True)
    few = torch.randint(2, n_items, (p, 3))  # 18 draws < 30 items: gathered
    many = torch.randint(2, n_items, (p, 8))  # 48 draws >= 30 items: dense
    for neg in (few, many):
        loss = sampler(head, hidden, target, weight, negatives=neg)
        grads = torch.autograd.grad(loss, (hidden, head.table))
        logits = torch.cat([(hidden * head.table[target]).sum(-1, keepdim=True),
                            torch.einsum("pe,pne->pn", hidden, head.table[neg])], dim=1)
        logits = logits - torch.cat([log_q[target][:, None], log_q[neg]], dim=1)
        logits[:, 1:] = logits[:, 1:].masked_fill(neg == target[:, None], -1e9)
        ref = (torch.nn.functional.cross_entropy(logits, torch.zeros(p, dtype=torch.long), reduction="none")
               * weight).sum() / weight.sum()
        ref_grads = torch.autograd.grad(ref, (hidden, head.table))
        torch.testing.assert_close(loss, ref)
        for a, b in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(a, b)
