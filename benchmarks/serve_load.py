"""Bounded load test of the HTTP service on loopback: errors, latency and server memory under concurrency.

Starts ``intentrec serve BUNDLE`` in a subprocess on 127.0.0.1 (a free port), warms it up, then for each
concurrency level (default 1, 4, 16, 64) keeps that many requests in flight for ``--seconds`` (that many client
threads with httpx, one keep-alive connection each, as in ``serve_latency.py``). The request bodies are
realistic: histories of 1 to 2 x max_len events drawn from the bundle's own item ids (a few unknown ids mixed in),
increasing timestamps, varying ``k`` and ``exclude_seen``. Nothing is trained: pass a bundle. To make one::

    intentrec train --config configs/tiny.yaml --out runs/tiny
    intentrec export runs/tiny --out bundles/tiny

Usage (about 3-4 minutes with the defaults: 10 s warm-up + 4 levels x 45 s)::

    python benchmarks/serve_load.py --bundle bundles/tiny
    python benchmarks/serve_load.py --bundle bundles/tiny --seconds 5 --concurrency 1 4   # a quick check

Records per level: requests, errors (non-2xx answers and exceptions, by kind), throughput, p50/p90/p99/max
latency, and the server's RSS (``VmRSS`` of ``/proc/<pid>/status``) at the start and end of the level; overall:
the RSS growth from the end of the warm-up to the end of the last level. Prints a table and writes
``results.json``, ``results.md`` (and the server's ``server.log``) to ``--out``. Exits 1 if any request failed,
the server died, or its RSS grew by more than ``--max-rss-growth-mb`` (default 50) after the warm-up; 2 if it
could not run (bad arguments, a server that would not start).

Latency is measured by the client, on the same machine: with 2 cores, client and server share the CPU, so the
figures are an upper bound of the server's own latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that `serve_latency` imports when this file is loaded by path (the tests)
    sys.path.insert(0, str(HERE))

from serve_latency import Server, _free_port  # noqa: E402  (the same subprocess server, one more option)

from intentrec.serve.http import API_KEY_HEADER  # noqa: E402
from intentrec.vocab import vocabs_from_json  # noqa: E402

DEFAULT_OUT = HERE / "results" / "serve_load"
_KEY_ENV = "INTENTREC_LOAD_TEST_KEY"


# ----------------------------------------------------------------------------------------------------------
# Server


class LoadServer(Server):
    """:class:`serve_latency.Server` with its log in a file (a pipe nobody reads could fill up and block the
    server under load) and, optionally, an API key."""

    def __init__(self, bundle: Path, backend: str, log_path: Path, api_key: str | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")  # closed in __exit__
        env = dict(os.environ)
        cmd = [sys.executable, "-m", "intentrec", "serve", str(bundle), "--host", "127.0.0.1",
               "--port", str(self.port), "--backend", backend]
        if api_key is not None:
            env[_KEY_ENV] = api_key
            cmd += ["--api-key-env", _KEY_ENV]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log, env=env)

    def __enter__(self) -> LoadServer:
        try:
            super().__enter__()
        except RuntimeError as err:
            self.__exit__()
            raise RuntimeError(f"{err}\n{self.log_tail()}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def rss_mb(self) -> float:
        """The server process' resident set size in MiB (``VmRSS``)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for pid {self.proc.pid}")


# ----------------------------------------------------------------------------------------------------------
# Request bodies


def make_bodies(bundle: Path, count: int, seed: int = 0) -> list[bytes]:
    """``count`` JSON request bodies from the bundle's item ids: 1 to 2 x max_len events, about 3% unknown ids,
    timestamps a few minutes apart, ``k`` in {5, 10, 20, 50}, ``exclude_seen`` true / false / default."""
    item_vocab, _ = vocabs_from_json((bundle / "vocabs.json").read_text(encoding="utf-8"))
    manifest = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    max_len = int(manifest["config"]["model"]["max_len"])
    ids = list(item_vocab.ids)
    rng = np.random.default_rng(seed)
    bodies = []
    for u in range(count):
        n = int(rng.integers(1, 2 * max_len + 1))
        picks = rng.integers(0, len(ids), n)
        t = 1.7e9 + float(rng.integers(0, 10**7))
        events = []
        for j in picks:
            t += float(rng.integers(30, 3600))
            item = ids[int(j)] if rng.random() > 0.03 else f"unknown-{int(j)}"
            events.append({"item_id": item, "timestamp": t})
        body: dict[str, Any] = {"events": events, "k": int(rng.choice([5, 10, 20, 50])), "user_id": f"load-{u}"}
        choice = int(rng.integers(0, 3))
        if choice < 2:
            body["exclude_seen"] = bool(choice)
        bodies.append(json.dumps(body).encode())
    return bodies


