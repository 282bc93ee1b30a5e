"""Training throughput of intentrec models: sequences/s, tokens/s, FLOP/s against a measured peak, memory.

Prepares the data once, then for each architecture runs real training steps as ``intentrec train`` does
(``TrainingWindows`` + ``bucketed_batches`` + the collate of ``workflows``, ``IntentRecLoss``, AdamW with the
warm-up/cosine schedule, gradient clipping, bf16 autocast on CUDA, and the per-step loss read-back of ``fit``):
``--warmup-steps`` untimed steps, then ``--steps`` timed ones. The model FLOPs of the timed batches (forward +
backward, full-softmax item scoring included) are counted afterwards with ``FlopCounterMode`` on the same batches.

Commands (from the repository root)::

    # GPU, ~1M simulated events, IntentRec V3 and SASRec with bf16 autocast, then fp32 for IntentRec
    python benchmarks/train_throughput.py --sim-events 1000000 --device cuda --amp --steps 60 --out gpu-out/amp.json
    python benchmarks/train_throughput.py --sim-events 1000000 --device cuda --no-amp --arch intentrec \\
        --steps 60 --out gpu-out/fp32.json
    # CPU smoke runs
    .venv/bin/python benchmarks/train_throughput.py --sim-events 20000 --steps 5 --warmup-steps 1 --device cpu \\
        --out /tmp/tp.json
    .venv/bin/python benchmarks/train_throughput.py --config configs/tiny.yaml --steps 5 --warmup-steps 1 \\
        --device cpu --out /tmp/tp-tiny.json

``--sim-events N`` (simulator configs only) writes a log of about N events (the config's preset with ``n_users``
scaled from a 300-user pilot) to ``--sim-dir/<preset>-<N>`` and points ``data.source.path`` at it; the folder is
reused when its config matches, so with ``data.cache_dir`` set a second run loads the prepared data from the cache.
``--device cuda`` without a usable GPU exits with an error before preparing anything (no CPU fallback).
Notes: the epoch estimate is steps/epoch x mean s/step (the timed batches are a random sample of the epoch's
length-bucketed batches); ``data_fraction`` is the host time spent collating batches (DataLoader, no workers, as in
``train``); peak memory on CPU is the process's peak RSS (monotonic over the run).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from intentrec.config import ExperimentConfig, TrainConfig
from intentrec.data.pipeline import prepare_with_report
from intentrec.features.dataset import TrainingWindows, bucketed_batches
from intentrec.model import build_model
from intentrec.model.losses import IntentRecLoss
from intentrec.structs import SequenceBatch
from intentrec.train.loop import _autocast, resolve_device, seed_everything
from intentrec.train.optim import build_optimizer, get_lr
from intentrec.workflows import _collate_fn, load_experiment


def _say(msg: str) -> None:
    print(msg, flush=True)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
        return next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def simulate_log(cfg: ExperimentConfig, n_events: int, root: Path) -> tuple[Path, dict[str, Any]]:
    """Write (or reuse) a simulated log of about ``n_events`` events: the config's preset with scaled ``n_users``."""
    from intentrec.datasets import streaming_sim as sim

    base = sim.SimConfig.from_name(cfg.data.source.name or "small")
    t0 = time.perf_counter()
    pilot_users = 300
    pilot = sim.simulate(sim.SimConfig(**{**base.model_dump(), "n_users": pilot_users}))
    per_user = pilot.events.height / pilot_users
    n_users = max(10, round(n_events / per_user))
    sc = sim.SimConfig(**{**base.model_dump(), "n_users": n_users, "name": f"{base.name}-{n_events}"})
    folder = (root / sc.label).resolve()
    if (folder / "config.json").is_file() and all((folder / f).is_file() for f in sim.SIM_FILES) and \
            (folder / "config.json").read_text(encoding="utf-8") == sc.model_dump_json(indent=2) + "\n":
        _say(f"simulation: reusing {folder} ({n_users:,} users)")
        return folder, {"folder": str(folder), "n_users": n_users, "reused": True, "seconds": 0.0}
    _say(f"simulation: {per_user:.1f} events/user in a {pilot_users}-user pilot -> {n_users:,} users of preset "
         f"{base.label!r}, writing {folder}")
    log = sim.simulate(sc, progress=lambda done, total: _say(f"  simulated {done:,}/{total:,} users "
                                                             f"({time.perf_counter() - t0:.1f}s)"))
    sim.write_simulation(log, folder)
    seconds = time.perf_counter() - t0
    _say(f"simulation: {log.events.height:,} events in {seconds:.1f}s")
    return folder, {"folder": str(folder), "n_users": n_users, "reused": False, "seconds": round(seconds, 2)}


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured FLOP/s of a large square matmul (8192 on CUDA, 2048 on CPU)."""
    n, reps = (8192, 50) if device.type == "cuda" else (2048, 3)
    a = torch.randn(n, n, device=device, dtype=dtype)  # (n, n)
    b = torch.randn(n, n, device=device, dtype=dtype)  # (n, n)
    for _ in range(2):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2.0 * n**3 * reps / (time.perf_counter() - t0)


def batch_stream(windows: TrainingWindows, collate_fn: Any, tcfg: TrainConfig) -> Iterator[SequenceBatch]:
    """The batches of ``workflows.train`` (epoch 0, 1, ... with the same seeds), endlessly."""
    epoch = 0
    while True:
        rng = np.random.default_rng([tcfg.seed, epoch])
        batches = bucketed_batches(windows.lengths, tcfg.batch_size, rng)
        yield from DataLoader(windows, batch_sampler=batches, collate_fn=collate_fn)
        epoch += 1


def train_step(model: nn.Module, eager: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: IntentRecLoss,
               cpu_batch: SequenceBatch, tcfg: TrainConfig, device: torch.device, lr: float) -> float:
    """One optimizer step exactly as in ``fit``; returns the loss (read back like ``fit`` does every step)."""
    batch = cpu_batch.to(device, non_blocking=True)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with _autocast(device, tcfg.amp):
        output = model(batch)
        loss = loss_fn(eager, output, batch)  # item scoring over the full catalogue: (P, D) -> (P, I)
    optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    if tcfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
    optimizer.step()
    for value in loss.parts.values():  # fit logs every part: a host sync per step, part of the real cost
        float(value.detach())
    return float(loss.total.detach())


def count_flops(eager: nn.Module, loss_fn: IntentRecLoss, batches: list[SequenceBatch], device: torch.device,
                amp: bool) -> int:
    """Forward + backward FLOPs (matmuls, attention) of ``batches``; the weights are left unchanged."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        for cpu_batch in batches:
            batch = cpu_batch.to(device)
            with _autocast(device, amp):
                loss = loss_fn(eager, eager(batch), batch)
            loss.total.backward()
    eager.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench_arch(cfg: ExperimentConfig, data: Any, device: torch.device, args: argparse.Namespace,
               peaks: dict[str, float]) -> dict[str, Any]:
    """Build one model, warm up, time ``args.steps`` steps, count FLOPs; the result row."""
    tcfg = cfg.train
    seed_everything(tcfg.seed)
    eager = build_model(cfg.model, data.spec).to(device)
    model: nn.Module = eager
    compiled = False
    if args.compile:
        try:
            model, compiled = torch.compile(eager, dynamic=True), True  # type: ignore[assignment]
        except Exception as err:
            _say(f"WARNING: torch.compile failed ({err!r}); running eager")
    windows = TrainingWindows(data, cfg.model.max_len, tcfg.duration_weight)
    steps_per_epoch = math.ceil(len(windows) / tcfg.batch_size)
    total_steps = max(1, tcfg.epochs * min(steps_per_epoch, tcfg.max_steps_per_epoch or steps_per_epoch))
    optimizer = build_optimizer(eager, tcfg.lr, tcfg.weight_decay)

    def lr_at(step: int) -> float:  # the warm-up/cosine schedule of fit, over the config's whole run
        return get_lr(step, total_steps, tcfg.lr, tcfg.warmup_steps, tcfg.min_lr_ratio)

    loss_fn = IntentRecLoss(tcfg.lambda_intent)
    stream = batch_stream(windows, _collate_fn(cfg, data), tcfg)
    n_params = sum(p.numel() for p in eager.parameters())
    _say(f"[{cfg.model.label}] {n_params:,} parameters on {device}, amp={tcfg.amp and device.type == 'cuda'}, "
         f"compile={compiled}, batch {tcfg.batch_size}, {len(windows):,} windows, {steps_per_epoch} steps/epoch")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(tcfg.seed * 100_003)
    eager.train()
    step = 0
    t0 = time.perf_counter()
    for _ in range(args.warmup_steps):
        step += 1
        batch = next(stream)
        try:
            train_step(model, eager, optimizer, loss_fn, batch, tcfg, device, lr_at(step))
        except Exception as err:
            if not compiled:
                raise
            _say(f"WARNING: the compiled model failed ({err!r}); falling back to eager")
            model, compiled = eager, False
            train_step(model, eager, optimizer, loss_fn, batch, tcfg, device, lr_at(step))
    _sync(device)
    _say(f"  warm-up: {args.warmup_steps} steps in {time.perf_counter() - t0:.1f}s")
    timed: list[SequenceBatch] = []
    seqs = tokens = targets = 0
    data_s = 0.0
    every = max(1, args.steps // 5)
    t_start = time.perf_counter()
    for i in range(args.steps):
        t_data = time.perf_counter()
        batch = next(stream)
        data_s += time.perf_counter() - t_data
        timed.append(batch)
        seqs += batch.batch_size
        tokens += int(batch.valid.sum())  # real (non-padding) input events
        targets += int((batch.target_item > 0).sum())  # positions with an item target
        step += 1
        loss = train_step(model, eager, optimizer, loss_fn, batch, tcfg, device, lr_at(step))
        if (i + 1) % every == 0 or i + 1 == args.steps:
            el = time.perf_counter() - t_start
            _say(f"  step {i + 1}/{args.steps}: {el:.2f}s, {el / (i + 1) * 1e3:.1f} ms/step, loss {loss:.4f}")
    _sync(device)
    seconds = time.perf_counter() - t_start
    peak_mem = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    flop_batches = timed if args.flop_steps < 0 else timed[: args.flop_steps]
    flops_per_step = None
    if flop_batches:
        t_f = time.perf_counter()
        flops_per_step = count_flops(eager, loss_fn, flop_batches, device, tcfg.amp) / len(flop_batches)
        _say(f"  FLOPs counted on {len(flop_batches)} batches in {time.perf_counter() - t_f:.1f}s")
    s_step = seconds / max(args.steps, 1)
    peak_key = "bf16" if tcfg.amp and device.type == "cuda" else "fp32"
    achieved = flops_per_step / s_step if flops_per_step is not None else None
    return {
        "arch": cfg.model.architecture, "label": cfg.model.label, "amp": tcfg.amp and device.type == "cuda",
        "compiled": compiled, "parameters": n_params, "batch_size": tcfg.batch_size, "steps": args.steps,
        "warmup_steps": args.warmup_steps, "seconds": round(seconds, 4), "seconds_per_step": s_step,
        "sequences_per_s": seqs / seconds, "tokens_per_s": tokens / seconds, "targets_per_s": targets / seconds,
        "mean_tokens_per_step": tokens / max(args.steps, 1), "data_fraction": data_s / seconds,
        "steps_per_epoch": steps_per_epoch, "epoch_seconds_est": steps_per_epoch * s_step,
        "flops_per_step": flops_per_step, "flop_batches": len(flop_batches), "achieved_flops_per_s": achieved,
        "peak_dtype": peak_key, "peak_flops_per_s": peaks[peak_key],
        "fraction_of_peak": achieved / peaks[peak_key] if achieved is not None else None,
        "peak_memory_mib": round(peak_mem, 1),
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS",
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("model", "amp", "params", "ms/step", "seq/s", "tok/s", "tgt/s", "epoch s", "GFLOP/st", "TFLOP/s",
            "%peak", "data%", "mem MiB")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append((r["arch"], "-", "ERROR", r["error"][:60], *[""] * 9))
            continue
        fl = r["flops_per_step"]
        lines.append((r["label"], "bf16" if r["amp"] else "fp32", f"{r['parameters'] / 1e6:.2f}M",
                      f"{r['seconds_per_step'] * 1e3:.1f}", f"{r['sequences_per_s']:,.0f}",
                      f"{r['tokens_per_s']:,.0f}", f"{r['targets_per_s']:,.0f}", f"{r['epoch_seconds_est']:,.1f}",
                      "-" if fl is None else f"{fl / 1e9:,.1f}",
                      "-" if fl is None else f"{r['achieved_flops_per_s'] / 1e12:.3f}",
                      "-" if fl is None else f"{100 * r['fraction_of_peak']:.1f}",
                      f"{100 * r['data_fraction']:.0f}", f"{r['peak_memory_mib']:,.0f}"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for line in lines:
        _say("  ".join(str(c).rjust(w) for c, w in zip(line, widths, strict=True)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/streaming_sim.yaml", help="experiment config (YAML/TOML)")
    p.add_argument("--sim-events", type=int, default=None, help="simulator configs: generate a log of ~N events")
    p.add_argument("--sim-dir", default=".cache/intentrec-bench", help="where --sim-events logs are written")
    p.add_argument("--arch", nargs="+", default=["intentrec", "sasrec"], help="model.architecture values")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast on CUDA (default: the config's train.amp)")
    p.add_argument("--steps", type=int, default=50, help="timed optimizer steps")
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=None, help="override train.batch_size")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (eager if it fails)")
    p.add_argument("--flop-steps", type=int, default=-1, help="timed batches whose FLOPs are counted (-1 all, 0 none)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, repeatable (e.g. --set model.d_model=128)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup_steps < 0:
        p.error("--steps must be >= 1 and --warmup-steps >= 0")
    if args.compile and args.warmup_steps < 1:
        p.error("--compile needs --warmup-steps >= 1 (compilation happens there, untimed)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"error: --device cuda but torch.cuda.is_available() is False (torch {torch.__version__}, "
                         f"built for CUDA {torch.version.cuda}); use --device cpu or auto")
    overrides = [*args.overrides, f"train.device={args.device}"]
    if args.batch_size is not None:
        overrides.append(f"train.batch_size={args.batch_size}")
    if args.amp is not None:
        overrides.append(f"train.amp={str(args.amp).lower()}")
    cfg = load_experiment(args.config, overrides)
    sim_info = None
    if args.sim_events is not None:
        if cfg.data.source.adapter != "streaming_sim":
            _say(f"WARNING: --sim-events ignored: {args.config} reads {cfg.data.source.adapter!r}, not the simulator")
        else:
            folder, sim_info = simulate_log(cfg, args.sim_events, Path(args.sim_dir))
            overrides.append(f"data.source.path={folder}")
            cfg = load_experiment(args.config, overrides)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    device = resolve_device(cfg.train.device)
    t0 = time.perf_counter()
    prepared = prepare_with_report(cfg.data, progress=True)
    prep_s = time.perf_counter() - t0
    data = prepared.data
    n_events, n_items = int(data.item_idx.shape[0]), data.spec.n_items - 2
    _say(f"data: {data.spec.dataset}: {n_events:,} events, {data.n_users:,} users, {n_items:,} items; prepared in "
         f"{prep_s:.1f}s{' (from the cache)' if prepared.cached else ''}")
    peaks = {"fp32": matmul_peak(device, torch.float32)}
    if device.type == "cuda":
        peaks["bf16"] = matmul_peak(device, torch.bfloat16)
    _say("matmul peak: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peaks.items()))
    doc: dict[str, Any] = {
        "config": args.config, "overrides": overrides, "argv": sys.argv[1:], "torch": torch.__version__,
        "cuda": torch.version.cuda, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_threads": torch.get_num_threads(), "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "simulation": sim_info, "dataset": data.spec.dataset, "prepare_seconds": round(prep_s, 2),
        "prepare_cached": prepared.cached, "n_events": n_events, "n_users": data.n_users, "n_items": n_items,
        "n_train_events": int(data.split.train_len.sum()), "peak_flops_per_s": peaks, "results": [],
    }
    for arch in args.arch:
        try:
            arch_cfg = load_experiment(args.config, [*overrides, f"model.architecture={arch}"])
            doc["results"].append(bench_arch(arch_cfg, data, device, args, peaks))
        except Exception as err:  # one failing model must not lose the others' numbers
            traceback.print_exc()
            doc["results"].append({"arch": arch, "error": f"{type(err).__name__}: {err}"})
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".tmp").write_text(json.dumps(doc, indent=2), encoding="utf-8")
            out.with_suffix(".tmp").replace(out)
    _say(f"\n{doc['device_name']} ({device}), torch {torch.__version__}, {data.spec.dataset}, "
         f"{n_events:,} events")
    print_table(doc["results"])
    if args.out:
        _say(f"wrote {args.out}")
    return 1 if any("error" in r for r in doc["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
