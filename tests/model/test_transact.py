"""TransAct baseline (PAPER §8, §10 #18): build, shapes, masks, read-out, causality, padding, overfit."""

from __future__ import annotations

import doctest
from dataclasses import replace

import pydantic
import pytest
import torch

import intentrec.model.baselines.transact
from intentrec.config import ModelConfig
from intentrec.model import IntentRecLoss, build_model
from intentrec.model.baselines import TransAct
from intentrec.model.baselines.transact import random_time_window_mask
from intentrec.model.layers import MASKED_LOGIT, causal_mask
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch
from intentrec.testing import overfit, random_batch, random_spec, tiny_model_config, with_left_padding

B, N = 3, 12


def _model(spec: DataSpec, **overrides: object) -> TransAct:
    torch.manual_seed(0)
    values: dict[str, object] = {"architecture": "transact", "n_layers": 2, "transact_k": 4}
    values.update(overrides)
    model = build_model(tiny_model_config(**values), spec)
    assert isinstance(model, TransAct)
    return model.eval()


def _outputs(out: ModelOutput) -> dict[str, torch.Tensor]:
    tensors = {"item_hidden": out.item_hidden}
    tensors.update({f"intent/{k}": v for k, v in out.intent_logits.items()})
    return tensors


def _change_event(batch: SequenceBatch, spec: DataSpec, b: int, j: int) -> SequenceBatch:
    """Replace the item and the action type of event (b, j)."""
    item_idx = batch.item_idx.clone()
    item_idx[b, j] = 2 + (int(item_idx[b, j]) - 2 + 7) % (spec.n_items - 2)
    action = batch.categorical["action"].clone()
    action[b, j] = 1 + int(action[b, j]) % (spec.attribute("action").n_classes - 1)
    return replace(batch, item_idx=item_idx, categorical={**batch.categorical, "action": action})


