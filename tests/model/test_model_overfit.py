"""A tiny model memorises a tiny dataset (the whole stack trains end to end)."""

from __future__ import annotations

import pytest
import torch

from intentrec.model import IntentRecLoss, build_model
from intentrec.testing import random_batch, random_spec, tiny_model_config


@pytest.mark.parametrize(
    ("variant", "item_head"), [("V0", "tied"), ("V1", "linear"), ("V2", "tied"), ("V3", "tied"), ("V3", "linear")]
)
def test_tiny_model_overfits(variant: str, item_head: str) -> None:
    torch.manual_seed(0)
    spec = random_spec(n_items=30)
    batch = random_batch(spec, 8, 10, seed=0, pad_left=[0, 0, 1, 2, 0, 3, 0, 1])
    model = build_model(tiny_model_config(variant=variant, item_head=item_head), spec)
    loss_fn = IntentRecLoss(0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(200):
        loss = loss_fn(model, model(batch), batch)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        if first is None:
            first = loss.total.item()
    assert first is not None

    model.eval()
    with torch.no_grad():
        out = model(batch)
        final = loss_fn(model, out, batch).total.item()
        sel = batch.target_item > 0
        predicted = model.score_items(out.item_hidden[sel]).argmax(dim=-1)
        item_acc = (predicted == batch.target_item[sel]).float().mean().item()
    assert final < 0.1 * first
    assert item_acc > 0.97
    if variant != "V0":
        action = out.intent_logits["action"][sel].argmax(dim=-1)
        assert (action == batch.target_intents["action"][sel]).float().mean().item() > 0.97
