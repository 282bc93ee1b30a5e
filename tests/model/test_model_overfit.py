"""A tiny model memorises a tiny dataset (the whole stack trains end to end)."""

from __future__ import annotations

import pytest
import torch

from intentrec.model import build_model
from intentrec.testing import overfit, random_batch, random_spec, tiny_model_config


@pytest.mark.parametrize(
    ("variant", "item_head"), [("V0", "tied"), ("V1", "linear"), ("V2", "tied"), ("V3", "tied"), ("V3", "linear")]
)
def test_tiny_model_overfits(variant: str, item_head: str) -> None:
    torch.manual_seed(0)
    spec = random_spec(n_items=30)
    batch = random_batch(spec, 8, 10, seed=0, pad_left=[0, 0, 1, 2, 0, 3, 0, 1])
    model = build_model(tiny_model_config(variant=variant, item_head=item_head), spec)
    result = overfit(model, batch, steps=200)
    assert result.eval_loss < 0.1 * result.first_loss
    assert result.item_accuracy > 0.97
    if variant != "V0":
        assert result.intent_accuracy["action"] > 0.97
