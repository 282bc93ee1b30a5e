"""Run a benchmark suite: every run trained (or fitted) and evaluated by :func:`intentrec.workflows.train`.

Layout of the output folder::

    DIR/results.json                       every run: config, metrics, per-target file, time, epochs, status
    DIR/report.md, DIR/plots/*.png         written by :mod:`intentrec.benchmark.report` after every run
    DIR/runs/<dataset>/<model>/seed<k>/    the run directories (metrics.json, per_target_test.npz, ...)
    DIR/refits/<dataset>/<model>/seed<k>/  with ``refit: true``: each run refitted on training + validation events

Resumable: a finished run whose resolved config is unchanged is reused; an interrupted one resumes from its
``last/`` state; a run whose config changed is retrained from scratch. A failing run is recorded with its error
and the suite goes on, so nothing already measured is lost. Refits follow the same rules: one whose source run
(config or chosen epoch) is unchanged is reused, an interrupted one resumes, a failed one is recorded in its run's
record under ``refit``.

Parallel: several invocations may share one output folder (e.g. one per CPU core, each with one torch thread).
Each run is claimed by a lock file (``DIR/locks/``) while it trains, so the others skip it, and every write of
``results.json`` merges the runs recorded by the other invocations under a lock (POSIX ``flock``; on other
systems run one invocation per folder).
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import torch

from intentrec import workflows
from intentrec.benchmark.report import write_report
from intentrec.benchmark.suite import RunSpec, expand_runs, load_suite, run_slug
from intentrec.errors import ConfigError
from intentrec.train.checkpoint import atomic_write_text

__all__ = ["RESULTS_FILE", "machine_info", "run_suite"]

RESULTS_FILE = "results.json"
RESULTS_FORMAT = 1


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: OS, CPU count, Python, torch, GPU."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _load_results(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); move it away to start the suite afresh") from None
    if doc.get("format") != RESULTS_FORMAT:
        raise ConfigError(f"{path} was written by another results format ({doc.get('format')}); use a new --out")
    return doc


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs; no lock without ``fcntl``."""
    try:
        import fcntl
    except ImportError:  # not POSIX: one invocation per output folder
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _claim(path: Path) -> IO[str] | None:
    """An open handle holding a non-blocking exclusive lock on ``path``, or None when another process holds it
    (without ``fcntl`` every claim succeeds). Closing the handle releases the claim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    try:
        import fcntl
    except ImportError:
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _run_dir(out: Path, spec: RunSpec, kind: str = "runs") -> Path:
    return out / kind / run_slug(spec.dataset) / run_slug(spec.model) / f"seed{spec.seed}"


def _stale(run_dir: Path, spec: RunSpec) -> bool:
    """True when ``run_dir`` holds a run of a different config (its state cannot be resumed)."""
    cfg_file = run_dir / workflows.CONFIG_FILE
    if not cfg_file.exists():
        return False
    try:
        return json.loads(cfg_file.read_text(encoding="utf-8")) != spec.cfg.to_dict()
    except json.JSONDecodeError:
        return True


def _record(spec: RunSpec, out: Path, run_dir: Path, outcome: workflows.TrainOutcome, wall: float) -> dict[str, Any]:
    test, val = outcome.test, outcome.validation
    training = test.get("training", {})
    return {
        "key": spec.key,
        "dataset": spec.dataset,
        "model": spec.model,
        "seed": spec.seed,
        "tables": list(spec.tables),
        "single_head": spec.single_head,
        "architecture": spec.cfg.model.architecture,
        "label": spec.cfg.model.label,
        "heuristic": spec.cfg.model.is_heuristic,
        "config_hash": spec.config_hash,
        "config": spec.cfg.to_dict(),
        "status": "done",
        "run_dir": run_dir.relative_to(out).as_posix(),
        "per_target": (run_dir / "per_target_test.npz").relative_to(out).as_posix(),
        "test": {"item": test["item"], "intents": test["intents"], "n_targets": test["n_targets"]},
        "validation": {"item": val["item"], "intents": val["intents"], "n_targets": val["n_targets"]},
        "popularity_test": test["baselines"]["popularity"],
        "protocol": {k: test[k] for k in ("split", "protocol", "ranking", "exclude_seen", "description",
                                           "excluded_targets")},
        "train_seconds": training.get("train_seconds", 0.0),
        "epochs_run": training.get("epochs_run", 0),
        "best_epoch": training.get("best_epoch", 0),
        "stop_reason": training.get("stop_reason", ""),
        "wall_seconds": round(wall, 2),
        "finished": _now(),
    }


def _refit_record(spec: RunSpec, out: Path, refit_dir: Path, outcome: workflows.TrainOutcome,
                  wall: float) -> dict[str, Any]:
    test = outcome.test
    training = test.get("training", {})
    return {
        "status": "done",
        "config_hash": spec.config_hash,
        "epochs": test["refit"]["epochs"],
        "run_dir": refit_dir.relative_to(out).as_posix(),
        "per_target": (refit_dir / "per_target_test.npz").relative_to(out).as_posix(),
        "test": {"item": test["item"], "intents": test["intents"], "n_targets": test["n_targets"]},
        "train_seconds": training.get("train_seconds", 0.0),
        "epochs_run": training.get("epochs_run", 0),
        "wall_seconds": round(wall, 2),
        "finished": _now(),
    }


def _refit_reusable(old: dict[str, Any] | None, record: dict[str, Any], refit_dir: Path) -> bool:
    """A recorded refit still stands: same config as its source, same chosen epoch, files present."""
    return bool(old and old.get("status") == "done" and old.get("config_hash") == record.get("config_hash")
                and (record.get("heuristic") or old.get("epochs") == record.get("best_epoch"))
                and (refit_dir / workflows.METRICS_FILE).exists())


def _stale_refit(refit_dir: Path, spec: RunSpec, record: dict[str, Any]) -> bool:
    """True when ``refit_dir`` holds a refit of another config or another chosen epoch (it cannot be resumed)."""
    plan = refit_dir / workflows.REFIT_FILE
    if _stale(refit_dir, spec):
        return True
    if not plan.exists() or record.get("heuristic"):
        return False
    try:
        return json.loads(plan.read_text(encoding="utf-8")).get("epochs") != record.get("best_epoch")
    except json.JSONDecodeError:
        return True


def _duration(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def run_suite(
    suite_path: str | Path,
    out: str | Path,
    *,
    only: list[str] | None = None,
    overrides: list[str] | None = None,
    refit: bool | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) every run of a suite, then write ``results.json``, ``report.md`` and plots.

    Args:
        suite_path: the suite YAML file.
        out: output folder (created; reused to resume).
        only: optional glob patterns over run keys ``dataset/model/seedK`` (e.g. ``movielens/*``); other runs are
            neither run nor dropped from earlier results.
        overrides: ``key=value`` overrides for every run, applied last (recorded in each run's config).
        refit: also refit every run on training + validation events (True), or none (False); None = as the suite
            and its datasets say (``refit``).
        progress: show training progress bars.
        log: where run headers and epoch lines go.

    Returns:
        The results document (as written to ``DIR/results.json``).

    Raises:
        ConfigError: invalid suite, a missing dataset config, or an unreadable results file.
    """
    suite_file = Path(suite_path)
    suite = load_suite(suite_file)
    all_runs = expand_runs(suite, suite_file.resolve().parent, overrides, refit=refit)
    runs = all_runs
    if only:
        runs = [r for r in all_runs if any(fnmatch.fnmatchcase(r.key, pat) for pat in only)]
        if not runs:
            raise ConfigError(f"--only {only} matches no run; run keys look like {all_runs[0].key!r}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    results_path = root / RESULTS_FILE
    doc = _load_results(results_path) or {"format": RESULTS_FORMAT, "started": _now(), "runs": {}, "datasets": {}}
    doc.update({"suite": suite.model_dump(mode="json"), "suite_file": str(suite_file), "machine": machine_info(),
                "overrides": list(overrides or [])})

    mine: set[str] = set()  # runs this invocation recorded; the others' records come from the file

    def merge_others() -> None:
        disk = _load_results(results_path)
        for key, record in disk.get("runs", {}).items():
            if key not in mine:
                doc["runs"][key] = record
        for name, summary in disk.get("datasets", {}).items():
            doc["datasets"].setdefault(name, summary)

    def save() -> None:
        with _locked(root / "locks" / "results.lock"):
            merge_others()
            doc["updated"] = _now()
            atomic_write_text(results_path, json.dumps(doc, indent=2))
        write_report(doc, root)

    t_suite, n_trained, train_wall = time.perf_counter(), 0, 0.0

    def one_run(i: int, spec: RunSpec, run_dir: Path) -> None:
        nonlocal n_trained, train_wall
        old = doc["runs"].get(spec.key)
        if (old and old.get("status") == "done" and old.get("config_hash") == spec.config_hash
                and (run_dir / workflows.METRICS_FILE).exists()):
            log(f"[{i}/{len(runs)}] {spec.key}: done earlier ({old['test']['item'].get(suite.metric, 0):.4f} "
                f"{suite.metric}), reused")
            return
        if _stale(run_dir, spec):
            shutil.rmtree(run_dir)
        left = len(runs) - i + 1
        eta = f", about {_duration(train_wall / n_trained * left)} left" if n_trained else ""
        log(f"[{i}/{len(runs)}] {spec.key} ({spec.cfg.model.label}) -> {run_dir}"
            f" [suite {_duration(time.perf_counter() - t_suite)}{eta}]")
        t0 = time.perf_counter()
        mine.add(spec.key)
        try:
            if spec.dataset not in doc["datasets"]:
                doc["datasets"][spec.dataset] = workflows.dataset_summary(spec.cfg)
            outcome = workflows.train(spec.cfg, run_dir, resume=True, progress=progress,
                                      log=lambda msg: log(f"    {msg}"))
        except KeyboardInterrupt:
            save()
            raise
        except Exception as err:  # record the failure, keep the other runs going
            doc["runs"][spec.key] = {
                "key": spec.key, "dataset": spec.dataset, "model": spec.model, "seed": spec.seed,
                "tables": list(spec.tables), "status": "failed", "config_hash": spec.config_hash,
                "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=8),
                "finished": _now(),
            }
            log(f"    FAILED: {type(err).__name__}: {err}")
            save()
            return
        wall = time.perf_counter() - t0
        n_trained += 1
        train_wall += wall
        record = _record(spec, root, run_dir, outcome, wall)
        doc["runs"][spec.key] = record
        log(f"    test {suite.metric} {record['test']['item'].get(suite.metric, 0):.4f} "
            f"({record['epochs_run']} epochs, {_duration(wall)})")
        save()

    def one_refit(spec: RunSpec, run_dir: Path) -> None:
        record = doc["runs"].get(spec.key)
        if not record or record.get("status") != "done" or record.get("config_hash") != spec.config_hash:
            return  # nothing finished to refit
        refit_dir = _run_dir(root, spec, "refits")
        if _refit_reusable(record.get("refit"), record, refit_dir):
            log(f"    refit: done earlier ({record['refit']['test']['item'].get(suite.metric, 0):.4f} "
                f"{suite.metric}), reused")
            return
        if refit_dir.exists() and _stale_refit(refit_dir, spec, record):
            shutil.rmtree(refit_dir)
        log(f"    refit on training + validation events -> {refit_dir}")
        t0 = time.perf_counter()
        mine.add(spec.key)
        try:
            outcome = workflows.refit(run_dir, refit_dir, resume=True, progress=progress,
                                      log=lambda msg: log(f"      {msg}"))
        except KeyboardInterrupt:
            save()
            raise
        except Exception as err:  # recorded beside the run it belongs to; the suite goes on
            record["refit"] = {"status": "failed", "config_hash": spec.config_hash,
                               "error": f"{type(err).__name__}: {err}", "finished": _now()}
            log(f"    refit FAILED: {type(err).__name__}: {err}")
            save()
            return
        record["refit"] = _refit_record(spec, root, refit_dir, outcome, time.perf_counter() - t0)
        log(f"    refit test {suite.metric} {record['refit']['test']['item'].get(suite.metric, 0):.4f} "
            f"({record['refit']['epochs_run']} epochs, {_duration(record['refit']['wall_seconds'])})")
        save()

    for i, spec in enumerate(runs, 1):
        run_dir = _run_dir(root, spec)
        claim = _claim(root / "locks" / f"{run_slug(spec.dataset)}--{run_slug(spec.model)}--seed{spec.seed}.lock")
        if claim is None:
            log(f"[{i}/{len(runs)}] {spec.key}: being trained by another invocation sharing {root}, skipped")
            continue
        try:
            with _locked(root / "locks" / "results.lock"):
                merge_others()  # a run another invocation finished meanwhile is reused by one_run
            one_run(i, spec, run_dir)
            if spec.refit:
                one_refit(spec, run_dir)
        finally:
            claim.close()
    doc["last_session_seconds"] = round(time.perf_counter() - t_suite, 1)
    save()
    return doc