# ----------------------------------------------------------------------------------------------------------
# Load


@dataclass
class LevelResult:
    """One concurrency level."""

    concurrency: int
    seconds: float
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    throughput_rps: float = 0.0
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    mean_ms: float = float("nan")
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0


def _run_level(url: str, bodies: list[bytes], concurrency: int, seconds: float,
               headers: dict[str, str]) -> tuple[list[float], Counter[str], float]:
    """``concurrency`` client threads (one keep-alive connection each) posting back to back for ``seconds``:
    (latencies of the 2xx answers in ms, error kinds, wall seconds).

    Threads rather than asyncio: on 2 shared cores, httpx's async client spent about twice the client CPU per
    request, which the server then lacked (measured: 93-172 vs 223-312 req/s at concurrency 16).
    """
    import httpx

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(w: int) -> None:
        mine: list[float] = []
        bad: Counter[str] = Counter()
        with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
            i = w
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    resp = client.post("/v1/recommend", content=bodies[i % len(bodies)])
                    if 200 <= resp.status_code < 300:
                        mine.append((time.perf_counter() - t0) * 1e3)
                    else:
                        bad[f"HTTP {resp.status_code}"] += 1
                except httpx.HTTPError as err:
                    bad[type(err).__name__] += 1
                i += concurrency
        with lock:
            latencies.extend(mine)
            errors.update(bad)

    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    wall = time.perf_counter() - t_start
    if any(t.is_alive() for t in threads):
        errors["client thread still running 120 s after the level"] += 1
    return latencies, errors, wall


def run_level(server: LoadServer, bodies: list[bytes], concurrency: int, seconds: float,
              headers: dict[str, str]) -> LevelResult:
    """One level, with the server's RSS before and after."""
    result = LevelResult(concurrency=concurrency, seconds=seconds, rss_start_mb=server.rss_mb())
    latencies, errors, wall = _run_level(server.url, bodies, concurrency, seconds, headers)
    result.rss_end_mb = server.rss_mb()
    result.errors = sum(errors.values())
    result.error_kinds = dict(errors)
    result.requests = len(latencies) + result.errors
    result.throughput_rps = len(latencies) / wall
    if latencies:
        a = np.asarray(latencies)
        result.p50_ms, result.p90_ms, result.p99_ms = (float(np.percentile(a, q)) for q in (50, 90, 99))
        result.max_ms, result.mean_ms = float(a.max()), float(a.mean())
    return result


# ----------------------------------------------------------------------------------------------------------
# Report


def _table(levels: list[LevelResult]) -> list[str]:
    lines = ["| concurrency | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | RSS start MB | RSS end MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.concurrency} | {r.requests:,} | {r.errors} | {r.throughput_rps:.1f} | {r.p50_ms:.1f} | "
              f"{r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.rss_start_mb:.1f} | {r.rss_end_mb:.1f} |"
              for r in levels]
    return lines


