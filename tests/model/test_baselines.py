"""Baselines of PAPER §6.3 (SASRec, BERT4Rec, GRU, LSTM, Transformer): build, shapes, masking, causality, padding,
overfit. What is specific to BERT4Rec (Cloze masking, eval-mode [MASK] slot) is in ``test_bert4rec.py``."""

from __future__ import annotations

import doctest
from dataclasses import replace

import pytest
import torch
from torch import nn

import intentrec.model.baselines._common
import intentrec.model.baselines.rnn
from intentrec.errors import ConfigError
from intentrec.model import IntentRecLoss, build_model
from intentrec.model.baselines import BERT4Rec, RNNRec, SASRec, TransformerRec
from intentrec.model.layers import MASKED_LOGIT
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch
from intentrec.testing import overfit, random_batch, random_spec, tiny_model_config, with_left_padding

ARCHITECTURES = ("sasrec", "bert4rec", "gru", "lstm", "transformer")
WITH_HEADS = ("gru", "lstm", "transformer")
CAUSAL = ("sasrec", "gru", "lstm", "transformer")  # BERT4Rec is bidirectional
CLASSES: dict[str, type[nn.Module]] = {
    "sasrec": SASRec, "bert4rec": BERT4Rec, "gru": RNNRec, "lstm": RNNRec, "transformer": TransformerRec
}
B, N = 3, 10


def _model(spec: DataSpec, architecture: str, **overrides: object) -> nn.Module:
    torch.manual_seed(0)
    # 2 layers so the RNNs' between-layer path and stacked blocks are exercised
    return build_model(tiny_model_config(architecture=architecture, n_layers=2, **overrides), spec).eval()


def _outputs(out: ModelOutput) -> dict[str, torch.Tensor]:
    tensors = {"item_hidden": out.item_hidden}
    tensors.update({f"intent/{k}": v for k, v in out.intent_logits.items()})
    return tensors


def _change_item(batch: SequenceBatch, spec: DataSpec, b: int, j: int) -> SequenceBatch:
    """Replace the item of event (b, j) (the only input the baselines read)."""
    item_idx = batch.item_idx.clone()
    item_idx[b, j] = 2 + (int(item_idx[b, j]) - 2 + 7) % (spec.n_items - 2)
    return replace(batch, item_idx=item_idx)


@pytest.mark.parametrize("module", [intentrec.model.baselines._common, intentrec.model.baselines.rnn])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, verbose=False)  # type: ignore[arg-type]
    assert result.failed == 0 and result.attempted > 0


