"""Building blocks: masks, feature embedder, timestamp encoding, Transformer blocks."""

from __future__ import annotations

import doctest
from dataclasses import replace

import pytest
import torch

import intentrec.model.intentrec
import intentrec.model.layers
import intentrec.model.losses
import intentrec.testing
from intentrec.model.layers import (
    MASKED_LOGIT,
    CausalEncoder,
    FCNorm,
    FeatureEmbedder,
    TimestampEncoding,
    bidirectional_mask,
    causal_mask,
    mask_leading_classes,
    window_mask,
)
from intentrec.testing import random_batch, random_spec, tiny_model_config


@pytest.mark.parametrize(
    "module",
    [intentrec.model.layers, intentrec.model.intentrec, intentrec.model.losses, intentrec.testing],
)
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert result.failed == 0


def test_causal_mask_by_hand() -> None:
    valid = torch.tensor([[False, True, True], [True, True, True]])
    mask = causal_mask(valid)
    assert mask.shape == (2, 1, 3, 3)
    expected_row0 = torch.tensor(
        [
            [True, False, False],  # padding query: only its own diagonal
            [False, True, False],  # key 0 is padding
            [False, True, True],
        ]
    )
    assert torch.equal(mask[0, 0], expected_row0)
    assert torch.equal(mask[1, 0], torch.ones(3, 3, dtype=torch.bool).tril())


def test_window_mask_matches_brute_force() -> None:
    spec = random_spec(timed=True)
    batch = random_batch(spec, 6, 15, seed=3)
    mask = window_mask(batch.valid, batch.window_start)[:, 0]
    B, n = batch.valid.shape
    for b in range(B):
        for q in range(n):
            for k in range(n):
                allowed = (k <= q and bool(batch.valid[b, k]) and k >= int(batch.window_start[b, q])) or k == q
                assert bool(mask[b, q, k]) == allowed, (b, q, k)
    # the generated windows are not trivial: some start after the row's first event
    first = batch.valid.float().argmax(dim=1, keepdim=True)
    assert bool(((batch.window_start > first) & batch.valid).any())


def test_bidirectional_mask_by_hand() -> None:
    valid = torch.tensor([[False, True, True], [True, True, True]])
    mask = bidirectional_mask(valid)
    assert mask.shape == (2, 1, 3, 3)
    expected_row0 = torch.tensor(
        [
            [True, True, True],  # padding query: its own diagonal and the real keys
            [False, True, True],  # key 0 is padding; later keys are allowed (no causality)
            [False, True, True],
        ]
    )
    assert torch.equal(mask[0, 0], expected_row0)
    assert bool(mask[1, 0].all())


def test_every_mask_row_has_an_allowed_key() -> None:
    valid = torch.zeros(2, 5, dtype=torch.bool)
    valid[1, 3:] = True
    window_start = torch.full((2, 5), 4)  # deliberately after some queries
    assert bool(causal_mask(valid).any(dim=-1).all())
    assert bool(window_mask(valid, window_start).any(dim=-1).all())
    assert bool(bidirectional_mask(valid).any(dim=-1).all())


def test_mask_leading_classes() -> None:
    logits = torch.randn(3, 4, 6)
    masked = mask_leading_classes(logits, 2)
    assert bool((masked[..., :2] == MASKED_LOGIT).all())
    assert torch.equal(masked[..., 2:], logits[..., 2:])