def write_report(doc: dict[str, Any], levels: list[LevelResult], out: Path) -> str:
    """``results.json`` and ``results.md`` in ``out``; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    s = doc["summary"]
    lines = [
        f"# Serving load test ({'passed' if s['passed'] else 'FAILED'})", "",
        f"Bundle `{doc['bundle']}` (model {doc['model_version']}), backend {doc['backend']}, {doc['seconds']} s per "
        f"level after a {doc['warmup_seconds']} s warm-up at concurrency {doc['warmup_concurrency']}; "
        f"API key: {'yes' if doc['api_key'] else 'no'}.", "",
        f"Machine: {doc['machine']['platform']}, Python {doc['machine']['python']}, {doc['machine']['cpus']} CPUs "
        "(client and server share them).", "",
        *_table(levels), "",
        f"Errors: {s['errors']}. Server RSS: {s['rss_after_warmup_mb']:.1f} MB after the warm-up, "
        f"{s['rss_final_mb']:.1f} MB at the end (growth {s['rss_growth_mb']:+.1f} MB, limit "
        f"{doc['max_rss_growth_mb']} MB), peak seen {s['rss_peak_mb']:.1f} MB.",
    ]
    if s["problems"]:
        lines += ["", "Problems:", *[f"- {p}" for p in s["problems"]]]
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the load test; returns the exit status (0 passed, 1 errors or RSS growth, 2 no server)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True, help="a bundle written by `intentrec export`")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results.json / results.md")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64], help="levels, in order")
    ap.add_argument("--seconds", type=float, default=45.0, help="duration of each level")
    ap.add_argument("--warmup", type=float, default=10.0, help="warm-up seconds at the highest concurrency")
    ap.add_argument("--max-rss-growth-mb", type=float, default=50.0,
                    help="fail if the server RSS grows more than this from the end of the warm-up")
    ap.add_argument("--backend", default="torch", help="torch or onnx")
    ap.add_argument("--bodies", type=int, default=500, help="distinct request bodies, cycled")
    ap.add_argument("--api-key", action="store_true", help="start the server with a random API key and send it")
    args = ap.parse_args(argv)
    if any(c < 1 for c in args.concurrency) or args.seconds <= 0:
        ap.error("--concurrency levels must be >= 1 and --seconds > 0")
    bundle = args.bundle.resolve()
    if not (bundle / "bundle.json").is_file():
        ap.error(f"{bundle} is not a bundle (no bundle.json); make one with `intentrec export RUN --out BUNDLE`")

    bodies = make_bodies(bundle, args.bodies)
    key = secrets.token_urlsafe(24) if args.api_key else None
    headers = {"content-type": "application/json", **({API_KEY_HEADER: key} if key else {})}
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        server = LoadServer(bundle, args.backend, args.out / "server.log", api_key=key).__enter__()
    except RuntimeError as err:
        print(f"the server did not start: {err}", file=sys.stderr)
        return 2
    levels: list[LevelResult] = []
    try:
        warm_c = max(args.concurrency)
        if args.warmup > 0:
            warm = run_level(server, bodies, warm_c, args.warmup, headers)
            print(f"warm-up: c={warm_c} {warm.requests} requests, {warm.errors} errors, "
                  f"RSS {warm.rss_start_mb:.1f} -> {warm.rss_end_mb:.1f} MB", flush=True)
        rss_after_warmup = server.rss_mb()
        for c in args.concurrency:
            r = run_level(server, bodies, c, args.seconds, headers)
            levels.append(r)
            print(f"c={c:3d}: {r.requests:6d} requests, {r.errors} errors, {r.throughput_rps:7.1f} req/s, "
                  f"p50 {r.p50_ms:.1f} p90 {r.p90_ms:.1f} p99 {r.p99_ms:.1f} max {r.max_ms:.1f} ms, "
                  f"RSS {r.rss_start_mb:.1f} -> {r.rss_end_mb:.1f} MB", flush=True)
        rss_final = server.rss_mb()
        alive = server.proc.poll() is None
    finally:
        server.__exit__()

    errors = sum(r.errors for r in levels)
    growth = rss_final - rss_after_warmup
    problems = []
    if errors:
        problems.append(f"{errors} failed requests: {dict(sum((Counter(r.error_kinds) for r in levels), Counter()))}")
    if growth > args.max_rss_growth_mb:
        problems.append(f"server RSS grew {growth:.1f} MB after the warm-up (limit {args.max_rss_growth_mb} MB)")
    if not alive:
        problems.append("the server exited during the test")
    manifest = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    doc: dict[str, Any] = {
        "bundle": str(bundle), "model_version": manifest.get("model_version", ""), "backend": args.backend,
        "seconds": args.seconds, "warmup_seconds": args.warmup, "warmup_concurrency": warm_c,
        "max_rss_growth_mb": args.max_rss_growth_mb, "api_key": key is not None, "distinct_bodies": len(bodies),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "levels": [asdict(r) for r in levels],
        "summary": {"errors": errors, "requests": sum(r.requests for r in levels),
                    "rss_after_warmup_mb": rss_after_warmup, "rss_final_mb": rss_final, "rss_growth_mb": growth,
                    "rss_peak_mb": max([rss_after_warmup, rss_final, *(r.rss_end_mb for r in levels)]),
                    "passed": not problems, "problems": problems},
    }
    print("\n" + write_report(doc, levels, args.out))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