# ----------------------------------------------------------------------------------------------------------
# build, shapes, heads, masking
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("item_head", ["tied", "linear"])
def test_build_and_shapes(architecture: str, item_head: str) -> None:
    spec = random_spec()
    model = _model(spec, architecture, item_head=item_head)
    assert type(model) is CLASSES[architecture]
    if isinstance(model, RNNRec):
        assert model.cell == architecture
    out = model(random_batch(spec, B, N, seed=0))
    assert out.item_hidden.shape == (B, N, 32)
    assert out.intent_attention is None and out.intent_embedding is None
    if architecture in WITH_HEADS:
        assert model.head_names == ("action", "genre")
        assert list(out.intent_logits) == ["action", "genre"]
        for a in spec.intents:
            assert out.intent_logits[a.name].shape == (B, N, a.n_classes)
            assert bool((out.intent_logits[a.name][..., 0] == MASKED_LOGIT).all())
    else:
        assert model.head_names == () and out.intent_logits == {}
    for name, t in _outputs(out).items():
        assert bool(torch.isfinite(t).all()), name
    scores = model.score_items(out.item_hidden * 10)
    assert scores.shape == (B, N, spec.n_items)
    assert bool((scores[..., :2] == MASKED_LOGIT).all())
    assert bool((scores.argmax(dim=-1) >= 2).all())
    assert model.score_items(out.item_hidden[:, -1]).shape == (B, spec.n_items)
    # item ids only (PAPER §6.3): no table for the categorical input attributes
    assert not any("attribute" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tied_head_shares_the_item_embedding(architecture: str) -> None:
    spec = random_spec()
    model = _model(spec, architecture, item_head="tied")
    emb = model.item_embedding
    extra = 1 if architecture == "bert4rec" else 0  # BERT4Rec's [MASK] row, never scored
    assert isinstance(emb, nn.Embedding) and emb.weight.shape == (spec.n_items + extra, 16)
    assert bool((emb.weight[0] == 0).all())  # PAD row
    hidden = torch.randn(2, 32)
    before = model.score_items(hidden)
    with torch.no_grad():
        emb.weight[5] += 1.0
    after = model.score_items(hidden)
    assert not torch.allclose(after[:, 5], before[:, 5])
    torch.testing.assert_close(after[:, 6:], before[:, 6:])
    assert sum(p is emb.weight for p in model.parameters()) == 1


@pytest.mark.parametrize("architecture", WITH_HEADS)
def test_heads_selection(architecture: str) -> None:
    spec = random_spec(intents=(("action", 6, False), ("format", 3, False), ("genre", 9, True)))
    model = _model(spec, architecture, heads=("genre", "action"))
    assert list(model(random_batch(spec, B, N, seed=1)).intent_logits) == ["genre", "action"]
    # item-only when there are no intents (or no heads are asked for); IntentRec's V1-V3 would refuse
    for spec_, heads in ((random_spec(intents=()), None), (spec, ())):
        model = _model(spec_, architecture, heads=heads)
        assert model.head_names == () and model(random_batch(spec_, B, N, seed=1)).intent_logits == {}
    with pytest.raises(ConfigError, match="not intents"):
        _model(spec, architecture, heads=("nope",))


def test_unknown_architecture_and_cell() -> None:
    spec = random_spec()
    cfg = tiny_model_config().model_copy(update={"architecture": "bert5rec"})  # bypasses the Literal check
    with pytest.raises(ConfigError, match=r"unknown model\.architecture 'bert5rec'"):
        build_model(cfg, spec)
    with pytest.raises(ConfigError, match="gru"):
        RNNRec(tiny_model_config(), spec, cell="rnn")  # type: ignore[arg-type]


def test_sasrec_ignores_heads_and_intentrec_still_builds() -> None:
    from intentrec.model import IntentRec

    spec = random_spec()
    assert _model(spec, "sasrec", heads=("action",)).head_names == ()
    assert _model(spec, "bert4rec", heads=("action",)).head_names == ()
    assert isinstance(build_model(tiny_model_config(), spec), IntentRec)


# ----------------------------------------------------------------------------------------------------------
# causality and padding
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", CAUSAL)
def test_causality(architecture: str) -> None:
    spec = random_spec()
    model = _model(spec, architecture)
    batch = random_batch(spec, B, N, seed=4, pad_left=[0, 2, 5])
    b, j = 1, 6
    earlier = slice(2, j)  # the real events before j (columns 0-1 are padding, whose outputs are meaningless)
    with torch.no_grad():
        before = _outputs(model(batch))
        after = _outputs(model(_change_item(batch, spec, b, j)))
    for name in before:
        torch.testing.assert_close(after[name][b, earlier], before[name][b, earlier], atol=1e-5, rtol=0, msg=name)
        for other in (0, 2):
            torch.testing.assert_close(after[name][other], before[name][other], atol=1e-5, rtol=0, msg=name)
        assert not torch.allclose(after[name][b, j:], before[name][b, j:], atol=1e-4), name


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_padding_invariance(architecture: str) -> None:
    spec = random_spec()
    model = _model(spec, architecture)
    batch = random_batch(spec, B, N, seed=7, pad_left=[0, 3, 6])
    extra = 4
    with torch.no_grad():
        short = _outputs(model(batch))
        long = _outputs(model(with_left_padding(batch, extra)))
    valid = batch.valid
    for name in short:
        torch.testing.assert_close(long[name][:, extra:][valid], short[name][valid], atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_batched_rows_equal_unpadded_rows(architecture: str) -> None:
    """Each row of a padded batch gives what that row alone, without any padding, gives."""
    spec = random_spec()
    model = _model(spec, architecture)
    pads = [0, 3, 6, 9]
    batch = random_batch(spec, len(pads), N, seed=8, pad_left=pads)
    with torch.no_grad():
        together = _outputs(model(batch))
        for b, p in enumerate(pads):
            alone = random_batch(spec, 1, N - p, seed=0, pad_left=0)
            alone = replace(alone, item_idx=batch.item_idx[b : b + 1, p:], position=batch.position[b : b + 1, p:])
            single = _outputs(model(alone))
            for name in together:
                torch.testing.assert_close(together[name][b, p:], single[name][0], atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_all_padding_row_is_finite(architecture: str) -> None:
    spec = random_spec()
    model = _model(spec, architecture, dropout=0.1).train()
    batch = random_batch(spec, 2, N, seed=9, pad_left=[N, 2])
    out = model(batch)
    for t in _outputs(out).values():
        assert bool(torch.isfinite(t).all())
    IntentRecLoss(1.0)(model, out, batch).total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


# ----------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("architecture", "item_head", "overrides", "steps"), [
    ("sasrec", "tied", {}, 150), ("gru", "tied", {}, 150), ("lstm", "linear", {}, 150), ("transformer", "tied", {}, 150),
    # a few masked targets per row and step instead of all of them: more masks and steps to memorise the batch
    # (item_accuracy and eval_loss are then measured at the eval-mode [MASK] slot, the last column)
    ("bert4rec", "tied", {"mask_prob": 0.5}, 400),
])
def test_tiny_model_overfits(architecture: str, item_head: str, overrides: dict[str, object], steps: int) -> None:
    torch.manual_seed(0)
    spec = random_spec(n_items=30)
    batch = random_batch(spec, 8, 10, seed=0, pad_left=[0, 0, 1, 2, 0, 3, 0, 1])
    model = build_model(tiny_model_config(architecture=architecture, item_head=item_head, **overrides), spec)
    result = overfit(model, batch, steps=steps)
    assert result.eval_loss < 0.2 * result.first_loss, result
    assert result.item_accuracy > 0.9, result
    if architecture in WITH_HEADS:
        assert result.intent_accuracy["action"] > 0.9, result


@pytest.mark.parametrize("architecture", [*ARCHITECTURES, "transact"])
def test_dot_head_scores_the_hidden_row_against_the_item_embeddings(architecture: str) -> None:
    spec = random_spec()
    model = _model(spec, architecture, item_head="dot", item_emb_dim=32)
    assert not hasattr(model.item_output, "item_proj")
    with torch.no_grad():
        model.item_output.item_bias.normal_()
    hidden = torch.randn(4, 32)
    scores = model.score_items(hidden)  # (4, I)
    weight = model.item_embedding.weight[: spec.n_items]
    expected = hidden @ weight.T + model.item_output.item_bias  # (4, I)
    torch.testing.assert_close(scores[:, 2:], expected[:, 2:])
    assert bool((scores[:, :2] == MASKED_LOGIT).all())
    out = model(random_batch(spec, B, N, seed=0))
    assert out.item_hidden.shape == (B, N, 32)


def test_dot_head_needs_equal_widths() -> None:
    with pytest.raises(ValueError, match=r"item_head 'dot'.*d_model 32, item_emb_dim 16"):
        tiny_model_config(architecture="sasrec", item_head="dot")


@pytest.mark.parametrize("architecture", ["sasrec", "transformer", "bert4rec"])
def test_item_position_input_is_layer_normalised_and_zero_at_padding(architecture: str) -> None:
    spec = random_spec()
    model = _model(spec, architecture)
    batch = with_left_padding(random_batch(spec, B, N, seed=1), 3)
    x = model.embedder(batch)  # (B, n, D)
    real = x[batch.valid]  # (R, D)
    torch.testing.assert_close(real.mean(dim=-1), torch.zeros(real.shape[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(real.std(dim=-1, unbiased=False), torch.ones(real.shape[0]), atol=0.05, rtol=0)  # LayerNorm eps
    assert bool((x[~batch.valid] == 0).all())
