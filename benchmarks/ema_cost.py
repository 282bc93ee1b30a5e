"""Cost of ``train.ema_decay``: one moving-average update and one swap in/out for validation, on one thread.

Usage::

    python benchmarks/ema_cost.py [--items 12070] [--d 256]

The default shape is SASRec on Amazon Beauty with the recipe of BENCHMARKS.md (d = 256, one block).
"""

from __future__ import annotations

import argparse
import time

import torch

from intentrec.model import build_model
from intentrec.testing import random_spec, tiny_model_config
from intentrec.train.ema import WeightEMA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=12070, help="catalogue size (incl. PAD and UNK)")
    parser.add_argument("--d", type=int, default=256, help="d_model = item_emb_dim")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = tiny_model_config(architecture="sasrec", d_model=args.d, item_emb_dim=args.d, n_layers=1, n_heads=1,
                            item_head="dot", max_len=50)
    model = build_model(cfg, random_spec(n_items=args.items))
    ema = WeightEMA(model, 0.999)
    for _ in range(5):  # warm-up
        ema.update(model)
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        ema.update(model)
    update = (time.perf_counter() - t0) / args.repeats
    t0 = time.perf_counter()
    for _ in range(5):
        with ema.swapped_in(model):
            pass
    swap = (time.perf_counter() - t0) / 5
    n = sum(p.numel() for p in model.parameters())
    print(f"{n:,} parameters: update {update * 1e3:.2f} ms per step, swap in + out {swap * 1e3:.1f} ms per validation")


if __name__ == "__main__":
    main()
