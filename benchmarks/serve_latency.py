"""Serving latency and throughput: in-process and HTTP (loopback), PyTorch and onnxruntime.

For each catalogue size it builds a synthetic log (every item in training, an item-level category intent and an
event-level action intent), trains IntentRec V3 for one step (latency does not depend on the weights' values),
exports the bundle with ONNX, then measures:

* in-process ``Predictor.predict`` latency (p50/p95/p99) for histories of 10, 50 and 200 events, torch and onnx;
* HTTP latency over loopback against ``intentrec serve`` running in a separate process (one client, sequential);
* throughput under bounded concurrent load (C client threads for a fixed time): requests/s, p99, errors.

Usage (about 6 minutes on 2 CPU cores with the defaults)::

    python benchmarks/serve_latency.py --out runs/serve-latency

Writes ``results.json``, ``results.md`` and ``latency.png`` to ``--out`` and prints the tables. Targets of the issue
(2 cores): p99 <= 15 ms in-process and <= 25 ms over HTTP for 50 events and 10k items; >= 200 requests/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from intentrec import workflows
from intentrec.config import config_from_dict
from intentrec.features.live import LiveEvent
from intentrec.serve.predictor import Predictor

ACTIONS = ("play", "browse", "search", "resume")


def build_bundle(root: Path, n_items: int, max_len: int, seed: int = 0) -> Path:
    """A synthetic log over ``n_items`` items, a 1-step IntentRec V3 run on it, and its bundle (with ONNX)."""
    bundle = root / f"bundle-{n_items}"
    if (bundle / "bundle.json").is_file():
        return bundle
    rng = np.random.default_rng(seed)
    per_user = 150
    n_users = max(400, (3 * n_items) // per_user)
    n = n_users * per_user
    items = rng.permutation(np.arange(n) % n_items)  # every item appears about 3 times
    users = np.repeat(np.arange(n_users), per_user)
    ts = 1_700_000_000 + np.cumsum(rng.integers(30, 4000, n)) + users * 10_000_000
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"log-{n_items}.csv"
    with open(log, "w") as fh:
        fh.write("user,item,ts,action\n")
        for u, i, t, a in zip(users, items, ts, rng.integers(0, len(ACTIONS), n), strict=True):
            fh.write(f"u{u},i{i},{t},{ACTIONS[a]}\n")
    meta = root / f"items-{n_items}.csv"
    with open(meta, "w") as fh:
        fh.write("item,category\n")
        for i in range(n_items):
            fh.write(f"i{i},c{i % 20}\n")
    cfg = config_from_dict({
        "name": f"latency{n_items}",
        "data": {
            "source": {"adapter": "table", "path": str(log), "items_path": str(meta), "item_columns_id": "item",
                       "columns": {"user_id": "user", "item_id": "item", "timestamp": "ts", "action": "action"}},
            "intents": [{"name": "action", "kind": "categorical", "column": "action"},
                        {"name": "category", "kind": "categorical", "column": "category"}],
            "split": {"protocol": "leave-one-out"},
            "cache_dir": str(root / "cache"),
        },
        "model": {"variant": "V3", "max_len": max_len, "d_model": 64, "n_layers": 2, "n_heads": 2,
                  "item_emb_dim": 64, "d_proj": 32, "d_short": 32, "horizon": "1d"},
        "train": {"epochs": 1, "max_steps_per_epoch": 1, "batch_size": 64},
        "eval": {"batch_size": 256},
    })
    run = root / f"run-{n_items}"
    workflows.train(cfg, run, progress=False, log=lambda _: None)
    return workflows.export(run, bundle, onnx=True)


def histories(pred: Predictor, length: int, count: int, seed: int = 1) -> list[list[LiveEvent]]:
    """``count`` random histories of ``length`` known items, one event a minute, with an action each."""
    rng = np.random.default_rng(seed)
    ids = pred.bundle.item_vocab.ids
    out = []
    for _ in range(count):
        picks = rng.integers(0, len(ids), length)
        out.append([LiveEvent(ids[int(j)], 1.75e9 + 60.0 * t, {"action": ACTIONS[int(j) % 4]})
                    for t, j in enumerate(picks)])
    return out


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / mean of latencies in milliseconds."""
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": len(ms)}


