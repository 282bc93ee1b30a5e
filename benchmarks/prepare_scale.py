"""Data preparation at scale: wall time and peak memory (RSS) to prepare 1M, 10M, 50M simulated events.

For each size the simulated streaming log (``configs/streaming_sim.yaml``'s preset with ``n_users`` scaled from a
300-user pilot) is generated once into ``--sim-dir/prep-<preset>-<N>/`` as Parquet shards of at most
``--shard-events`` events (``streaming_sim.write_sharded_simulation``; one shard holds ~1.5 GB while simulated),
then two fresh processes run per size, so that each peak RSS is that process's own high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, equal to ``VmHWM``):

* ``prepare``: ``prepare_with_report`` on the shard folder with ``data.cache_dir`` = a fresh temporary folder
  (nothing cached before), as ``intentrec prepare`` / ``train`` run it;
* ``load``: the training side: ``prepare_with_report`` again on the same cache (a hit: the arrays are mapped or
  read), then one user's events are touched (item ids, times, labels summed).

Preparation streams in chunks of users (``intentrec.data.chunked``) when the input holds at least
``intentrec.data.pipeline.STREAM_MIN_BYTES`` (``--stream-min-bytes 0`` forces it; ``--chunk-events`` sets the
chunk size, the memory knob).

Reported per size: events, users, items (vocabulary), wall seconds, peak RSS MB, RSS above the post-import
baseline per million events, the cache entry's size on disk, and the load process's wall time and peak RSS.

Commands (from the repository root; one size at a time is the memory-friendly way on a shared machine)::

    nice -n 10 .venv/bin/python benchmarks/prepare_scale.py --sizes 1000000 10000000 --out /tmp/prep.json
    nice -n 10 .venv/bin/python benchmarks/prepare_scale.py --sizes 50000000 --out /tmp/prep50.json
    .venv/bin/python benchmarks/prepare_scale.py --sizes 20000 --stream-min-bytes 0 --out /tmp/smoke.json  # seconds

The simulated folders are kept and reused (``--sim-dir``, git-ignored); the caches are deleted after each size
unless ``--keep-cache``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "streaming_sim.yaml"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _rss_mb() -> float:
    """Current resident set size (VmRSS) in MB."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_rss_mb() -> float:
    """This process's peak resident set size in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------------------
# simulation
# ----------------------------------------------------------------------------------------------------------


def simulate(preset: str, n_events: int, root: Path, shard_events: int) -> tuple[Path, dict[str, Any]]:
    """Write (or reuse) a sharded simulated log of about ``n_events`` events; returns the folder and facts."""
    from intentrec.datasets import streaming_sim as sim

    base = sim.SimConfig.from_name(preset)
    pilot_users = 300
    pilot = sim.simulate(sim.SimConfig(**{**base.model_dump(), "n_users": pilot_users}))
    per_user = pilot.events.height / pilot_users
    n_users = max(10, round(n_events / per_user))
    cfg = sim.SimConfig(**{**base.model_dump(), "n_users": n_users, "name": f"{base.name}-{n_events}"})
    n_shards = max(1, math.ceil(n_events / shard_events))
    folder = (root / f"prep-{cfg.label}").resolve()
    marker = folder / "bench.json"
    expected = {"config": json.loads(cfg.model_dump_json()), "n_shards": n_shards}
    if marker.is_file():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if {k: done.get(k) for k in expected} == expected:
            _say(f"simulation: reusing {folder} ({done['n_events']:,} events, {n_shards} shards)")
            return folder, {**done, "reused": True}
    _say(f"simulation: {per_user:.1f} events/user in a {pilot_users}-user pilot -> {n_users:,} users of preset "
         f"{base.label!r} in {n_shards} shard(s), writing {folder}")
    t0 = time.perf_counter()
    marker.unlink(missing_ok=True)
    sim.write_sharded_simulation(
        cfg, folder, n_shards,
        progress=lambda k, n: _say(f"  shard {k}/{n} written ({time.perf_counter() - t0:.0f}s)"),
    )
    files = sim.simulation_event_files(folder)
    import pyarrow.parquet as pq

    n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    facts = {**expected, "n_events": n_rows, "n_users": n_users, "seconds": round(time.perf_counter() - t0, 1),
             "bytes": sum(f.stat().st_size for f in files)}
    marker.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    _say(f"simulation: {n_rows:,} events in {facts['seconds']}s")
    return folder, {**facts, "reused": False}


# ----------------------------------------------------------------------------------------------------------
# workers (fresh processes)
# ----------------------------------------------------------------------------------------------------------


def _data_config(folder: Path, cache: Path) -> Any:
    from intentrec.config import load_config

    cfg = load_config(CONFIG, [f"data.source.path={folder}", f"data.cache_dir={cache}"])
    return cfg.data


def worker(mode: str, folder: Path, cache: Path, chunk_events: int | None, stream_min_bytes: int | None
           ) -> dict[str, Any]:
    """Run one preparation (``prepare``) or cache load (``load``) and measure it; runs in a fresh process."""
    import numpy as np

    from intentrec.data import adapters, pipeline
    from intentrec.data.pipeline import prepare_with_report

    try:  # the knobs of the out-of-core builder (module constants; absent before it existed)
        from intentrec.data import chunked

        if chunk_events is not None:
            chunked.CHUNK_EVENTS = chunk_events
        if stream_min_bytes is not None:
            pipeline.STREAM_MIN_BYTES = stream_min_bytes  # type: ignore[attr-defined]
        chunk_size: int | None = chunked.CHUNK_EVENTS
        threshold: int | None = pipeline.STREAM_MIN_BYTES  # type: ignore[attr-defined]
    except ImportError:
        chunk_size = threshold = None
    baseline = _rss_mb()
    cfg = _data_config(folder, cache)
    input_bytes = sum(f.stat().st_size for f in adapters.source_files(cfg.source))
    t0 = time.perf_counter()
    prepared = prepare_with_report(cfg, progress=True)
    seconds = time.perf_counter() - t0
    data = prepared.data
    out: dict[str, Any] = {
        "mode": mode, "cached": prepared.cached, "events": int(data.offsets[-1]), "users": data.n_users,
        "items": len(data.item_vocab), "seconds": round(seconds, 2), "baseline_rss_mb": round(baseline, 1),
        "streamed": threshold is not None and input_bytes >= threshold, "chunk_events": chunk_size,
    }
    if mode == "load":
        u = data.n_users // 2
        s = data.user_slice(u)
        touched = int(np.asarray(data.item_idx[s]).sum()) + int(np.asarray(data.session[s]).sum())
        touched += int(sum(int(np.asarray(v[s]).sum()) for v in data.categorical.values()))
        out["touched_events"] = s.stop - s.start
        out["checksum"] = touched + float(np.asarray(data.timestamps[s]).sum())
        out["mapped"] = isinstance(data.item_idx, np.memmap) or isinstance(getattr(data.item_idx, "base", None),
                                                                             np.memmap)
    out["rss_after_mb"] = round(_rss_mb(), 1)
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return out


def _run_worker(mode: str, folder: Path, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--folder", str(folder),
           "--cache", str(cache)]
    if args.chunk_events is not None:
        cmd += ["--chunk-events", str(args.chunk_events)]
    if args.stream_min_bytes is not None:
        cmd += ["--stream-min-bytes", str(args.stream_min_bytes)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} worker failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_size(args: argparse.Namespace, n_events: int) -> dict[str, Any]:
    """Simulate (or reuse) one size, then prepare and load it in fresh processes."""
    folder, sim_facts = simulate(args.preset, n_events, Path(args.sim_dir), args.shard_events)
    cache_root = Path(args.cache_dir) if args.cache_dir else Path(args.sim_dir)
    cache_root.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix=f"prep-cache-{n_events}-", dir=cache_root))
    try:
        _say(f"[{n_events:,}] prepare (fresh process, empty cache {cache})")
        prep = _run_worker("prepare", folder, cache, args)
        cache_bytes = _folder_bytes(cache)
        _say(f"[{n_events:,}] load (fresh process, cache hit)")
        load = _run_worker("load", folder, cache, args)
    finally:
        if not args.keep_cache:
            shutil.rmtree(cache, ignore_errors=True)
    per_m = (prep["peak_rss_mb"] - prep["baseline_rss_mb"]) / max(prep["events"] / 1e6, 1e-9)
    row = {
        "target_events": n_events, "events": prep["events"], "users": prep["users"], "items": prep["items"],
        "shards": sim_facts["n_shards"], "input_mb": round(sim_facts.get("bytes", 0) / 2**20, 1),
        "prepare_seconds": prep["seconds"], "prepare_peak_rss_mb": prep["peak_rss_mb"],
        "baseline_rss_mb": prep["baseline_rss_mb"],
        "rss_per_million_events_mb": round(prep["peak_rss_mb"] / max(prep["events"] / 1e6, 1e-9), 1),
        "rss_above_baseline_per_million_events_mb": round(per_m, 1),
        "cache_mb": round(cache_bytes / 2**20, 1),
        "load_seconds": load["seconds"], "load_peak_rss_mb": load["peak_rss_mb"], "load_mapped": load["mapped"],
        "load_cached": load["cached"], "streamed": prep["streamed"], "chunk_events": prep["chunk_events"],
    }
    _say(json.dumps(row))
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("| events | users | items | streamed | prepare s | peak RSS MB | RSS MB / M events | cache MB | load s | "
            "load peak RSS MB |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['events']:,} | {r['users']:,} | {r['items']:,} | {r['streamed']} | {r['prepare_seconds']:.1f} | "
            f"{r['prepare_peak_rss_mb']:.0f} | {r['rss_per_million_events_mb']:.0f} | {r['cache_mb']:.0f} | "
            f"{r['load_seconds']:.2f} | {r['load_peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 50_000_000],
                   help="target numbers of simulated events")
    p.add_argument("--preset", default="small", help="streaming_sim preset scaled to each size")
    p.add_argument("--sim-dir", default=str(REPO / ".cache" / "intentrec-bench"), help="where logs are written")
    p.add_argument("--shard-events", type=int, default=2_500_000, help="most events per simulated shard")
    p.add_argument("--cache-dir", default=None, help="where the temporary caches go (default: --sim-dir)")
    p.add_argument("--keep-cache", action="store_true", help="keep each size's prepared cache")
    p.add_argument("--chunk-events", type=int, default=None,
                   help="events per chunk of users of the out-of-core builder (default: intentrec's)")
    p.add_argument("--stream-min-bytes", type=int, default=None,
                   help="input size from which preparation streams (default: intentrec's; 0 always streams)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--worker", choices=["prepare", "load"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, Path(args.folder), Path(args.cache), args.chunk_events,
                                args.stream_min_bytes)), flush=True)
        return
    rows = [bench_size(args, n) for n in args.sizes]
    result = {"host": {"python": platform.python_version(), "machine": platform.machine(),
                       "cpus": len(__import__("os").sched_getaffinity(0))}, "rows": rows}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    print(_table(rows))


if __name__ == "__main__":
    main()