def test_feature_embedder_concatenates_and_pools() -> None:
    spec = random_spec(n_items=20, n_numeric=3)
    cfg = tiny_model_config()
    emb = FeatureEmbedder(cfg, spec)
    batch = random_batch(spec, 3, 7, seed=0, pad_left=[0, 2, 7])
    feats = emb(batch)
    n_inputs = len(spec.inputs)
    assert emb.d_full == cfg.item_emb_dim + n_inputs * cfg.cat_emb_dim + 3
    assert feats.shape == (3, 7, emb.d_full)

    # item part is the item embedding
    assert torch.equal(feats[..., : cfg.item_emb_dim], emb.item_embedding(batch.item_idx))
    # multi-valued "genre" (second input): mean over the non-zero labels
    offset = cfg.item_emb_dim + cfg.cat_emb_dim
    table = emb.attribute_embeddings[1]
    labels = batch.categorical["genre"][0, 4]
    expected = table.weight[labels[labels > 0]].mean(dim=0)
    torch.testing.assert_close(feats[0, 4, offset : offset + cfg.cat_emb_dim], expected)
    # numeric scalars at the end
    torch.testing.assert_close(feats[..., -3:], batch.numeric)
    # an all-padding row embeds to zeros (numeric are zero there too)
    assert bool((feats[2] == 0).all())


def test_feature_embedder_all_zero_multi_label_is_zero() -> None:
    spec = random_spec(n_items=20)
    cfg = tiny_model_config()
    emb = FeatureEmbedder(cfg, spec)
    batch = random_batch(spec, 2, 5, seed=1, pad_left=0)
    genre = batch.categorical["genre"].clone()
    genre[0, 2] = 0
    feats = emb(replace(batch, categorical={**batch.categorical, "genre": genre}))
    offset = cfg.item_emb_dim + cfg.cat_emb_dim
    assert bool((feats[0, 2, offset : offset + cfg.cat_emb_dim] == 0).all())
    assert not torch.isnan(feats).any()


@pytest.mark.parametrize("timed", [True, False])
def test_timestamp_encoding(timed: bool) -> None:
    spec = random_spec(timed=timed)
    cfg = tiny_model_config()
    enc = TimestampEncoding(cfg, spec, 10)
    batch = random_batch(spec, 3, 8, seed=2, pad_left=[0, 3, 8])
    out = enc(batch)
    assert out.shape == (3, 8, 10)
    assert bool((out[~batch.valid] == 0).all())
    assert bool((out[batch.valid] != 0).any(dim=-1).all())

    # timed data reads time_hours, untimed data reads position instead
    shifted_time = enc(replace(batch, time_hours=batch.time_hours + 1.0))
    shifted_pos = enc(replace(batch, position=batch.position + 1))
    valid = batch.valid
    assert torch.allclose(shifted_time[valid], out[valid]) is (not timed)
    assert torch.allclose(shifted_pos[valid], out[valid]) is timed

    odd = TimestampEncoding(cfg, spec, 7)(batch)
    assert odd.shape == (3, 8, 7)


def test_fcnorm_normalises() -> None:
    layer = FCNorm(12, 8)
    out = layer(torch.randn(4, 5, 12))
    assert out.shape == (4, 5, 8)
    torch.testing.assert_close(out.mean(dim=-1), torch.zeros(4, 5), atol=1e-5, rtol=0)


def test_causal_encoder_is_causal_and_finite_on_padding() -> None:
    torch.manual_seed(0)
    enc = CausalEncoder(16, n_layers=2, n_heads=4, ffn_mult=2, dropout=0.0).eval()
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[1, :6] = False  # an all-padding row
    x = torch.randn(2, 6, 16)
    out = enc(x, causal_mask(valid))
    assert out.shape == (2, 6, 16)
    assert bool(torch.isfinite(out).all())
    x2 = x.clone()
    x2[0, 4] += torch.randn(16)
    out2 = enc(x2, causal_mask(valid))
    torch.testing.assert_close(out2[0, :4], out[0, :4], atol=1e-5, rtol=0)
    assert not torch.allclose(out2[0, 4], out[0, 4])


def test_causal_encoder_in_training_mode_has_no_nan() -> None:
    enc = CausalEncoder(16, n_layers=1, n_heads=2, ffn_mult=2, dropout=0.5).train()
    valid = torch.zeros(3, 5, dtype=torch.bool)
    valid[0] = True
    out = enc(torch.randn(3, 5, 16), causal_mask(valid))
    out.sum().backward()
    assert bool(torch.isfinite(out).all())
