"""IntentRec V0-V3: shapes, causality, padding invariance, attention, masking, gradient flow."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from intentrec.errors import ConfigError
from intentrec.model import IntentRec, IntentRecLoss, build_model, set_item_attribute_codes
from intentrec.model.layers import MASKED_LOGIT, BlockLayerNorm, ItemAttributeTable
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch
from intentrec.testing import random_batch, random_spec, tiny_model_config, with_left_padding
from intentrec.train.checkpoint import load_model_weights, save_model_weights

VARIANTS = ("V0", "V1", "V2", "V3")
B, N = 3, 10


def _model(spec: DataSpec, **overrides: object) -> IntentRec:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(**overrides), spec)
    assert isinstance(model, IntentRec)
    return model.eval()


def _outputs(out: ModelOutput) -> dict[str, torch.Tensor]:
    """Every tensor of an output by name (for comparisons)."""
    tensors = {"item_hidden": out.item_hidden}
    tensors.update({f"intent/{k}": v for k, v in out.intent_logits.items()})
    if out.intent_attention is not None:
        tensors["attention"] = out.intent_attention
    if out.intent_embedding is not None:
        tensors["z"] = out.intent_embedding
    return tensors


def _perturb_event(batch: SequenceBatch, spec: DataSpec, b: int, j: int) -> SequenceBatch:
    """Change event (b, j): item, attributes, numeric values, its timestamp (and so the time fields from j on)."""
    item_idx = batch.item_idx.clone()
    item_idx[b, j] = 2 + (int(item_idx[b, j]) - 2 + 7) % (spec.n_items - 2)
    categorical = {}
    for a in spec.inputs:
        t = batch.categorical[a.name].clone()
        if a.multi_valued:
            t[b, j] = 0
            t[b, j, 0] = 1 + int(t[b, j, 0] + 1) % (a.n_classes - 1)
        else:
            t[b, j] = 1 + int(t[b, j]) % (a.n_classes - 1)
        categorical[a.name] = t
    numeric = batch.numeric.clone()
    numeric[b, j] = 1.0 - numeric[b, j]
    time_hours = batch.time_hours.clone()
    time_hours[b, j:] += 13.0  # event j happens later, and so every event after it
    gap_bucket = batch.gap_bucket.clone()
    gap_bucket[b, j] = (int(gap_bucket[b, j]) + 5) % 32
    window_start = batch.window_start.clone()
    window_start[b, j:] = torch.arange(j, batch.item_idx.shape[1])  # windows from j on now hold one event
    return replace(
        batch,
        item_idx=item_idx,
        categorical=categorical,
        numeric=numeric,
        time_hours=time_hours,
        gap_bucket=gap_bucket,
        window_start=window_start,
    )


# ----------------------------------------------------------------------------------------------------------
# shapes and structure
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("timed", [True, False])
@pytest.mark.parametrize("item_head", ["tied", "linear"])
def test_output_shapes(variant: str, timed: bool, item_head: str) -> None:
    spec = random_spec(timed=timed)
    model = _model(spec, variant=variant, item_head=item_head)
    batch = random_batch(spec, B, N, seed=0)
    out = model(batch)
    cfg = model.cfg
    assert out.item_hidden.shape == (B, N, cfg.d_model)
    if variant == "V0":
        assert out.intent_logits == {}
        assert out.intent_attention is None and out.intent_embedding is None
    else:
        assert set(out.intent_logits) == {"action", "genre"}
        for a in spec.intents:
            assert out.intent_logits[a.name].shape == (B, N, a.n_classes)
    if variant in ("V2", "V3"):
        assert model.head_names == ("action", "genre")
        assert out.intent_attention is not None and out.intent_embedding is not None
        assert out.intent_attention.shape == (B, N, 2)
        assert out.intent_embedding.shape == (B, N, cfg.d_proj)
    elif variant == "V1":
        assert out.intent_attention is None and out.intent_embedding is None
    for name, t in _outputs(out).items():
        assert bool(torch.isfinite(t).all()), name
    assert model.score_items(out.item_hidden).shape == (B, N, spec.n_items)
    assert model.score_items(out.item_hidden[:, -1]).shape == (B, spec.n_items)


def test_heads_subset_and_single_label_only_spec() -> None:
    spec = random_spec(intents=(("action", 6, False), ("format", 3, False), ("genre", 9, True)))
    model = _model(spec, variant="V3", heads=("genre", "action"))
    out = model(random_batch(spec, B, N, seed=1))
    assert model.head_names == ("genre", "action")
    assert list(out.intent_logits) == ["genre", "action"]
    assert out.intent_logits["genre"].shape == (B, N, 9)
    assert out.intent_attention is not None and out.intent_attention.shape == (B, N, 2)

    single = _model(spec, variant="V2", heads=("format",))
    out1 = single(random_batch(spec, B, N, seed=1))
    assert list(out1.intent_logits) == ["format"]
    assert out1.intent_attention is not None
    torch.testing.assert_close(out1.intent_attention, torch.ones(B, N, 1))


def test_config_errors() -> None:
    spec = random_spec()
    with pytest.raises(ConfigError, match="not intents"):
        build_model(tiny_model_config(variant="V3", heads=("nope",)), spec)
    with pytest.raises(ConfigError, match="needs at least one intent head"):
        build_model(tiny_model_config(variant="V1"), random_spec(intents=()))
    # V0 ignores heads and works without intents
    build_model(tiny_model_config(variant="V0"), random_spec(intents=()))


def test_input_only_attribute_names_may_contain_dots() -> None:
    spec = random_spec(inputs=(("item.brand", 4, False),))
    model = _model(spec, variant="V3")
    out = model(random_batch(spec, B, N, seed=0))
    assert out.item_hidden.shape == (B, N, model.cfg.d_model)


def test_short_term_switch() -> None:
    assert _model(random_spec(timed=True), variant="V3").uses_short_term
    assert not _model(random_spec(timed=True), variant="V3", horizon="off").uses_short_term
    assert _model(random_spec(timed=False), variant="V3", horizon="off").uses_short_term  # last-m window
    assert not _model(random_spec(timed=True), variant="V2").uses_short_term
    # V3 with the window off is V2 (same parameter count)
    v2 = _model(random_spec(), variant="V2")
    v3_off = _model(random_spec(), variant="V3", horizon="off")
    assert sum(p.numel() for p in v2.parameters()) == sum(p.numel() for p in v3_off.parameters())


# ----------------------------------------------------------------------------------------------------------
# causality and padding
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("timed", [True, False])
def test_causality(variant: str, timed: bool) -> None:
    spec = random_spec(timed=timed)
    model = _model(spec, variant=variant)
    batch = random_batch(spec, B, N, seed=4, pad_left=[0, 2, 5])
    b, j = 1, 6
    with torch.no_grad():
        before = _outputs(model(batch))
        after = _outputs(model(_perturb_event(batch, spec, b, j)))
    for name in before:
        torch.testing.assert_close(after[name][b, :j], before[name][b, :j], atol=1e-5, rtol=0, msg=name)
        for other in (0, 2):
            torch.testing.assert_close(after[name][other], before[name][other], atol=1e-5, rtol=0, msg=name)
    assert not torch.allclose(after["item_hidden"][b, j], before["item_hidden"][b, j], atol=1e-4)


@pytest.mark.parametrize("timed", [True, False])
def test_short_term_encoder_is_causal(timed: bool) -> None:
    spec = random_spec(timed=timed)
    model = _model(spec, variant="V3")
    assert model.short_encoder is not None
    batch = random_batch(spec, B, N, seed=5, pad_left=[0, 2, 5])
    b, j = 0, 4

    def short(x: SequenceBatch) -> torch.Tensor:
        return model.short_encoder(model.embedder(x), x)  # type: ignore[misc]

    with torch.no_grad():
        s0 = short(batch)
        s1 = short(_perturb_event(batch, spec, b, j))
    torch.testing.assert_close(s1[b, :j], s0[b, :j], atol=1e-5, rtol=0)
    assert not torch.allclose(s1[b, j], s0[b, j], atol=1e-4)


@pytest.mark.parametrize("timed", [True, False])
def test_short_term_window_restricts(timed: bool) -> None:
    spec = random_spec(timed=timed)
    model = _model(spec, variant="V3")
    assert model.short_encoder is not None
    batch = random_batch(spec, 1, N, seed=6, pad_left=0)
    # windows of 3 events: [k - 2, k]
    window_start = (torch.arange(N) - 2).clamp_min(0)[None, :]
    batch = replace(batch, window_start=window_start)
    k = 7

    def short(x: SequenceBatch) -> torch.Tensor:
        return model.short_encoder(model.embedder(x), x)  # type: ignore[misc]

    def change_item(x: SequenceBatch, j: int) -> SequenceBatch:
        items = x.item_idx.clone()
        items[0, j] = 2 + (int(items[0, j]) - 2 + 11) % (spec.n_items - 2)
        return replace(x, item_idx=items)

    with torch.no_grad():
        base = short(batch)
        outside = short(change_item(batch, 4))  # 4 < window_start[7] = 5
        inside = short(change_item(batch, 5))
    torch.testing.assert_close(outside[0, k], base[0, k], atol=1e-5, rtol=0)
    assert not torch.allclose(inside[0, k], base[0, k], atol=1e-4)
    # the full model still sees event 4 at position 7 through the long-term encoders
    with torch.no_grad():
        full_base = model(batch).item_hidden[0, k]
        full_outside = model(change_item(batch, 4)).item_hidden[0, k]
    assert not torch.allclose(full_outside, full_base, atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("timed", [True, False])
def test_padding_invariance(variant: str, timed: bool) -> None:
    spec = random_spec(timed=timed)
    model = _model(spec, variant=variant)
    batch = random_batch(spec, B, N, seed=7, pad_left=[0, 3, 6])
    extra = 4
    with torch.no_grad():
        short = _outputs(model(batch))
        long = _outputs(model(with_left_padding(batch, extra)))
    valid = batch.valid
    for name in short:
        torch.testing.assert_close(long[name][:, extra:][valid], short[name][valid], atol=1e-5, rtol=0, msg=name)


def test_all_padding_row_is_finite() -> None:
    spec = random_spec()
    model = _model(spec, variant="V3")
    batch = random_batch(spec, 2, N, seed=8, pad_left=[N, 2])
    for t in _outputs(model(batch)).values():
        assert bool(torch.isfinite(t).all())
    model.train()
    out = model(batch)
    loss = IntentRecLoss(1.0)(model, out, batch)
    loss.total.backward()
    assert all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------
# heads, attention, item scores
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["V2", "V3"])
def test_attention_sums_to_one(variant: str) -> None:
    spec = random_spec()
    model = _model(spec, variant=variant)
    out = model(random_batch(spec, B, N, seed=9))
    assert out.intent_attention is not None
    torch.testing.assert_close(out.intent_attention.sum(dim=-1), torch.ones(B, N))
    assert bool((out.intent_attention >= 0).all())


@pytest.mark.parametrize("variant", ["V1", "V2", "V3"])
def test_pad_class_never_predicted(variant: str) -> None:
    spec = random_spec()
    model = _model(spec, variant=variant)
    # push the PAD column of every head up: masking must still win
    assert model.intent_heads is not None
    with torch.no_grad():
        for fc in model.intent_heads.fc:
            fc.bias[0] = 100.0
    out = model(random_batch(spec, B, N, seed=10))
    for logits in out.intent_logits.values():
        assert bool((logits[..., 0] == MASKED_LOGIT).all())
        assert bool((torch.softmax(logits, dim=-1)[..., 0] < 1e-30).all())
        assert bool((logits.argmax(dim=-1) != 0).all())


@pytest.mark.parametrize("item_head", ["tied", "linear"])
def test_score_items_masks_pad_and_unk(item_head: str) -> None:
    spec = random_spec()
    model = _model(spec, variant="V0", item_head=item_head)
    scores = model.score_items(torch.randn(5, model.cfg.d_model) * 10)
    assert scores.shape == (5, spec.n_items)
    assert bool((scores[:, :2] == MASKED_LOGIT).all())
    assert bool((scores.argmax(dim=-1) >= 2).all())


def test_tied_head_shares_the_item_embedding() -> None:
    spec = random_spec()
    model = _model(spec, variant="V0", item_head="tied")
    assert model.item_embedding is model.embedder.item_embedding
    hidden = torch.randn(2, model.cfg.d_model)
    before = model.score_items(hidden)
    with torch.no_grad():
        model.item_embedding.weight[5] += 1.0
    after = model.score_items(hidden)
    assert not torch.allclose(after[:, 5], before[:, 5])
    torch.testing.assert_close(after[:, 6:], before[:, 6:])
    names = [n for n, _ in model.named_parameters()]
    assert sum("item_embedding" in n for n in names) == 1


def test_initialisation() -> None:
    spec = random_spec(n_items=500)
    model = _model(spec, variant="V3")
    w = model.item_embedding.weight.detach()
    assert bool((w[0] == 0).all())
    assert abs(float(w[1:].std()) - 0.02) < 0.003
    assert model.intent_fusion is not None
    assert bool((model.intent_fusion.fc_att.bias == 0).all())


# ----------------------------------------------------------------------------------------------------------
# gradient flow
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["V2", "V3"])
def test_item_loss_alone_trains_the_intent_path(variant: str) -> None:
    spec = random_spec()
    model = _model(spec, variant=variant).train()
    batch = random_batch(spec, B, N, seed=11)
    loss = IntentRecLoss(0.0)(model, model(batch), batch)
    loss.total.backward()
    modules = {"intent_encoder": model.intent_encoder, "intent_heads": model.intent_heads,
               "intent_fusion": model.intent_fusion}
    if variant == "V3":
        modules["short_encoder"] = model.short_encoder
    for name, module in modules.items():
        assert module is not None
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, name


def test_dot_head_scores_the_item_hidden_row_without_a_projection() -> None:
    spec = random_spec()
    model = _model(spec, variant="V3", item_head="dot", item_emb_dim=32)
    assert not hasattr(model, "item_proj")
    with torch.no_grad():
        model.item_bias.normal_()
    hidden = torch.randn(4, model.cfg.d_model)
    scores = model.score_items(hidden)  # (4, I)
    expected = hidden @ model.item_embedding.weight[: spec.n_items].T + model.item_bias  # (4, I)
    torch.testing.assert_close(scores[:, 2:], expected[:, 2:])
    assert bool((scores[:, :2] == MASKED_LOGIT).all())


@pytest.mark.parametrize("variant", ["V0", "V3"])
def test_identity_init_passes_the_item_embedding_through_the_input_projections(variant: str) -> None:
    spec = random_spec()
    model = _model(spec, variant=variant, item_emb_dim=32, identity_init=True)
    encoders = [e for e in (model.intent_encoder, model.item_encoder) if e is not None]
    assert len(encoders) == (2 if variant == "V3" else 1)
    for encoder in encoders:
        weight = encoder.input_proj.linear.weight.detach()  # (D, d_in)
        torch.testing.assert_close(weight[:, :32], torch.eye(32))
        assert abs(float(weight[:, 32:].std()) - 0.02) < 0.01  # the other features keep the normal initialisation
    with pytest.raises(ValueError, match="identity_init needs item_emb_dim == d_model"):
        _model(spec, variant=variant, identity_init=True)


@pytest.mark.parametrize("variant", ["V0", "V1", "V2", "V3"])
def test_zero_side_inputs_starts_the_encoders_on_the_item_embedding_alone(variant: str) -> None:
    spec = random_spec()
    model = _model(spec, variant=variant, item_emb_dim=32, identity_init=True, zero_side_inputs=True)
    encoders = [e for e in (model.intent_encoder, model.item_encoder) if e is not None]
    for encoder in encoders:
        weight = encoder.input_proj.linear.weight.detach()  # (D, d_in)
        torch.testing.assert_close(weight[:, :32], torch.eye(32))
        assert weight.shape[1] > 32 and bool((weight[:, 32:] == 0).all())
    # at step 0 the item encoder's output does not depend on the side inputs (attributes, S, Z) at all
    batch = random_batch(spec, 4, 8, seed=3)
    assert batch.categorical  # the spec has categorical inputs to change
    other = replace(batch, categorical={k: torch.randint_like(v, 1, 3) for k, v in batch.categorical.items()})
    model.eval()
    with torch.no_grad():
        a, b = model(batch).item_hidden, model(other).item_hidden  # (B, n, D)
    torch.testing.assert_close(a[batch.valid], b[batch.valid])
    # and they learn from the first step: the zero block gets a gradient through the item loss
    model.train()
    out = model(batch)
    out.item_hidden[batch.valid].square().sum().backward()
    assert float(model.item_encoder.input_proj.linear.weight.grad[:, 32:].abs().sum()) > 0


@pytest.mark.parametrize("variant", ["V0", "V3"])
def test_input_block_norm_brings_every_input_block_to_unit_scale(variant: str) -> None:
    spec = random_spec()
    model = _model(spec, variant=variant, item_emb_dim=32, identity_init=True, input_block_norm=True).eval()
    assert model.input_norm is not None
    seen: list[torch.Tensor] = []
    model.item_encoder.input_proj.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    batch = random_batch(spec, 4, 8, seed=6)
    with torch.no_grad():
        model(batch)
    x = seen[0][batch.valid]  # (P, d_in): [item; attributes; numeric; S; Z]
    start = 0
    for width, normalised in [(32, True), *((model.cfg.cat_emb_dim, True) for _ in model.embedder.attributes)]:
        block = x[:, start:start + width]
        if normalised:  # LayerNorm at its initial affine (1, 0): each row has mean 0 and variance about 1
            torch.testing.assert_close(block.mean(-1), torch.zeros(block.shape[0]), atol=1e-5, rtol=0)
            assert float(block.var(-1, unbiased=False).min()) > 0.8  # from rms 0.02; eps = 1e-5 takes a little
        start += width
    plain = _model(spec, variant=variant, item_emb_dim=32, identity_init=True).eval()
    assert plain.input_norm is None  # off: the paper's inputs, unchanged
    torch.testing.assert_close(BlockLayerNorm(((3, True), (2, False)))(torch.tensor([[1.0, 2.0, 3.0, 7.0, -7.0]])),
                               torch.tensor([[-1.2247, 0.0, 1.2247, 7.0, -7.0]]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("stop", [False, True])
def test_short_stop_gradient_keeps_s_out_of_the_item_embeddings_gradient(stop: bool) -> None:
    spec = random_spec()
    model = _model(spec, variant="V3", short_stop_gradient=stop)
    assert model.short_encoder is not None
    captured: list[torch.Tensor] = []
    model.short_encoder.register_forward_hook(lambda _m, _i, out: captured.append(out))
    batch = random_batch(spec, 4, 8, seed=5)
    out = model(batch)
    captured[0][batch.valid].sum().backward(retain_graph=True)  # S alone
    grad = model.item_embedding.weight.grad
    assert (grad is not None and float(grad.abs().sum()) > 0) is not stop
    model.zero_grad()
    out.item_hidden[batch.valid].square().sum().backward()  # the item path still trains S's own weights
    assert float(model.short_encoder.encoder.input_proj.linear.weight.grad.abs().sum()) > 0
    assert float(model.item_embedding.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize(("feature_dropout", "dropped"), [(None, True), (0.5, True), (0.0, False)])
def test_feature_dropout_controls_the_dropout_on_the_input_features(
    feature_dropout: float | None, dropped: bool
) -> None:
    spec = random_spec()
    model = _model(spec, variant="V0", dropout=0.5, feature_dropout=feature_dropout).train()
    batch = random_batch(spec, 4, 8, seed=0)
    seen: list[torch.Tensor] = []
    hook = model.item_encoder.input_proj.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        model(batch)
    finally:
        hook.remove()
    features = model.embedder(batch)  # (B, n, d_full), no dropout inside the embedder
    assert torch.equal(seen[0], features) is not dropped
    # the encoders' own dropout after the projection stays at `dropout` either way
    assert model.item_encoder.dropout.p == 0.5


def _genre_codes(spec: DataSpec, seed: int = 0, width: int = 3) -> dict[str, torch.Tensor]:
    """Random (I, width) genre labels (0 = none) for every item of ``spec``."""
    gen = torch.Generator().manual_seed(seed)
    n_classes = spec.attribute("genre").n_classes
    return {"genre": torch.randint(0, n_classes, (spec.n_items, width), generator=gen)}


@pytest.mark.parametrize("architecture", ["intentrec", "sasrec"])
@pytest.mark.parametrize("item_head", ["tied", "dot", "linear"])
def test_output_attributes_add_each_items_mean_label_embedding_to_its_row(architecture: str, item_head: str) -> None:
    spec = random_spec()
    torch.manual_seed(0)
    cfg = tiny_model_config(architecture=architecture, item_head=item_head, item_emb_dim=32)
    plain = build_model(cfg, spec)
    torch.manual_seed(0)
    model = build_model(cfg.model_copy(update={"output_attributes": ("genre",)}), spec).eval()
    assert set_item_attribute_codes(model, _genre_codes(spec)) == 1
    table = next(m for m in model.modules() if isinstance(m, ItemAttributeTable))
    hidden = torch.randn(5, cfg.d_model)
    # the label embeddings start at zero: the same scores as the model without the option
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "item_attributes" not in k})
    torch.testing.assert_close(model.score_items(hidden), plain.eval().score_items(hidden))

    with torch.no_grad():
        table.embeddings[0].normal_()
    labels = table.codes(0)  # (I, 3)
    emb = table.embeddings[0].detach()  # (n_classes, E)
    extra = torch.stack([  # (I, E) mean embedding of each item's non-zero labels, by hand
        emb[row[row > 0]].mean(dim=0) if bool((row > 0).any()) else torch.zeros(emb.shape[1]) for row in labels
    ])
    extra[:2] = 0.0  # PAD and UNK carry no label
    weight, bias = plain.item_table()
    query = plain.item_query(hidden) if architecture == "intentrec" else plain.item_output.query(hidden)
    expected = query @ (weight + extra).T + (0.0 if bias is None else bias)  # (5, I)
    torch.testing.assert_close(model.score_items(hidden)[:, 2:], expected[:, 2:])


def test_output_attributes_are_learned_and_their_labels_survive_saving(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = random_spec()
    cfg = tiny_model_config(output_attributes=("genre", "action"))
    model = build_model(cfg, spec).train()
    codes = {**_genre_codes(spec, width=4), "action": torch.randint(0, 6, (spec.n_items,))}
    set_item_attribute_codes(model, codes)
    batch = random_batch(spec, 4, 8, seed=1)
    IntentRecLoss(1.0)(model, model(batch), batch).total.backward()
    table = model.item_attributes
    assert table is not None
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in table.embeddings)

    save_model_weights(model, tmp_path / "m.safetensors")
    fresh = build_model(cfg, spec)  # built with (I, 1) placeholders: the saved label width (4) wins
    load_model_weights(fresh, tmp_path / "m.safetensors")
    assert fresh.item_attributes is not None
    assert torch.equal(fresh.item_attributes.codes(0)[2:], codes["genre"][2:])
    assert torch.equal(fresh.item_attributes.codes(1)[2:, 0], codes["action"][2:])  # single-valued: (I, 1)
    assert int(fresh.item_attributes.codes(0)[:2].abs().sum()) == 0  # PAD / UNK rows cleared


def test_output_attributes_reject_unknown_names_and_bad_labels() -> None:
    spec = random_spec()
    with pytest.raises(ConfigError, match=r"output_attributes names \['nope'\].*available: \['action', 'country'"):
        build_model(tiny_model_config(output_attributes=("nope",)), spec)
    with pytest.raises(ValueError, match="output_attributes repeats a name"):
        tiny_model_config(output_attributes=("genre", "genre"))
    model = build_model(tiny_model_config(output_attributes=("genre",)), spec)
    with pytest.raises(ValueError, match="no item labels for attribute 'genre'"):
        set_item_attribute_codes(model, {})
    with pytest.raises(ValueError, match="must have 40 rows"):
        set_item_attribute_codes(model, {"genre": torch.zeros(39, 2, dtype=torch.long)})
    with pytest.raises(ValueError, match=r"must lie in \[0, 8\)"):
        set_item_attribute_codes(model, {"genre": torch.full((40, 2), 8)})
