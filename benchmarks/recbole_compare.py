"""Side by side on Amazon Beauty: RecBole's SASRec vs intentrec's SASRec and IntentRec V3 (issue 6 §3).

Same data (the S3-Rec Beauty file, leave-one-out), same hyperparameters, same machine, one run at a time. Prints
seconds per epoch (training only, and with validation), the epochs and time each model needs to reach RecBole's
best validation NDCG@10, the best validation NDCG@10 of each, and the speed ratios against RecBole; writes
``OUT/comparison.json``.

Commands (from the repository root)::

    bash benchmarks/recbole/setup_venv.sh              # once: RecBole 1.2.1 in .cache/recbole-venv
    .venv/bin/python benchmarks/recbole_compare.py --epochs 3              # quick measurement (~15 min)
    .venv/bin/python benchmarks/recbole_compare.py --epochs 200 --out runs/recbole-compare-full
    .venv/bin/python benchmarks/recbole_compare.py --only intentrec --epochs 3   # re-run one model; the
        # table merges it with the other models' results already in --out

**RecBole** runs in its own venv (RecBole is not a dependency of intentrec) as a subprocess:
``benchmarks/recbole/run_recbole.py`` on the atomic files that ``benchmarks/recbole/convert.py`` writes (run here
when missing). Its per-epoch training time, validation time and validation NDCG@10 are parsed from RecBole's log
("epoch X training [time: Ys, ...]", "epoch X evaluating [time: ...]", "valid result: ... ndcg@10 : ...").
**intentrec** runs as ``python -m intentrec train --config configs/beauty.yaml --set ...`` (``model.architecture=
sasrec`` for SASRec); per-epoch ``train_seconds``, ``targets_per_second`` and ``val/ndcg@10`` come from the run's
``history.jsonl``. For both, the wall time of an epoch *with* validation (and checkpoint writing) is the time
between two consecutive end-of-epoch log lines, stamped by this script as the subprocess prints them; the first
epoch starts at the "training starts" line (data preparation is reported apart).

**What an epoch is.** In both an epoch shows every training target once: leave-one-out leaves each user's
i_2 … i_{n-2} as training targets (131,413 on Beauty). The batches differ in kind: RecBole's batch of 256 is 256
*(prefix, next item) instances*, one target each (~514 steps per epoch), while intentrec's batch of 256 is 256
*sequences* (windows of up to 50 events) that contribute every position as a target (~90 steps per epoch, several
thousand targets per step). So the number of optimiser steps per epoch differs; the data per epoch does not.

**Hyperparameters** come from ``--config`` (default ``configs/beauty.yaml``) for both libraries: full-softmax
cross-entropy, d = 64, 2 layers, 2 heads, FFN 4·d, dropout 0.3 (RecBole: hidden and attention dropout), input
length 50, lr 1e-3, gradient-norm clip 1.0, batch 256, seed, validation every epoch on full-ranking NDCG@10, early
stopping after ``--patience`` epochs without improvement (default 10, as in the config). What cannot be made equal
without patching RecBole: the optimiser (RecBole: Adam with constant lr and no weight decay; intentrec: AdamW,
weight decay 0.01 off embeddings/norms/biases, 200 warm-up steps then cosine decay), RecBole's post-LN blocks with
LayerNorm eps 1e-12 vs intentrec's pre-LN blocks, and the item head (RecBole scores by the dot product with the
item embeddings; intentrec's tied head adds a Linear and a per-item bias).

**Tuned recipe** (``--intentrec-set``, intentrec runs only; chosen on Beauty *validation* NDCG@10, BENCHMARKS.md
"Training recipe")::

    python benchmarks/recbole_compare.py --only intentrec-sasrec --only intentrec --epochs 30 \
        --intentrec-set model.item_head=dot --intentrec-set train.batch_size=64 \
        --intentrec-set train.min_lr_ratio=1.0 --intentrec-set train.warmup_steps=100 \
        --intentrec-set train.weight_decay=0.0 --out runs/recbole-compare

RecBole's head (the dot product with the item embeddings), a constant learning rate after a short warm-up and no
weight decay, as RecBole's Adam; 64 sequences per step (~370 targets, 352 steps per epoch) instead of 256 (~1,500
targets, 88 steps), closer to RecBole's 256 targets per step.

**Validation metric, made the same.** RecBole's full ranking of sequential models does not remove the user's past
items, so intentrec is run with ``eval.exclude_seen=false`` here (``--exclude-seen`` restores the config's
setting, which only raises intentrec's numbers: Beauty has no repeat purchases). intentrec leaves out the few
validation targets whose item never occurs in training (51 on Beauty; RecBole keeps them, and with untrained
embeddings they practically never reach the top 10), so the threshold test uses intentrec's NDCG@10 rescaled to
RecBole's target count (``ndcg × n_intentrec / n_recbole``, i.e. those targets counted as misses).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECBOLE_DIR = ROOT / "benchmarks" / "recbole"
MODELS = ("recbole", "intentrec-sasrec", "intentrec")
LABELS = {"recbole": "RecBole SASRec", "intentrec-sasrec": "intentrec SASRec", "intentrec": "intentrec IntentRec V3"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECBOLE_TRAIN = re.compile(r"epoch (\d+) training \[time: ([\d.]+)s, train loss: ([-\d.eE+naninf]+)\]")
RECBOLE_EVAL = re.compile(r"epoch (\d+) evaluating \[time: ([\d.]+)s, valid_score: ([-\d.eE+naninf]+)\]")
RECBOLE_METRIC = re.compile(r"([a-z]+@\d+) : ([\d.]+)")
INTENTREC_MODEL = re.compile(r"model (.+?): ([\d,]+) parameters on (\S+); ([\d,]+) training targets in ([\d,]+) "
                             r"windows, (\d+) steps/epoch")


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
                "COLUMNS": "1000", "TERM": "dumb"})
    env.pop("VIRTUAL_ENV", None)
    return env


def run_logged(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path, start: re.Pattern[str],
               epoch_end: re.Pattern[str], echo: re.Pattern[str]) -> tuple[int, float | None, list[float], float]:
    """Run ``cmd``, saving its output with elapsed-time stamps, and time the training-start and epoch-end lines.

    Returns:
        (exit code, seconds from launch to the training-start line, seconds from launch to each epoch-end line,
        total seconds).
    """
    t0 = time.perf_counter()
    t_start: float | None = None
    ends: list[float] = []
    tail: list[str] = []
    with log_path.open("w", encoding="utf-8") as log, subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            now = time.perf_counter() - t0
            line = ANSI.sub("", raw.rstrip("\n"))
            log.write(f"[{now:9.2f}s] {line}\n")
            log.flush()
            tail = [*tail[-59:], line]
            if t_start is None and start.search(line):
                t_start = now
            elif t_start is not None and epoch_end.search(line):
                ends.append(now)
            if echo.search(line):
                _say(f"    [{now:7.1f}s] {line.strip()}")
        rc = proc.wait()
    total = time.perf_counter() - t0
    if rc != 0:
        _say(f"    exit code {rc}; last lines of {log_path}:")
        for line in tail[-40:]:
            _say(f"      {line}")
    return rc, t_start, ends, total


def _wall_per_epoch(t_start: float | None, ends: list[float]) -> list[float | None]:
    if t_start is None:
        return [None] * len(ends)
    marks = [t_start, *ends]
    return [round(b - a, 2) for a, b in itertools.pairwise(marks)]


# ----------------------------------------------------------------------------------------------------------
# RecBole
# ----------------------------------------------------------------------------------------------------------


def parse_recbole_log(text: str) -> list[dict[str, Any]]:
    """Per-epoch records (1-based epochs) from a RecBole log: training time and loss, validation time and metrics."""
    epochs: dict[int, dict[str, Any]] = {}
    current: int | None = None
    for line in text.splitlines():
        line = ANSI.sub("", line)
        if m := RECBOLE_TRAIN.search(line):
            e = int(m.group(1)) + 1
            epochs.setdefault(e, {"epoch": e}).update(train_seconds=float(m.group(2)), train_loss=float(m.group(3)))
            current = None
        elif m := RECBOLE_EVAL.search(line):
            e = int(m.group(1)) + 1
            epochs.setdefault(e, {"epoch": e})["eval_seconds"] = float(m.group(2))
            current = e
        elif current is not None and "ndcg@10 :" in line:
            epochs[current].update({f"val/{k}": float(v) for k, v in RECBOLE_METRIC.findall(line)})
            current = None
    return [epochs[e] for e in sorted(epochs)]


def run_recbole(args: argparse.Namespace, hp: dict[str, Any], out: Path) -> dict[str, Any]:
    python = Path(args.recbole_python)
    if not python.exists():
        raise SystemExit(f"no RecBole venv at {python}: run `bash benchmarks/recbole/setup_venv.sh` first")
    inter = Path(args.data_path) / "Beauty" / "Beauty.inter"
    if not inter.is_file():
        _say(f"  converting the S3-Rec Beauty file to {inter}")
        subprocess.run([sys.executable, str(RECBOLE_DIR / "convert.py"), "--out", str(args.data_path)], check=True)
    run_dir = out / "recbole"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cmd = [str(python), str(RECBOLE_DIR / "run_recbole.py"), "--data-path", str(Path(args.data_path).resolve()),
           "--dataset", "Beauty", "--out", str(run_dir), "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--patience", str(args.patience), "--batch-size", str(hp["batch_size"]), "--max-len", str(hp["max_len"]),
           "--hidden-size", str(hp["d_model"]), "--n-layers", str(hp["n_layers"]), "--n-heads", str(hp["n_heads"]),
           "--dropout", str(hp["dropout"]), "--lr", str(hp["lr"]), "--seed", str(hp["seed"])]
    _say(f"  $ {' '.join(cmd)}")
    rc, t_start, ends, total = run_logged(
        cmd, run_dir, _env(args.threads), run_dir / "output.log", re.compile(r"^TRAINING START"),
        RECBOLE_EVAL, re.compile(r"TRAINING START|epoch \d+ (training|evaluating)|Error|error:"))
    summary_path = run_dir / "summary.json"
    if rc != 0 or not summary_path.is_file():
        return {"key": "recbole", "label": LABELS["recbole"], "failed": True, "exit_code": rc, "command": cmd}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    epochs = parse_recbole_log(Path(summary["log_file"]).read_text(encoding="utf-8"))
    for rec, wall in zip(epochs, _wall_per_epoch(t_start, ends), strict=False):
        rec["wall_seconds"] = wall
    n_train = summary["train_targets"]
    for rec in epochs:
        if rec.get("train_seconds"):
            rec["targets_per_second"] = round(n_train / rec["train_seconds"], 1)
    return {
        "key": "recbole", "label": LABELS["recbole"], "failed": False, "command": cmd,
        "library": f"RecBole {summary['recbole_version']} (torch {summary['torch_version']})",
        "torch_threads": summary["torch_threads"], "train_targets": n_train,
        "validation_targets": summary["validation_targets"], "steps_per_epoch": summary["steps_per_epoch"],
        "batch": f"{hp['batch_size']} (prefix, next item) instances = {hp['batch_size']} targets",
        "prepare_seconds": round(t_start, 2) if t_start is not None else None,
        "dataset_build_seconds": summary["prepare_seconds"], "total_seconds": round(total, 2),
        "epochs": epochs, "test": summary.get("test"), "log": str(run_dir / "output.log"),
        "recbole_log": summary["log_file"],
    }


# ----------------------------------------------------------------------------------------------------------
# intentrec
# ----------------------------------------------------------------------------------------------------------


def run_intentrec(args: argparse.Namespace, key: str, out: Path) -> dict[str, Any]:
    run_dir = out / key
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    sets = [f"train.epochs={args.epochs}", f"train.num_threads={args.threads}", f"train.patience={args.patience}",
            "train.monitor=ndcg@10", *args.set, *args.intentrec_set]
    if not args.exclude_seen:
        sets.append("eval.exclude_seen=false")
    if key == "intentrec-sasrec":
        sets.append("model.architecture=sasrec")
    cmd = [sys.executable, "-m", "intentrec", "train", "--config", str(args.config), "--out", str(run_dir),
           "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    _say(f"  $ {' '.join(cmd)}")
    rc, t_start, ends, total = run_logged(
        cmd, ROOT, _env(args.threads), run_dir / "output.log", INTENTREC_MODEL, re.compile(r"^epoch \d+: loss"),
        re.compile(r"^(data:|model |epoch \d+:|early stop)|Error|error:"))
    history_path = run_dir / "history.jsonl"
    if rc != 0 or not history_path.is_file():
        return {"key": key, "label": LABELS[key], "failed": True, "exit_code": rc, "command": cmd}
    history = [json.loads(x) for x in history_path.read_text(encoding="utf-8").splitlines() if x.strip()]
    text = ANSI.sub("", (run_dir / "output.log").read_text(encoding="utf-8"))
    m = INTENTREC_MODEL.search(text)
    n_train = int(m.group(4).replace(",", "")) if m else None
    steps = int(m.group(6)) if m else None
    epochs: list[dict[str, Any]] = []
    for rec, wall in zip(history, _wall_per_epoch(t_start, ends) + [None] * len(history), strict=False):
        item = {"epoch": int(rec["epoch"]), "train_seconds": rec["train_seconds"],
                "targets_per_second": rec.get("targets_per_second"), "train_loss": rec.get("loss/total"),
                "wall_seconds": wall}
        if wall is not None:
            item["eval_seconds"] = round(wall - rec["train_seconds"], 2)  # validation + history/checkpoint writes
        item.update({k: v for k, v in rec.items() if k.startswith("val/")})
        epochs.append(item)
    val_doc = _read_json(run_dir / "metrics_validation.json")
    test_doc = _read_json(run_dir / "metrics.json")
    import intentrec

    return {
        "key": key, "label": LABELS[key], "failed": False, "command": cmd,
        "library": f"intentrec {intentrec.__version__}", "torch_threads": args.threads, "train_targets": n_train,
        "validation_targets": val_doc.get("n_targets"), "steps_per_epoch": steps,
        "batch": f"{args.intentrec_batch} sequences (windows of up to 50 events), every position a target",
        "intentrec_set": list(args.intentrec_set),
        "prepare_seconds": round(t_start, 2) if t_start is not None else None, "total_seconds": round(total, 2),
        "exclude_seen": args.exclude_seen, "epochs": epochs,
        "test": {k: v for k, v in test_doc.get("item", {}).items() if k.startswith(("hr@", "ndcg@", "mrr"))},
        "validation_description": val_doc.get("description"), "log": str(run_dir / "output.log"),
    }


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# ----------------------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------------------


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.fmean(vals), 2) if vals else None


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Seconds per epoch, best validation NDCG@10, and epochs/time to reach RecBole's best validation NDCG@10."""
    rb = results.get("recbole")
    rb_ok = rb is not None and not rb.get("failed")
    rb_best = max((e.get("val/ndcg@10", -1.0) for e in rb["epochs"]), default=None) if rb_ok else None
    rb_targets = rb.get("validation_targets") if rb_ok else None
    rows: dict[str, Any] = {}
    for key in MODELS:
        res = results.get(key)
        if res is None or res.get("failed"):
            continue
        epochs = res["epochs"]
        scale = 1.0
        if key != "recbole" and rb_targets and res.get("validation_targets"):
            scale = res["validation_targets"] / rb_targets  # excluded cold targets counted as misses
        vals = [e.get("val/ndcg@10") for e in epochs]
        scored = [(v * scale, e) for v, e in zip(vals, epochs, strict=True) if v is not None]
        best_val, best_ep = max(scored, key=lambda t: t[0]) if scored else (None, {})
        row: dict[str, Any] = {
            "label": res["label"], "epochs_run": len(epochs),
            "train_seconds_per_epoch": _mean([e.get("train_seconds") for e in epochs]),
            "train_seconds_per_epoch_median": (round(statistics.median([e["train_seconds"] for e in epochs]), 2)
                                               if epochs else None),
            "wall_seconds_per_epoch": _mean([e.get("wall_seconds") for e in epochs]),
            "targets_per_second": _mean([e.get("targets_per_second") for e in epochs]),
            "best_val_ndcg@10": round(best_val, 6) if best_val is not None else None,
            "best_val_ndcg@10_raw": max((v for v in vals if v is not None), default=None),
            "best_epoch": best_ep.get("epoch"), "val_ndcg@10_scale": round(scale, 6),
        }
        reach = None
        if rb_best is not None:
            for i, (v, e) in enumerate(scored):
                if v >= rb_best - 1e-12:
                    reach = (e["epoch"], i)
                    break
        if reach is not None:
            upto = epochs[: reach[1] + 1]
            walls = [e.get("wall_seconds") for e in upto]
            row.update({
                "epochs_to_recbole_best": reach[0],
                "train_seconds_to_recbole_best": round(sum(e["train_seconds"] for e in upto), 2),
                "wall_seconds_to_recbole_best": round(sum(walls), 2) if None not in walls else None,  # type: ignore[arg-type]
            })
        else:
            row.update({"epochs_to_recbole_best": None, "train_seconds_to_recbole_best": None,
                        "wall_seconds_to_recbole_best": None})
        rows[key] = row
    if "recbole" in rows:
        base = rows["recbole"]
        for row in rows.values():
            for what in ("train_seconds_per_epoch", "wall_seconds_per_epoch", "train_seconds_to_recbole_best",
                         "wall_seconds_to_recbole_best"):
                a, b = base.get(what), row.get(what)
                row[f"speedup_{what}"] = round(a / b, 2) if a and b else None
    return {"recbole_best_val_ndcg@10": rb_best, "recbole_validation_targets": rb_targets, "models": rows}