def test_docstring_examples() -> None:
    result = doctest.testmod(intentrec.model.baselines.transact, verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_config_fields() -> None:
    cfg = ModelConfig(architecture="transact")
    assert cfg.label == "TransAct" and cfg.transact_window == "24h" and cfg.transact_k == 10
    spec = random_spec()
    assert _model(spec).window_hours == 24.0
    assert _model(spec, transact_window="off").window_hours == 0.0
    assert _model(spec, transact_window=7200).window_hours == 2.0
    assert _model(random_spec(timed=False)).window_hours == 0.0  # untimed: random mask disabled
    for bad in ({"transact_k": 0}, {"transact_window": "soon"}):
        with pytest.raises(pydantic.ValidationError):
            ModelConfig(architecture="transact", **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("item_head", ["tied", "linear"])
def test_build_and_shapes(item_head: str) -> None:
    spec = random_spec()
    model = _model(spec, item_head=item_head)
    out = model(random_batch(spec, B, N, seed=0))
    assert out.item_hidden.shape == (B, N, 32)
    assert out.intent_attention is None and out.intent_embedding is None
    assert model.head_names == ("action", "genre") and list(out.intent_logits) == ["action", "genre"]
    for a in spec.intents:
        assert out.intent_logits[a.name].shape == (B, N, a.n_classes)
        assert bool((out.intent_logits[a.name][..., 0] == MASKED_LOGIT).all())
    for name, t in _outputs(out).items():
        assert bool(torch.isfinite(t).all()), name
    scores = model.score_items(out.item_hidden * 10)
    assert scores.shape == (B, N, spec.n_items)
    assert bool((scores[..., :2] == MASKED_LOGIT).all())
    assert model.score_items(out.item_hidden[:, -1]).shape == (B, spec.n_items)
    # the rows carry the interaction metadata (action type etc.), unlike the item-only baselines
    assert any("attribute_embeddings" in n for n, _ in model.named_parameters())
    emb = model.item_embedding
    assert emb.weight.shape == (spec.n_items, 16) and sum(p is emb.weight for p in model.parameters()) == 1


def test_random_window_mask_function() -> None:
    batch = random_batch(random_spec(), B, N, seed=1, pad_left=[0, 3, 11])
    zero = random_time_window_mask(batch.valid, batch.time_hours, torch.zeros(B))
    torch.testing.assert_close(zero, causal_mask(batch.valid))
    huge = random_time_window_mask(batch.valid, batch.time_hours, torch.full((B,), 1e9))
    assert bool((huge[:, 0] == torch.eye(N, dtype=torch.bool)).all())  # only the diagonal survives


def test_read_out_matches_brute_force() -> None:
    spec = random_spec()
    model = _model(spec, transact_k=3)
    batch = random_batch(spec, B, N, seed=2, pad_left=[0, 4, 10])
    hidden = torch.randn(B, N, 32)
    with torch.no_grad():
        got = model.read_out(hidden, batch.valid).view(B, N, 4, 32)
        for b in range(B):
            for k in range(N):
                if not batch.valid[b, k]:
                    torch.testing.assert_close(got[b, k, 3], model.pool_proj(torch.zeros(32)))
                    continue
                for s in range(3):
                    j = k - s
                    expected = hidden[b, j] if j >= 0 and batch.valid[b, j] else torch.zeros(32)
                    torch.testing.assert_close(got[b, k, s], expected)
                first = int((~batch.valid[b]).sum())
                pooled = hidden[b, first : k + 1].max(dim=0).values
                torch.testing.assert_close(got[b, k, 3], model.pool_proj(pooled))


def test_causality_in_eval() -> None:
    spec = random_spec()
    model = _model(spec)
    batch = random_batch(spec, B, N, seed=4, pad_left=[0, 2, 5])
    b, j = 1, 7
    with torch.no_grad():
        before = _outputs(model(batch))
        after = _outputs(model(_change_event(batch, spec, b, j)))
    for name in before:
        torch.testing.assert_close(after[name][b, 2:j], before[name][b, 2:j], atol=1e-5, rtol=0, msg=name)
        for other in (0, 2):
            torch.testing.assert_close(after[name][other], before[name][other], atol=1e-5, rtol=0, msg=name)
        assert not torch.allclose(after[name][b, j:], before[name][b, j:], atol=1e-4), name


def test_padding_invariance_in_eval() -> None:
    spec = random_spec()
    model = _model(spec)
    batch = random_batch(spec, B, N, seed=7, pad_left=[0, 3, 6])
    extra = 5
    with torch.no_grad():
        short = _outputs(model(batch))
        long = _outputs(model(with_left_padding(batch, extra)))
    for name in short:
        torch.testing.assert_close(
            long[name][:, extra:][batch.valid], short[name][batch.valid], atol=1e-5, rtol=0, msg=name
        )


def _forward(model: TransAct, batch: SequenceBatch, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(batch).item_hidden


def test_random_window_mask_only_in_training() -> None:
    spec = random_spec()
    model = _model(spec, dropout=0.0, transact_window="1w")
    batch = random_batch(spec, B, N, seed=5, pad_left=[0, 1, 4])
    model.eval()
    torch.testing.assert_close(_forward(model, batch, 0), _forward(model, batch, 1))
    evaluated = _forward(model, batch, 0)
    model.train()
    first, second = _forward(model, batch, 0), _forward(model, batch, 1)
    torch.testing.assert_close(_forward(model, batch, 0), first)  # the draw comes from the global RNG
    assert not torch.allclose(first, second, atol=1e-4)
    assert not torch.allclose(first, evaluated, atol=1e-4)
    # untimed data: no random mask, so training (dropout 0) equals evaluation
    untimed = random_spec(timed=False)
    model = _model(untimed, dropout=0.0)
    batch = random_batch(untimed, B, N, seed=5, pad_left=[0, 1, 4])
    evaluated = _forward(model, batch, 0)
    model.train()
    torch.testing.assert_close(_forward(model, batch, 0), evaluated)
    torch.testing.assert_close(_forward(model, batch, 1), evaluated)


def test_huge_window_keeps_the_diagonal_and_stays_finite() -> None:
    spec = random_spec()
    model = _model(spec, dropout=0.1, transact_window="100y").train()
    batch = random_batch(spec, 2, N, seed=9, pad_left=[N, 2])  # an all-padding row too
    out = model(batch)
    for t in _outputs(out).values():
        assert bool(torch.isfinite(t).all())
    IntentRecLoss(1.0)(model, out, batch).total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.parametrize("window", ["off", "24h"])
def test_tiny_model_overfits(window: str) -> None:
    """Memorises 8 sequences. With the random window mask the model trains on masked contexts and is evaluated on
    full ones (a deliberate train/eval mismatch, PAPER §8.6), so there the training-mode loss is checked."""
    torch.manual_seed(0)
    spec = random_spec(n_items=30)
    batch = random_batch(spec, 8, 10, seed=0, pad_left=[0, 0, 1, 2, 0, 3, 0, 1])
    model = build_model(tiny_model_config(architecture="transact", transact_k=4, transact_window=window), spec)
    result = overfit(model, batch, steps=150)
    if window != "off":
        assert result.last_train_loss < 0.2 * result.first_loss, result
        return
    assert result.eval_loss < 0.2 * result.first_loss, result
    assert result.item_accuracy > 0.9 and result.intent_accuracy["action"] > 0.9, result
