"""Command line: ``intentrec quickstart | data | train | refit | evaluate | recommend | explain | analyze | layout |
export | predict | serve | benchmark | tune``.

Thin: every command delegates to :mod:`intentrec.workflows`, :mod:`intentrec.analysis_workflows` (analytics) or
:mod:`intentrec.data` (statistics).
"""

from __future__ import annotations

import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from intentrec.errors import IntentRecError

app = typer.Typer(
    name="intentrec",
    help="IntentRec: predict why a user is here (session intents), then what they engage with next.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect or simulate datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

QUICKSTART_CONFIG = "quickstart.yaml"
ITEM_COLUMNS = ("ndcg@10", "recall@10", "recall@20", "ndcg@20", "mrr")


def _fail(err: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {err}")
    raise typer.Exit(code=2)


def _packaged_config(name: str) -> Path:
    return Path(str(resources.files("intentrec") / "resources" / "configs" / name))


def _results_table(doc: dict[str, Any], title: str, model_name: str) -> Table:
    caption = (f"{doc['split']} split, {doc['protocol']} protocol; {doc['ranking']}; "
               f"exclude_seen={doc['exclude_seen']}; {doc['n_targets']:,} targets")
    if "item_cold_as_miss" in doc:
        cold = doc["item_cold_as_miss"]
        caption += (f"; with the {cold['n_targets'] - doc['n_targets']:,} cold-item targets counted as misses (as "
                    f"published leave-one-out numbers are): ndcg@10 {cold.get('ndcg@10', float('nan')):.4f}")
    table = Table(title=title, caption=caption)
    table.add_column("model")
    for key in ITEM_COLUMNS:
        table.add_column(key, justify="right")
    rows = [(model_name, doc["item"]), ("popularity", doc["baselines"]["popularity"]["item"])]
    for name, item in rows:
        table.add_row(name, *(f"{item.get(k, float('nan')):.4f}" for k in ITEM_COLUMNS))
    return table


def _intent_table(doc: dict[str, Any], model_name: str) -> Table | None:
    if not doc["intents"]:
        return None
    table = Table(title="Next-intent prediction (popularity = always the most frequent training label)")
    table.add_column("intent")
    table.add_column("metric")
    table.add_column(model_name, justify="right")
    table.add_column("popularity", justify="right")
    pop = doc["baselines"]["popularity"]["intents"]
    for name, metrics in doc["intents"].items():
        for metric, value in metrics.items():
            if metric == "n":
                continue
            table.add_row(name, metric, f"{value:.4f}", f"{pop.get(name, {}).get(metric, float('nan')):.4f}")
    return table


def _print_recommendation(rec: Any) -> None:
    who = f"user {rec.user_id}" if rec.user_id is not None else "the given items"
    console.print(f"\n[bold]Top-{len(rec.items)} for {who}[/] \n[dim]latest history: {'; '.join(rec.history)}[/]")
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    for i, ((_, score), name) in enumerate(zip(rec.items, rec.item_names, strict=True), 1):
        table.add_row(str(i), name, f"{score:.3f}")
    console.print(table)
    if rec.intents:
        console.print("[bold]Predicted intents of the next interaction[/] (head attention weight = why):")
        for name, labels in rec.intents.items():
            weight = rec.intent_attention.get(name)
            w = f" [dim](attention {weight:.2f})[/]" if weight is not None else ""
            console.print(f"  {name}{w}: " + ", ".join(f"{lab} {p:.2f}" for lab, p in labels))
    if rec.ignored_items:
        console.print(f"[yellow]ignored unknown items:[/] {', '.join(rec.ignored_items)}")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/quickstart"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a key, e.g. --set train.epochs=3.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train IntentRec on the bundled MovieLens data, compare it with popularity, and show one user's top-10."""
    from intentrec import workflows
    from intentrec.config import load_config

    try:
        t0 = time.perf_counter()
        cfg = load_config(_packaged_config(QUICKSTART_CONFIG), set_ or [])
        console.print(f"[bold]intentrec quickstart[/]: {cfg.name} -> {out}")
        outcome = workflows.train(cfg, out, progress=progress, log=console.print)
        console.print(_results_table(outcome.test, "Next-item prediction", cfg.model.label))
        intents = _intent_table(outcome.test, cfg.model.label)
        if intents is not None:
            console.print(intents)
        art = workflows.load_run(out)
        user = art.data.user_ids[int(art.data.split.test_targets[0, 0])] if len(art.data.split.test_targets) else art.data.user_ids[0]
        _print_recommendation(workflows.recommend(out, user_id=user, k=10, art=art))
        console.print(f"\ndone in {time.perf_counter() - t0:.0f}s; metrics in {out / 'metrics.json'}")
    except IntentRecError as err:
        _fail(err)


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML/TOML experiment config.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. --set train.epochs=3.")] = None,
    resume: Annotated[bool, typer.Option(help="Resume from RUN_DIR/last if present.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    nproc: Annotated[int, typer.Option(
        "--nproc", min=1, help="Train with N processes on this machine (DistributedDataParallel; gloo on CPU, NCCL "
        "with one GPU per process): re-launches itself through `python -m torch.distributed.run --standalone`. "
        "For several machines call torchrun directly (README).")] = 1,
) -> None:
    """Train a model, select it on validation, evaluate it on test (beside popularity).

    Also the entry point of every process of ``torchrun -m intentrec train ...`` (multi-process / multi-node).
    """
    from intentrec import workflows
    from intentrec.config import load_config

    if nproc > 1:
        _launch_processes(nproc, config, out, set_ or [], resume, progress)
        return
    try:
        cfg = load_config(config, set_ or [])
        outcome = workflows.train(cfg, out, resume=resume, progress=progress, log=console.print)
        if outcome.rank != 0:  # under torchrun only rank 0 reports
            return
        console.print(_results_table(outcome.test, f"{cfg.name}: next-item prediction", cfg.model.label))
        intents = _intent_table(outcome.test, cfg.model.label)
        if intents is not None:
            console.print(intents)
        console.print(f"metrics: {out / 'metrics.json'}")
    except IntentRecError as err:
        _fail(err)


def _launch_processes(nproc: int, config: Path, out: Path, overrides: list[str], resume: bool, progress: bool) -> None:
    """``intentrec train --nproc N``: run ``torchrun --standalone --nproc-per-node N -m intentrec train ...``."""
    import os
    import shlex
    import subprocess

    if any(name in os.environ for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE")):
        _fail(IntentRecError("--nproc starts its own processes: drop it when launching with torchrun"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "-m", "intentrec", "train", "--config", str(config), "--out", str(out),
        *(arg for override in overrides for arg in ("--set", override)),
        "--resume" if resume else "--no-resume", "--progress" if progress else "--no-progress",
    ]
    console.print(f"launching {nproc} processes: {shlex.join(command)}", markup=False, highlight=False, soft_wrap=True)
    code = subprocess.call(command)
    if code != 0:
        err_console.print(f"[bold red]error:[/] the distributed run failed (exit code {code}); see the output above")
        raise typer.Exit(code=code)


@app.command()
def refit(
    run_dir: Annotated[Path, typer.Argument(help="A finished run of `intentrec train` (its validation chose the epochs).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory of the refit.")],
    epochs: Annotated[int | None, typer.Option(
        help="Epochs to train (default: the source run's best validation epoch).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a key of the source run's config, e.g. --set train.num_threads=1.")] = None,
    resume: Annotated[bool, typer.Option(help="Resume from OUT/last if present.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Retrain a run on its training + validation events for the epochs validation chose, then score test.

    The model one would deploy. Not the published leave-one-out protocol (that never trains on the validation
    item): compare a refit with refits.
    """
    from intentrec import workflows

    try:
        outcome = workflows.refit(run_dir, out, epochs=epochs, overrides=set_ or [], resume=resume,
                                  progress=progress, log=console.print)
        if outcome.rank != 0:
            return
        doc = outcome.test
        n = doc["refit"]["epochs"]
        console.print(_results_table(doc, f"{doc['dataset']}: next-item prediction (refit, {n} epoch"
                                          f"{'' if n == 1 else 's'})", doc["model"]))
        intents = _intent_table(doc, doc["model"])
        if intents is not None:
            console.print(intents)
        console.print(f"metrics: {out / 'metrics.json'}")
    except IntentRecError as err:
        _fail(err)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `intentrec train`.")],
    split: Annotated[str, typer.Option(help="test or validation.")] = "test",
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics document as JSON.")] = False,
) -> None:
    """Evaluate a trained run on the full catalogue."""
    from intentrec import workflows

    try:
        doc = workflows.evaluate_run(run_dir, split)
    except IntentRecError as err:
        _fail(err)
        return
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    console.print(_results_table(doc, "Next-item prediction", doc["model"]))
    intents = _intent_table(doc, doc["model"])
    if intents is not None:
        console.print(intents)


@app.command()
def recommend(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `intentrec train`.")],
    user: Annotated[str | None, typer.Option(help="A user id from the training data.")] = None,
    items: Annotated[str | None, typer.Option(help="Comma-separated item ids, oldest first.")] = None,
    k: Annotated[int, typer.Option(min=1, help="How many items.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    request_time: Annotated[str | None, typer.Option(
        help="When the recommendations are asked for: seconds since the epoch or an ISO 8601 time (default: now); "
             "read by models trained with model.request_gap.")] = None,
) -> None:
    """Top-k items and predicted intents for a user (or a list of items)."""
    from dataclasses import asdict

    from intentrec import workflows
    from intentrec.analysis_workflows import _parse_time

    try:
        item_list = [s.strip() for s in items.split(",") if s.strip()] if items is not None else None
        when = None if request_time is None else _parse_time(request_time, "--request-time")
        rec = workflows.recommend(run_dir, user_id=user, items=item_list, k=k, request_time=when)
    except IntentRecError as err:
        _fail(err)
        return
    if json_out:
        sys.stdout.write(json.dumps(asdict(rec), indent=2) + "\n")
    else:
        _print_recommendation(rec)


def _column_map(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        canonical, sep, yours = pair.partition("=")
        if not sep or not canonical.strip() or not yours.strip():
            raise IntentRecError(f"--column {pair!r}: use canonical=yours, e.g. --column user_id=userId")
        if canonical.strip() not in {"user_id", "item_id", "timestamp", "session_id"}:
            raise IntentRecError(f"--column {pair!r}: the canonical name must be user_id, item_id, timestamp or "
                                 "session_id (other columns are read by their own names)")
        out[canonical.strip()] = yours.strip()
    return out


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `intentrec train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write.")],
    format_: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help="Formats: 'safetensors' (always written) and 'onnx' (adds model.onnx)."),
    ] = None,
) -> None:
    """Write the serving bundle of a run: weights, config, vocabularies, item features, checksums (and ONNX)."""
    from intentrec import workflows
    from intentrec.serve.bundle import load_bundle

    formats = {f.strip().lower() for f in format_ or ["safetensors"]}
    unknown = formats - {"safetensors", "onnx"}
    try:
        if unknown:
            raise IntentRecError(f"--format {sorted(unknown)}: use safetensors and/or onnx")
        path = workflows.export(run_dir, out, onnx="onnx" in formats)
        bundle = load_bundle(path)
    except IntentRecError as err:
        _fail(err)
        return
    except ImportError as err:
        _fail(IntentRecError(f"--format onnx needs the serve extra: pip install 'intentrec[serve]' ({err})"))
        return
    files = ", ".join(f"{name} ({meta['bytes'] / 1e6:.1f} MB)" for name, meta in bundle.manifest["files"].items())
    console.print(f"bundle {bundle.model_version} -> {path}\n  {files}\n  {len(bundle.item_vocab) - 2:,} items; "
                  f"intents: {', '.join(bundle.head_names) or 'none'}")


@app.command()
def predict(
    bundle_dir: Annotated[Path, typer.Argument(help="A bundle written by `intentrec export`.")],
    input_: Annotated[Path, typer.Option("--input", "-i", help="Events file (CSV/TSV/Parquet/JSONL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet file.")],
    k: Annotated[int, typer.Option(min=1, help="Items per user.")] = 100,
    column: Annotated[
        list[str] | None, typer.Option(help="Map a column: canonical=yours, e.g. --column user_id=userId.")
    ] = None,
    by: Annotated[str, typer.Option(help="user or session (needs a session_id column).")] = "user",
    exclude_seen: Annotated[
        bool | None, typer.Option("--exclude-seen/--keep-seen", help="Drop history items (default: the model's).")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Events read per chunk (bounds memory).")] = 100_000,
    backend: Annotated[str, typer.Option(help="torch or onnx (needs a bundle exported with --format onnx).")] = "torch",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    request_time: Annotated[str | None, typer.Option(
        help="When the recommendations are asked for, for every history: seconds since the epoch or an ISO 8601 "
             "time (default: now); read by models trained with model.request_gap.")] = None,
) -> None:
    """Batch inference: top-k items, intents, attention weights and Z for every user of an events file."""
    from intentrec import workflows
    from intentrec.analysis_workflows import _parse_time

    try:
        when = None if request_time is None else _parse_time(request_time, "--request-time")
        workflows.predict(bundle_dir, input_, out, k=k, columns=_column_map(column), by=by,
                          exclude_seen=exclude_seen, chunk_rows=chunk_rows, backend=backend, progress=progress,
                          log=console.print, request_time=when)
    except IntentRecError as err:
        _fail(err)


@app.command()
def serve(
    bundle_dir: Annotated[Path, typer.Argument(help="A bundle written by `intentrec export`.")],
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default; 0.0.0.0 exposes it).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
    backend: Annotated[str, typer.Option(help="torch or onnx.")] = "torch",
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads the model).")] = 1,
    api_key_env: Annotated[
        str | None, typer.Option(help="Name of an environment variable holding the API key clients must send.")
    ] = None,
) -> None:
    """Serve recommendations over HTTP: POST /v1/recommend, GET /v1/metadata, /healthz, /docs."""
    import os

    try:
        from intentrec.serve.http import ServiceSettings, run_server
    except ImportError as err:
        _fail(IntentRecError(f"the HTTP service needs the serve extra: pip install 'intentrec[serve]' ({err})"))
        return
    try:
        key = None
        if api_key_env is not None:
            key = os.environ.get(api_key_env)
            if not key:
                raise IntentRecError(f"--api-key-env {api_key_env}: that environment variable is not set or empty")
        run_server(bundle_dir, host=host, port=port, backend=backend, workers=workers,
                   settings=ServiceSettings(api_key=key))
    except IntentRecError as err:
        _fail(err)


@app.command()
def explain(
    source: Annotated[Path, typer.Argument(help="A run directory (`intentrec train`) or a bundle (`intentrec export`).")],
    user: Annotated[str | None, typer.Option(help="A user id (of the run's data, or of --events for a bundle).")] = None,
    items: Annotated[str | None, typer.Option(help="Comma-separated item ids, oldest first.")] = None,
    events: Annotated[Path | None, typer.Option(help="Bundle + --user: the events file with that user's history.")] = None,
    column: Annotated[
        list[str] | None, typer.Option(help="Map a column of --events: canonical=yours, e.g. user_id=userId.")
    ] = None,
    at: Annotated[str | None, typer.Option(help="Bundle + --items: request time (epoch seconds or ISO 8601; now).")] = None,
    k: Annotated[int, typer.Option(min=1, help="How many items to explain.")] = 10,
    exclude_seen: Annotated[
        bool | None, typer.Option("--exclude-seen/--keep-seen", help="Drop history items (default: the model's).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Explain a recommendation: predicted intents, each head's attention weight, the short-term window, and which
    predicted intents the top items match."""
    from intentrec import analysis_workflows

    try:
        item_list = [s.strip() for s in items.split(",") if s.strip()] if items is not None else None
        expl = analysis_workflows.explain(source, user_id=user, items=item_list, events=events,
                                          columns=_column_map(column), at=at, k=k, exclude_seen=exclude_seen)
    except IntentRecError as err:
        _fail(err)
        return
    if json_out:
        sys.stdout.write(json.dumps(expl.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        console.print(expl.to_text(), markup=False, highlight=False, soft_wrap=True)


@app.command()
def analyze(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `intentrec train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (report.html, report.md, plots, tables).")],
    k: Annotated[int, typer.Option(min=2, help="K-means++ clusters (PAPER: 10).")] = 10,
    k_min: Annotated[int, typer.Option(min=2, help="Smallest K of the silhouette scan.")] = 2,
    k_max: Annotated[int, typer.Option(min=2, help="Largest K of the silhouette scan.")] = 15,
    n_init: Annotated[int, typer.Option(min=1, help="K-means++ restarts.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of K-means, the map and user sampling.")] = 0,
    map_: Annotated[str, typer.Option("--map", help="2-D map: tsne or pca.")] = "tsne",
    targets: Annotated[
        str, typer.Option(help="last (each user's last event), test or validation (each user's latest target).")
    ] = "last",
    max_users: Annotated[int | None, typer.Option(min=2, help="Analyse a seeded sample of at most this many users.")] = None,
    max_sessions: Annotated[int, typer.Option(min=0, help="Latest session starts per user for intent shifts.")] = 20,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Intent analytics: K-means++ clusters of the intent embeddings with a t-SNE map, primary intents and their
    shifts between sessions, alignment with the next interaction; report.html/report.md with plots, Parquet tables."""
    from intentrec import analysis_workflows

    try:
        summary = analysis_workflows.analyze(
            run_dir, out, k=k, k_min=k_min, k_max=k_max, n_init=n_init, seed=seed, map_method=map_, targets=targets,
            max_users=max_users, max_sessions=max_sessions, progress=progress, log=console.print,
        )
    except IntentRecError as err:
        _fail(err)
        return
    if summary.primary_shares:
        shares = ", ".join(f"{h} {v:.0%}" for h, v in sorted(summary.primary_shares.items(), key=lambda t: -t[1]))
        console.print(f"primary intents: {shares}")
    console.print("alignment with the next interaction (top-1): "
                  + ", ".join(f"{h} {v:.1%}" for h, v in summary.alignment.items()))
    console.print(f"tables: {summary.files['users_parquet']}; summary: {summary.files['analysis_json']}")


@app.command()
def layout(
    source: Annotated[Path, typer.Argument(help="A run directory, or a bundle (for --user/--items pages).")],
    user: Annotated[str | None, typer.Option(help="A user id (of the run's data, or of --events for a bundle).")] = None,
    items: Annotated[str | None, typer.Option(help="Comma-separated item ids, oldest first.")] = None,
    events: Annotated[Path | None, typer.Option(help="Bundle + --user: the events file with that user's history.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Map a column of --events: canonical=yours.")] = None,
    at: Annotated[str | None, typer.Option(help="Bundle + --items: request time (epoch seconds or ISO 8601; now).")] = None,
    rows: Annotated[int, typer.Option(min=1, help="Rows per page.")] = 8,
    row_size: Annotated[int, typer.Option(min=1, help="Items per row.")] = 10,
    order: Annotated[str, typer.Option(help="intent (by predicted probability) or fixed (training label shares).")] = "intent",
    row_score: Annotated[str, typer.Option(help="Intent order score: probability or lift (over the training share).")] = "probability",
    evaluate_: Annotated[
        bool, typer.Option("--evaluate", help="Offline evaluation over a split: intent order vs fixed order.")
    ] = False,
    split: Annotated[str, typer.Option(help="--evaluate: test or validation.")] = "test",
    max_targets: Annotated[int, typer.Option(min=1, help="--evaluate: at most this many targets (seeded sample).")] = 20_000,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="--evaluate: write the JSON here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Intent-driven home page: rows ordered by the member's predicted intents, filled with the best-ranked matching
    items, no item twice; --evaluate measures how far down the page the next engaged item sits (lower is better)."""
    from intentrec import analysis_workflows

    try:
        if evaluate_:
            ev = analysis_workflows.evaluate_layout(
                source, split=split, n_rows=rows, row_size=row_size, row_score=row_score, max_targets=max_targets,
                out=out, progress=progress and not json_out, log=(lambda _: None) if json_out else console.print,
            )
            if json_out:
                sys.stdout.write(json.dumps(ev.to_json(), indent=2, ensure_ascii=False) + "\n")
            else:
                _print_layout_evaluation(ev, split)
            return
        item_list = [s.strip() for s in items.split(",") if s.strip()] if items is not None else None
        src = analysis_workflows.load_source(source)
        page = analysis_workflows.layout(src, user_id=user, items=item_list, events=events,
                                         columns=_column_map(column), at=at, n_rows=rows, row_size=row_size,
                                         order=order, row_score=row_score)
    except IntentRecError as err:
        _fail(err)
        return
    if json_out:
        doc = page.to_json()
        for row in doc["rows"]:
            row["item_ids"] = [src.item_vocab.decode(int(i)) for i in row["items"]]
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        who = f"user {user}" if user is not None else "the given history"
        console.print(f"Home page for {who} ({order} order):", markup=False)
        console.print(page.render(src.item_name), markup=False, highlight=False, soft_wrap=True)


def _print_layout_evaluation(ev: Any, split: str) -> None:
    table = Table(title=f"Where the next engaged item sits ({split}, {ev.n_targets:,} targets, {ev.n_rows} rows x "
                        f"{ev.row_size} items; a miss counts as row {ev.n_rows + 1}; lower mean row = better)")
    for col in ("page", "mean row", "on page", "row if hit", "1/row", "rows 1-3"):
        table.add_column(col, justify="right" if col != "page" else "left")
    layouts = [("intent order", ev.intent), ("fixed order", ev.fixed)]
    if ev.ranked is not None:
        layouts.append(("plain ranking", ev.ranked))
    for name, m in layouts:
        hits = "–" if m.mean_row_hits is None else f"{m.mean_row_hits:.2f}"
        table.add_row(name, f"{m.mean_row:.3f}", f"{m.hit_rate:.1%}", hits, f"{m.mean_reciprocal_row:.3f}",
                      f"{m.top3_share:.1%}")
    console.print(table)
    console.print(f"intent order: rows by the member's predicted {ev.row_score}; fixed order: rows by training label "
                  "share, the same for everyone; plain ranking: the ranked items cut into rows")
    ci = "" if ev.ci is None else f", 95% CI [{ev.ci[0]:+.3f}, {ev.ci[1]:+.3f}]"
    p = "" if ev.p_value is None else f", paired t-test p = {ev.p_value:.2g}"
    console.print(f"intent - fixed mean row: {ev.mean_difference:+.3f}{ci}{p}")


@app.command()
def benchmark(
    suite: Annotated[Path, typer.Option("--suite", "-s", help="Suite YAML (benchmarks/smoke.yaml, paper.yaml, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (reused to resume).")],
    only: Annotated[
        list[str] | None, typer.Option(help="Glob over run keys dataset/model/seedK, e.g. 'movielens/*'.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override for every run, e.g. --set train.max_minutes=5.")
    ] = None,
    report_only: Annotated[bool, typer.Option(help="Only rebuild report.md and plots from results.json.")] = False,
    refit: Annotated[
        bool | None,
        typer.Option("--refit/--no-refit", help="Also refit every run on training + validation events (reported apart, "
                     "as a variant protocol), or refit none; default: as the suite file says (refit:)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show training progress bars.")] = True,
) -> None:
    """Run a benchmark suite (models x datasets x seeds): results.json, report.md with PAPER Tables 1-3, plots."""
    from intentrec.benchmark.report import write_report
    from intentrec.benchmark.runner import RESULTS_FILE, run_suite

    try:
        if report_only:
            results = out / RESULTS_FILE
            if not results.is_file():
                raise IntentRecError(f"{results} not found: run the suite first (without --report-only)")
            doc = json.loads(results.read_text(encoding="utf-8"))
        else:
            doc = run_suite(suite, out, only=only, overrides=set_ or [], refit=refit, progress=progress,
                            log=console.print)
        report = write_report(doc, out)
    except IntentRecError as err:
        _fail(err)
        return
    failed = [k for k, r in doc["runs"].items() if r.get("status") == "failed"]
    failed += [f"{k} (refit)" for k, r in doc["runs"].items() if (r.get("refit") or {}).get("status") == "failed"]
    console.print(f"report: {report}; results: {out / RESULTS_FILE}")
    if failed:
        err_console.print(f"[bold red]{len(failed)} run(s) failed:[/] {', '.join(failed)} (errors in the report)")
        raise typer.Exit(code=1)


@app.command()
def tune(
    config: Annotated[Path, typer.Option("--config", "-c", help="Experiment config the trials start from.")],
    space: Annotated[Path, typer.Option("--space", help="Search-space YAML (benchmarks/search_space.yaml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (study.db; reused to resume).")],
    trials: Annotated[int, typer.Option(min=1, help="Finished trials wanted in total.")] = 20,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. --set train.max_minutes=5.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the TPE sampler.")] = 0,
) -> None:
    """Search hyperparameters with Optuna on the validation split (test is never scored); best values -> best.json."""
    from intentrec.benchmark.tune import tune as run_tune

    try:
        doc = run_tune(config, space, out, trials=trials, overrides=set_ or [], seed=seed, log=console.print)
    except IntentRecError as err:
        _fail(err)
        return
    console.print(f"best {doc['metric']} {doc['value']:.4f} (trial {doc['trial']} of {doc['trials']}): "
                  f"{json.dumps(doc['overrides'])}\nwritten to {out / 'best.json'}")


@data_app.command("simulate")
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for events.parquet, items.parquet, README.md.")],
    preset: Annotated[str, typer.Option(help="tiny | small | medium | large (optionally small@seed=3).")] = "small",
) -> None:
    """Generate a Netflix-like streaming log with known session intents (intentrec.datasets.streaming_sim)."""
    from intentrec.datasets import streaming_sim

    try:
        cfg = streaming_sim.SimConfig.from_name(preset)
        t0 = time.perf_counter()
        with _ProgressCallback(f"simulating {cfg.label}") as advance:
            log = streaming_sim.simulate(cfg, progress=advance)
        folder = streaming_sim.write_simulation(log, out)
    except IntentRecError as err:
        _fail(err)
        return
    console.print(f"{log.events.height:,} events of {log.events['user_id'].n_unique():,} users on "
                  f"{log.items.height:,} items in {time.perf_counter() - t0:.1f}s -> {folder}\n"
                  f"train on it with data.source: {{adapter: streaming_sim, path: {folder}}} "
                  "(see configs/streaming_sim.yaml)")


class _ProgressCallback:
    """A rich progress bar over ``(done, total)`` callbacks."""

    def __init__(self, description: str) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=True, console=err_console)
        self._description = description
        self._task: Any = None

    def __enter__(self) -> Any:
        self._progress.start()

        def advance(done: int, total: int) -> None:
            if self._task is None:
                self._task = self._progress.add_task(self._description, total=total)
            self._progress.update(self._task, completed=done)

        return advance

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


@data_app.command("describe")
def describe(
    dataset: Annotated[
        str, typer.Argument(help="A config file, or an adapter name: movielens, s3rec, trivago (with --path).")
    ],
    path: Annotated[str | None, typer.Option(help="Adapter input (file or folder); movielens: default bundled.")] = None,
    name: Annotated[str | None, typer.Option(help="s3rec dataset name, e.g. Beauty.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Statistics: users, items, interactions, sessions, sequence lengths, intent label distributions."""
    from intentrec.config import DataConfig, SourceConfig, load_config
    from intentrec.data import describe as describe_data

    try:
        if dataset == "movielens" and path is None:
            cfg = load_config(_packaged_config(QUICKSTART_CONFIG)).data
        elif dataset in {"movielens", "s3rec", "trivago"}:
            protocol = "leave-one-out" if dataset == "s3rec" else "temporal"  # s3rec files have no timestamps
            cfg = DataConfig(
                source=SourceConfig(adapter=dataset, path=path, name=name),  # type: ignore[arg-type]
                split={"protocol": protocol},  # type: ignore[arg-type]
            )
            if dataset != "movielens" and path is None:
                raise IntentRecError(f"`intentrec data describe {dataset}` needs --path (the dataset file or folder)")
        else:
            cfg = load_config(Path(dataset)).data
        stats = describe_data(cfg)
    except IntentRecError as err:
        _fail(err)
        return
    if json_out:
        sys.stdout.write(json.dumps(stats, indent=2, default=str) + "\n")
        return
    _print_stats(stats)


def _print_stats(stats: dict[str, Any], prefix: str = "") -> None:
    table = Table(title="Dataset statistics", show_header=False)
    table.add_column("statistic")
    table.add_column("value")
    nested: list[tuple[str, Any]] = []
    for key, value in stats.items():
        if isinstance(value, dict):
            nested.append((key, value))
        else:
            if isinstance(value, bool):
                text = "yes" if value else "no"
            else:
                text = f"{value:,}" if isinstance(value, int) else str(value)
            table.add_row(prefix + key, text)
    console.print(table)
    for key, value in nested:
        console.print(f"[bold]{key}[/]")
        console.print_json(json.dumps(value, default=str))


def main() -> None:
    """Console-script entry point (also handles ``torchrun -m intentrec``)."""
    app()