def _fmt(v: Any, spec: str = ".1f", none: str = "–") -> str:
    if v is None:
        return none
    return format(v, spec) if isinstance(v, int | float) else str(v)


def print_table(summary: dict[str, Any], epochs_asked: int, results: dict[str, dict[str, Any]]) -> None:
    rows = summary["models"]
    rb_best = summary["recbole_best_val_ndcg@10"]
    cols = [k for k in MODELS if k in rows]
    width = 26
    _say()
    _say(f"Amazon Beauty (S3-Rec), leave-one-out, full ranking; up to {epochs_asked} epoch(s); epoch = every training "
         "target once")
    _say(f"RecBole's best validation NDCG@10: {_fmt(rb_best, '.4f', 'n/a (RecBole not run)')}")
    _say(f"{'':<40}" + "".join(f"{rows[k]['label']:>{width}}" for k in cols))

    def line(name: str, fn: Any) -> None:
        _say(f"{name:<40}" + "".join(f"{fn(rows[k]):>{width}}" for k in cols))

    line("epochs run", lambda r: _fmt(r["epochs_run"], "d"))
    line("s/epoch, training only (mean)", lambda r: _fmt(r["train_seconds_per_epoch"]))
    line("s/epoch, with validation (wall, mean)", lambda r: _fmt(r["wall_seconds_per_epoch"]))
    line("training targets/s", lambda r: _fmt(r["targets_per_second"], ",.0f"))
    line("best validation NDCG@10 (epoch)",
         lambda r: f"{_fmt(r['best_val_ndcg@10'], '.4f')} ({_fmt(r['best_epoch'], 'd')})")
    line("epochs to RecBole's best",
         lambda r: _fmt(r["epochs_to_recbole_best"], "d", "not reached" if rb_best is not None else "–"))
    line("training s to RecBole's best", lambda r: _fmt(r["train_seconds_to_recbole_best"]))
    line("wall s to RecBole's best", lambda r: _fmt(r["wall_seconds_to_recbole_best"]))
    if "recbole" in rows:
        line("speed-up s/epoch, training (x)", lambda r: _fmt(r.get("speedup_train_seconds_per_epoch"), ".2f"))
        line("speed-up s/epoch, with validation (x)", lambda r: _fmt(r.get("speedup_wall_seconds_per_epoch"), ".2f"))
        line("speed-up to RecBole's best, wall (x)",
             lambda r: _fmt(r.get("speedup_wall_seconds_to_recbole_best"), ".2f"))
    _say("speed-up = RecBole's seconds / the model's seconds (> 1: faster than RecBole).")
    for key in ("intentrec-sasrec", "intentrec"):
        res = results.get(key, {})
        if res and not res.get("failed"):
            extra = f"; overrides {' '.join(res['intentrec_set'])}" if res.get("intentrec_set") else ""
            _say(f"{LABELS[key]}: batch of {res.get('batch')}, {res.get('steps_per_epoch')} steps/epoch{extra}")
    _say("RecBole: batch of 256 (prefix, next item) instances, one target each. Same targets per epoch.")
    _say("intentrec's validation NDCG@10 is counted over RecBole's targets (cold-item targets as misses) and without "
         "removing seen items, as RecBole's full ranking of sequential models does.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="maximum epochs of every model (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads for every run (default 2)")
    parser.add_argument("--only", action="append", choices=MODELS,
                        help="run only this model (repeatable); results of the others already in --out are reused")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "recbole-compare")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "beauty.yaml")
    parser.add_argument("--set", action="append", default=[], help="config override for both intentrec runs; model/train values also set RecBole's hyperparameters")
    parser.add_argument("--intentrec-set", action="append", default=[],
                        help="config override for the intentrec runs only (RecBole keeps its hyperparameters), e.g. "
                             "the optimisation recipe of BENCHMARKS.md: model.item_head=dot train.batch_size=64 ...")
    parser.add_argument("--patience", type=int, default=None,
                        help="early-stopping patience of every run (default: the config's train.patience)")
    parser.add_argument("--exclude-seen", action="store_true",
                        help="keep intentrec's seen-item filter (RecBole has none, so its metric then differs)")
    parser.add_argument("--recbole-python", default=str(ROOT / ".cache" / "recbole-venv" / "bin" / "python"))
    parser.add_argument("--data-path", default=str(ROOT / ".cache" / "recbole-data"),
                        help="RecBole data_path with Beauty/Beauty.inter (written by convert.py when missing)")
    args = parser.parse_args()

    from intentrec.config import load_config  # the resolved config (no torch import)

    cfg = load_config(args.config, args.set)
    if cfg.data.source.adapter != "s3rec" or cfg.data.source.name != "Beauty":
        raise SystemExit(f"{args.config}: expected the S3-Rec Beauty data (configs/beauty.yaml)")
    if args.patience is None:
        args.patience = cfg.train.patience
    args.intentrec_batch = load_config(args.config, [*args.set, *args.intentrec_set]).train.batch_size
    hp = {"batch_size": cfg.train.batch_size, "max_len": cfg.model.max_len, "d_model": cfg.model.d_model,
          "n_layers": cfg.model.n_layers, "n_heads": cfg.model.n_heads, "dropout": cfg.model.dropout,
          "lr": cfg.train.lr, "seed": cfg.train.seed}
    if cfg.model.ffn_mult != 4:
        _say(f"note: {args.config} has ffn_mult {cfg.model.ffn_mult}; RecBole's inner_size is fixed at 4·d here")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "comparison.json"
    previous = _read_json(json_path).get("results", {})
    results: dict[str, dict[str, Any]] = {k: v for k, v in previous.items() if k in MODELS}
    todo = args.only or list(MODELS)
    _say(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {', '.join(todo)}; {args.epochs} epoch(s), {args.threads} thread(s), "
         f"patience {args.patience}; output in {out}")
    for key in [k for k in MODELS if k in todo]:
        _say(f"\n== {LABELS[key]} ==")
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        res = run_recbole(args, hp, out) if key == "recbole" else run_intentrec(args, key, out)
        res.update({"started": started, "epochs_asked": args.epochs, "threads": args.threads,
                    "load_average_after": list(os.getloadavg())})
        results[key] = res
        doc = {"results": results, "hyperparameters": hp, "config": str(args.config)}
        json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    summary = summarise(results)
    doc = {"summary": summary, "results": results, "hyperparameters": hp, "config": str(args.config),
           "patience": args.patience, "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print_table(summary, args.epochs, results)
    failed = [k for k in todo if results.get(k, {}).get("failed")]
    if failed:
        _say(f"failed: {', '.join(failed)} (logs in {out})")
    _say(f"\nresults: {json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