def in_process(pred: Predictor, length: int, n: int) -> dict[str, float]:
    """Latency of single ``predict`` calls (k = 10, seen items excluded)."""
    reqs = histories(pred, length, n + 20)
    for events in reqs[:20]:  # warm-up
        pred.predict(events, k=10, exclude_seen=True)
    ms = []
    for events in reqs[20:]:
        t0 = time.perf_counter()
        pred.predict(events, k=10, exclude_seen=True)
        ms.append((time.perf_counter() - t0) * 1e3)
    return percentiles(ms)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``intentrec serve`` in a subprocess on loopback."""

    def __init__(self, bundle: Path, backend: str) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "intentrec", "serve", str(bundle), "--port", str(self.port), "--backend", backend],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start within 120 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _body(events: list[LiveEvent]) -> dict[str, Any]:
    return {"events": [{"item_id": e.item_id, "timestamp": e.timestamp, "action": e.attributes["action"]}
                       for e in events], "k": 10, "exclude_seen": True}


def http_latency(url: str, pred: Predictor, length: int, n: int) -> dict[str, float]:
    """Sequential requests from one client (a persistent connection)."""
    import httpx

    bodies = [_body(e) for e in histories(pred, length, n + 20, seed=2)]
    ms = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, body in enumerate(bodies):
            t0 = time.perf_counter()
            r = client.post("/v1/recommend", json=body)
            dt = (time.perf_counter() - t0) * 1e3
            r.raise_for_status()
            if i >= 20:
                ms.append(dt)
    return percentiles(ms)


def load(url: str, pred: Predictor, length: int, concurrency: int, seconds: float) -> dict[str, float]:
    """``concurrency`` client threads posting for ``seconds``: requests/s, latency percentiles, errors."""
    import httpx

    bodies = [_body(e) for e in histories(pred, length, 200, seed=3)]
    stop = time.monotonic() + seconds
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker(w: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            i = w
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    ok = client.post("/v1/recommend", json=bodies[i % len(bodies)]).status_code == 200
                except httpx.HTTPError:
                    ok = False
                dt = (time.perf_counter() - t0) * 1e3
                with lock:
                    lat.append(dt) if ok else None
                    errors[0] += not ok
                i += concurrency

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)
    wall = time.perf_counter() - t0
    return {**percentiles(lat or [float("nan")]), "rps": len(lat) / wall, "errors": errors[0],
            "concurrency": concurrency}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/serve-latency"))
    ap.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--lengths", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    ap.add_argument("--requests", type=int, default=300, help="timed requests per latency cell")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--load-seconds", type=float, default=15.0)
    ap.add_argument("--no-http", action="store_true")
    args = ap.parse_args()
    import torch

    rows: list[dict[str, Any]] = []
    loads: list[dict[str, Any]] = []
    for n_items in args.items:
        t0 = time.perf_counter()
        bundle = build_bundle(args.out, n_items, max_len=max(args.lengths))
        print(f"[{n_items} items] bundle ready in {time.perf_counter() - t0:.0f}s", flush=True)
        for backend in args.backends:
            pred = Predictor.from_path(bundle, backend=backend)
            for length in args.lengths:
                r = in_process(pred, length, args.requests)
                rows.append({"items": n_items, "events": length, "backend": backend, "mode": "in-process", **r})
                print(f"  {backend:5s} in-process  {length:3d} events: p50 {r['p50']:.2f} p95 {r['p95']:.2f} "
                      f"p99 {r['p99']:.2f} ms", flush=True)
            if args.no_http:
                continue
            with Server(bundle, backend) as server:
                for length in args.lengths:
                    r = http_latency(server.url, pred, length, args.requests)
                    rows.append({"items": n_items, "events": length, "backend": backend, "mode": "http", **r})
                    print(f"  {backend:5s} http        {length:3d} events: p50 {r['p50']:.2f} p95 {r['p95']:.2f} "
                          f"p99 {r['p99']:.2f} ms", flush=True)
                if n_items == min(args.items):
                    for c in args.concurrency:
                        r = load(server.url, pred, 50, c, args.load_seconds)
                        loads.append({"items": n_items, "events": 50, "backend": backend, **r})
                        print(f"  {backend:5s} load c={c:2d}: {r['rps']:.0f} req/s, p50 {r['p50']:.1f} "
                              f"p99 {r['p99']:.1f} ms, {r['errors']} errors", flush=True)
    machine = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
               "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"machine": machine, "latency": rows, "load": loads}, indent=1))
    lines = [f"Machine: {machine}", "", "| items | events | backend | mode | p50 ms | p95 ms | p99 ms |",
             "|---:|---:|---|---|---:|---:|---:|"]
    lines += [f"| {r['items']:,} | {r['events']} | {r['backend']} | {r['mode']} | {r['p50']:.2f} | {r['p95']:.2f} | "
              f"{r['p99']:.2f} |" for r in rows]
    if loads:
        lines += ["", "| items | events | backend | concurrency | req/s | p50 ms | p99 ms | errors |",
                  "|---:|---:|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['items']:,} | {r['events']} | {r['backend']} | {r['concurrency']} | {r['rps']:.0f} | "
                  f"{r['p50']:.1f} | {r['p99']:.1f} | {r['errors']} |" for r in loads]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(rows, args.out / "latency.png")


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["items"], r["mode"]) for r in rows})
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False, sharey=True)
    for ax, (items, mode) in zip(axes[0], keys, strict=True):
        for backend in sorted({r["backend"] for r in rows}):
            sel = [r for r in rows if r["items"] == items and r["mode"] == mode and r["backend"] == backend]
            ax.plot([r["events"] for r in sel], [r["p99"] for r in sel], marker="o", label=f"{backend} p99")
            ax.plot([r["events"] for r in sel], [r["p50"] for r in sel], marker=".", ls="--", label=f"{backend} p50")
        ax.set_title(f"{items:,} items, {mode}")
        ax.set_xlabel("history length (events)")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("latency (ms)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
