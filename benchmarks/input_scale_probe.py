"""Scale of each block of IntentRec's item-encoder input at step 0 (BENCHMARKS.md "Where IntentRec's slow start
came from").

Builds an untrained IntentRec V3 (d = 256, identity init) on a dataset config, runs one training batch, and prints
the rms of each input block (item embedding, attribute embeddings, S, Z) and of its contribution through the input
projection. Extra arguments are config overrides, e.g. ``model.input_block_norm=true``.

Usage::

    python benchmarks/input_scale_probe.py configs/beauty.yaml [key=value ...]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from intentrec import workflows
from intentrec.data import prepare
from intentrec.features.dataset import TrainingWindows, bucketed_batches
from intentrec.model import build_model

SHAPE = ["model.item_head=dot", "model.d_model=256", "model.item_emb_dim=256", "model.n_layers=1", "model.n_heads=1",
         "model.dropout=0.3", "model.identity_init=true", "model.variant=V3"]


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    torch.set_num_threads(1)
    cfg = workflows.load_experiment(sys.argv[1], SHAPE + sys.argv[2:])
    data = prepare(cfg.data, progress=False)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.spec).eval()
    windows = TrainingWindows(data, cfg.model.max_len, cfg.train.duration_weight)
    batch_idx = bucketed_batches(windows.lengths, 64, np.random.default_rng(0))[0]
    batch = workflows._collate_fn(cfg, data)([windows[i] for i in batch_idx])
    caught: list[torch.Tensor] = []
    proj = model.item_encoder.input_proj.linear
    proj.register_forward_hook(lambda _m, inputs, _o: caught.append(inputs[0].detach()))
    with torch.no_grad():
        model(batch)
    x = caught[0][batch.valid]  # (P, d_in)
    e, d_f = cfg.model.item_emb_dim, model.embedder.d_full
    blocks = {"item": (0, e), "attributes": (e, d_f), "S": (d_f, d_f + cfg.model.d_short), "Z": (d_f + cfg.model.d_short, x.shape[1])}
    weight = proj.weight.detach()
    for name, (a, b) in blocks.items():
        contribution = x[:, a:b] @ weight[:, a:b].T  # (P, D)
        print(f"{name:10s} input rms {x[:, a:b].pow(2).mean().sqrt():.4f}   "
              f"projected rms {contribution.pow(2).mean().sqrt():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
