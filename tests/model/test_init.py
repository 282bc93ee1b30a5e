"""``model.init``: N(0, 0.02) (the default) or Xavier-normal (RecTools' SASRec) for every linear and embedding weight."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from intentrec.config import ModelConfig
from intentrec.model import build_model
from intentrec.model.layers import INIT_STD, weight_initializer
from intentrec.testing import overfit, random_batch, random_spec, tiny_model_config

ARCHITECTURES = [
    pytest.param("intentrec", {"variant": "V3"}, id="intentrec-V3"),
    pytest.param("sasrec", {}, id="sasrec"),
    pytest.param("bert4rec", {}, id="bert4rec"),
    pytest.param("gru", {}, id="gru"),
    pytest.param("transact", {"transact_k": 3}, id="transact"),
]


def _weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every linear / embedding weight large enough for its sample std to be within a few percent."""
    return [(name, m.weight.detach()) for name, m in model.named_modules()
            if isinstance(m, nn.Linear | nn.Embedding) and m.weight.numel() >= 2000]


@pytest.mark.parametrize(("architecture", "overrides"), ARCHITECTURES)
def test_each_scheme_gives_every_matrix_its_std(architecture: str, overrides: dict[str, object]) -> None:
    spec = random_spec(n_items=300)
    for scheme in ("normal", "xavier"):
        torch.manual_seed(0)
        model = build_model(tiny_model_config(architecture=architecture, init=scheme, d_model=64, **overrides), spec)
        weights = _weights(model)
        assert weights, "no matrix large enough to check"
        for name, w in weights:
            fan_out, fan_in = w.shape
            expected = INIT_STD if scheme == "normal" else math.sqrt(2.0 / (fan_in + fan_out))
            if isinstance(model.get_submodule(name), nn.Embedding) and model.get_submodule(name).padding_idx is not None:
                w = w[torch.arange(w.shape[0]) != model.get_submodule(name).padding_idx]
            assert w.std().item() == pytest.approx(expected, rel=0.08), (scheme, name, tuple(w.shape))


def test_xavier_keeps_zero_biases_padding_rows_and_layernorm_defaults() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(architecture="sasrec", init="xavier"), random_spec(n_items=50))
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            assert torch.count_nonzero(module.weight[module.padding_idx]) == 0
        if isinstance(module, nn.LayerNorm):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.count_nonzero(module.bias) == 0


def test_identity_init_is_applied_after_xavier() -> None:
    model = build_model(tiny_model_config(init="xavier", identity_init=True, item_emb_dim=32), random_spec(n_items=50))
    cfg: ModelConfig = model.cfg
    for encoder in (model.intent_encoder, model.item_encoder):
        block = encoder.input_proj.linear.weight[:, : cfg.item_emb_dim]
        assert torch.equal(block, torch.eye(cfg.item_emb_dim))


@pytest.mark.parametrize(("architecture", "overrides"), ARCHITECTURES)
def test_a_tiny_xavier_model_overfits_a_tiny_dataset(architecture: str, overrides: dict[str, object]) -> None:
    spec = random_spec(n_items=30)
    batch = random_batch(spec, 8, 10, seed=0, pad_left=[0, 0, 1, 2, 0, 3, 0, 1])
    torch.manual_seed(0)
    model = build_model(tiny_model_config(architecture=architecture, init="xavier", **overrides), spec)
    result = overfit(model, batch, steps=200)
    assert result.eval_loss < 0.2 * result.first_loss
    assert result.item_accuracy > 0.9


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="init"):
        ModelConfig(init="kaiming")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown model\.init"):
        weight_initializer("kaiming")
