"""Profile IntentRec training steps (CUDA kernels by time), bf16 autocast vs fp32: which operators cost what.

    python benchmarks/profile_step.py --device cuda [--config configs/streaming_sim.yaml] [--arch intentrec]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import batch_stream, train_step

from intentrec.data import prepare
from intentrec.features.dataset import TrainingWindows
from intentrec.model import build_model
from intentrec.model.losses import IntentRecLoss
from intentrec.train.optim import build_optimizer
from intentrec.workflows import _collate_fn, load_experiment


def main() -> None:
    """Warm up, then profile a few steps with and without autocast; print the top operators."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/streaming_sim.yaml")
    ap.add_argument("--arch", default="intentrec")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rows", type=int, default=18)
    args = ap.parse_args()
    device = torch.device(args.device)
    for amp in (True, False):
        cfg = load_experiment(args.config, [f"model.architecture={args.arch}", f"train.amp={str(amp).lower()}"])
        data = prepare(cfg.data)
        model = build_model(cfg.model, data.spec).to(device)
        opt = build_optimizer(model, cfg.train.lr, cfg.train.weight_decay)
        loss_fn = IntentRecLoss(cfg.train.lambda_intent)
        stream = batch_stream(TrainingWindows(data, cfg.model.max_len, cfg.train.duration_weight),
                              _collate_fn(cfg, data), cfg.train)
        batches = [next(stream) for _ in range(5 + args.steps)]
        for b in batches[:5]:
            train_step(model, model, opt, loss_fn, b, cfg.train, device, 1e-4)
        acts = [torch.profiler.ProfilerActivity.CPU] + (
            [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with torch.profiler.profile(activities=acts) as prof:
            for b in batches[5:]:
                train_step(model, model, opt, loss_fn, b, cfg.train, device, 1e-4)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"\n===== {cfg.model.label} amp={amp} device={device} ({args.steps} steps) =====")
        print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
