"""Composition root: the only module that wires data -> features -> model -> train/evaluate.

Each function is a one-screen spine called by the CLI (and usable as a library API).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from intentrec.config import HEURISTICS, ExperimentConfig, apply_overrides, config_from_dict, load_config
from intentrec.data import prepare
from intentrec.data.pipeline import prepare_with_report
from intentrec.data.prepared import Prepared
from intentrec.data.split import refit_split, user_roles
from intentrec.errors import CheckpointError, ConfigError, IntentRecError
from intentrec.evaluate.evaluator import (
    TIE_POLICY,
    MetricReport,
    evaluate_model,
    evaluate_popularity,
    intent_label_counts,
)
from intentrec.evaluate.heuristics import evaluate_heuristic, fit_heuristic
from intentrec.features.collate import CollateSettings, collate
from intentrec.features.dataset import EvalTargets, TrainingWindows, bucketed_batches, example_from_events
from intentrec.features.live import request_time_or_now
from intentrec.model import build_model, score_positions, set_item_attribute_codes
from intentrec.model.losses import IntentRecLoss, SampledSoftmax, sampling_log_q
from intentrec.structs import DataSpec, EncodedSequences, SequenceBatch
from intentrec.train.checkpoint import atomic_write_text, load_model_weights
from intentrec.train.curves import matplotlib_available, plot_history
from intentrec.train.distributed import DistributedContext, barrier, init_distributed, rank_batches, shutdown
from intentrec.train.loop import BEST_WEIGHTS, FitResult, fit, resolve_device, seed_everything
from intentrec.vocab import vocabs_to_json

__all__ = [
    "Recommendation",
    "RunArtifacts",
    "dataset_summary",
    "evaluate_run",
    "evaluate_split",
    "export",
    "load_run",
    "predict",
    "recommend",
    "refit",
    "train",
]

CONFIG_FILE = "config.json"
SPEC_FILE = "data_spec.json"
VOCAB_FILE = "vocabs.json"
METRICS_FILE = "metrics.json"
REFIT_FILE = "refit.json"


# ----------------------------------------------------------------------------------------------------------
# helpers shared by the workflows
# ----------------------------------------------------------------------------------------------------------


def _label_widths(data: EncodedSequences) -> dict[str, int]:
    return {name: int(arr.shape[1]) for name, arr in data.categorical.items() if arr.ndim == 2}


def _collate_fn(cfg: ExperimentConfig, data: EncodedSequences) -> Callable[[list[Any]], SequenceBatch]:
    settings = CollateSettings.build(cfg.model, data.spec, _label_widths(data))
    return functools.partial(collate, settings=settings)


def _exclude_seen(cfg: ExperimentConfig, spec: DataSpec) -> bool:
    return spec.exclude_seen_default if cfg.eval.exclude_seen is None else cfg.eval.exclude_seen


def _eval_loader(cfg: ExperimentConfig, data: EncodedSequences, targets: np.ndarray) -> DataLoader:
    return DataLoader(
        EvalTargets(data, targets, cfg.model.max_len),
        batch_size=cfg.eval.batch_size,
        shuffle=False,
        collate_fn=_collate_fn(cfg, data),
    )


def _evaluate(
    cfg: ExperimentConfig, model: nn.Module, data: EncodedSequences, targets: np.ndarray,
    label_counts: dict[str, np.ndarray],
) -> MetricReport:
    """Evaluate in order of input length (little padding), then restore the targets' order."""
    order = np.argsort(np.minimum(targets[:, 1], cfg.model.max_len), kind="stable")  # (T,)
    report = evaluate_model(
        model,
        _eval_loader(cfg, data, targets[order]),
        data,
        targets[order],
        exclude_seen=_exclude_seen(cfg, data.spec),
        ks=cfg.eval.ks,
        intent_topk=cfg.eval.intent_topk,
        label_counts=label_counts,
    )
    inverse = np.argsort(order)  # (T,)
    report.per_target = {k: v[inverse] for k, v in report.per_target.items()}
    return report


def _protocol_text(cfg: ExperimentConfig, data: EncodedSequences, split_name: str) -> dict[str, Any]:
    return {
        "split": split_name,
        "protocol": data.split.protocol,
        "ranking": f"full catalogue ({data.spec.n_items - 2} items), {TIE_POLICY}",
        "exclude_seen": _exclude_seen(cfg, data.spec),
        "description": data.split.description,
        "excluded_targets": data.split.excluded,
    }


def _metrics_document(
    cfg: ExperimentConfig, data: EncodedSequences, split_name: str, report: MetricReport, popularity: MetricReport
) -> dict[str, Any]:
    doc = _protocol_text(cfg, data, split_name)
    doc.update(
        {
            "dataset": data.spec.dataset,
            "model": cfg.model.label,
            "n_targets": report.n_targets,
            "item": report.item,
            "intents": report.intents,
            "baselines": {"popularity": {"item": popularity.item, "intents": popularity.intents}},
        }
    )
    cold = data.split.cold_targets.get(split_name, 0)
    if cold and report.n_targets:
        # a cold target's item has no trained row and cannot be ranked: as a miss it adds 0 to every item metric
        # (each is a mean over targets), which is how published leave-one-out numbers count it
        share = report.n_targets / (report.n_targets + cold)
        doc["item_cold_as_miss"] = {
            "n_targets": report.n_targets + cold,
            "note": f"the {cold:,} cold-item targets counted as misses (published leave-one-out numbers do this)",
            **{k: v * share for k, v in report.item.items()},
        }
    return doc


def _save_per_target(path: Path, report: MetricReport, data: EncodedSequences, targets: np.ndarray) -> None:
    """Per-target metric values with who and where (user id, position) for paired significance tests."""
    tmp = path.with_name(path.name + ".tmp.npz")
    users = np.asarray([data.user_ids[u] for u in targets[:, 0]], dtype=np.str_)
    np.savez(tmp, allow_pickle=False, user_id=users, position=targets[:, 1], **report.per_target)
    tmp.replace(path)


def _spec_to_json(spec: DataSpec, label_widths: dict[str, int]) -> dict[str, Any]:
    return {**spec.to_json(), "label_widths": label_widths}


def _spec_from_json(doc: dict[str, Any]) -> tuple[DataSpec, dict[str, int]]:
    return DataSpec.from_json(doc), {k: int(v) for k, v in doc.get("label_widths", {}).items()}


def _read_spec_file(path: Path) -> tuple[DataSpec, dict[str, int]]:
    """A run's ``data_spec.json``; anything unreadable or incomplete is a :class:`CheckpointError` naming the file."""
    try:
        return _spec_from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        detail = f"missing field {err}" if isinstance(err, KeyError) else str(err)
        raise CheckpointError(f"{path} is damaged ({detail}); it is written by `intentrec train`: retrain the run, "
                              "or restore the file from a copy") from None


# ----------------------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------------------


@dataclass
class TrainOutcome:
    """What :func:`train` produced."""

    run_dir: Path
    fit: FitResult
    test: dict[str, Any]
    """The ``metrics.json`` document (test split, with the popularity baseline)."""
    validation: dict[str, Any]
    """Best-checkpoint metrics on validation."""
    prepare_seconds: float
    rank: int = 0
    """The process's rank under ``torchrun`` (0 for a single process). Files, ``test`` and ``validation`` come from
    rank 0 only: on the other ranks the two documents are empty."""


def train(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    evaluate_test: bool = True,
) -> TrainOutcome:
    """Prepare data, train with early stopping on validation, then evaluate the best checkpoint on test.

    With ``evaluate_test=False`` (hyperparameter search) the test split is never scored: ``metrics.json`` and
    ``per_target_test.npz`` are not written and ``TrainOutcome.test`` is empty.

    Under ``torchrun`` (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` set) every process calls this: rank 0 prepares the
    data first (the others then read it from the cache), each rank trains a DistributedDataParallel replica on its
    slice of every global batch of ``train.batch_size`` windows (gloo on CPU, NCCL on CUDA), and rank 0 alone logs,
    validates, writes files and scores the test split (module docstring of :mod:`intentrec.train.distributed`).

    Writes to ``run_dir``: ``config.json``, ``data_spec.json``, ``vocabs.json``, ``model.safetensors`` (best
    weights), ``history.jsonl``, ``metrics.json`` (test + popularity floor), ``metrics_validation.json``,
    ``per_target_test.npz`` and ``last/`` (resume state, readable by a run with any number of processes).
    """
    ctx = init_distributed(resolve_device(cfg.train.device), cfg.train.dist_timeout_minutes)
    try:
        return _train(cfg, Path(run_dir), ctx, resume=resume, progress=progress and ctx.is_main,
                      log=log if ctx.is_main else _quiet, evaluate_test=evaluate_test)
    finally:
        shutdown(ctx)


@dataclass(frozen=True)
class _Refit:
    """A refit's source run and the number of epochs chosen on its validation targets."""

    source: Path
    epochs: int
    source_best_validation: float | None
    monitor: str
    overrides: tuple[str, ...] = ()

    def document(self) -> dict[str, Any]:
        return {
            "source_run": str(self.source),
            "epochs": self.epochs,
            "chosen_on": f"validation {self.monitor} of the source run (its best epoch)",
            "source_best_validation": self.source_best_validation,
            "overrides": list(self.overrides),
            "training": "training + validation events; the validation targets are training targets here, so the "
                        "run has no validation metrics",
            "unchanged": "item and label vocabularies, numeric statistics and the test targets are those of the "
                         "source run (paired comparisons stay valid)",
        }


def refit(
    source_run: str | Path,
    out: str | Path,
    *,
    epochs: int | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainOutcome:
    """Retrain a finished run on its training *and* validation events for the epochs validation chose; score test.

    Early stopping needs held-out targets, so :func:`train` never learns from the validation period. A refit
    trains a fresh model (same config and seed) on the training events plus the validation period
    (:func:`intentrec.data.split.refit_split`: leave-one-out adds each user's second-last event, temporal every
    event before the test cut-off, the user protocol the validation users), stops after the source run's best
    validation epoch (or ``epochs``), with the learning-rate schedule of the full ``train.epochs``, and scores the
    same test targets. This is the model one would deploy, and the comparison RecBole's leave-one-out cannot make.
    It is **not** the published leave-one-out protocol (which never trains on the validation item): report it as a
    variant. Untrained baselines refit their counts the same way.

    Writes to ``out`` the files of :func:`train` without ``metrics_validation.json``, plus ``refit.json``;
    ``metrics.json`` carries the same document under ``refit``.

    Raises:
        CheckpointError: ``source_run`` is not a finished run, or is itself a refit.
        ConfigError: ``out`` is ``source_run``, ``epochs`` is outside ``[1, train.epochs]``, or an override is
            invalid.
    """
    source = Path(source_run)
    if Path(out).resolve() == source.resolve():
        raise ConfigError(f"the refit would overwrite its source run {source}: give another --out folder")
    plan, cfg = _refit_plan(source, overrides or [], epochs)
    ctx = init_distributed(resolve_device(cfg.train.device), cfg.train.dist_timeout_minutes)
    try:
        return _train(cfg, Path(out), ctx, resume=resume, progress=progress and ctx.is_main,
                      log=log if ctx.is_main else _quiet, evaluate_test=True, refit=plan)
    finally:
        shutdown(ctx)


def _refit_plan(source: Path, overrides: list[str], epochs: int | None) -> tuple[_Refit, ExperimentConfig]:
    """Read a source run's config and chosen epoch for :func:`refit`."""
    if (source / REFIT_FILE).is_file():
        raise CheckpointError(f"{source} is already a refit (it has {REFIT_FILE}): refit its source run "
                              f"({json.loads((source / REFIT_FILE).read_text(encoding='utf-8'))['source_run']})")
    val_path = source / "metrics_validation.json"
    for path in (source / CONFIG_FILE, val_path):
        if not path.is_file():
            raise CheckpointError(f"{source} is not a finished training run: {path.name} is missing (train one "
                                  f"with `intentrec train --config FILE --out {source}`, then refit it)")
    try:
        raw = json.loads((source / CONFIG_FILE).read_text(encoding="utf-8"))
        training = json.loads(val_path.read_text(encoding="utf-8")).get("training", {})
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source} has an unreadable {CONFIG_FILE} or {val_path.name}: {err}") from None
    cfg = config_from_dict(apply_overrides(raw, overrides), str(source / CONFIG_FILE))
    chosen = int(training.get("best_epoch", 0)) if epochs is None else int(epochs)
    if not cfg.model.is_heuristic and not 1 <= chosen <= cfg.train.epochs:
        what = f"--epochs {chosen}" if epochs is not None else f"the source run's best epoch ({chosen})"
        raise ConfigError(f"{what} is outside [1, train.epochs = {cfg.train.epochs}]: a refit runs that many epochs "
                          "of the source run's schedule")
    best = training.get("best_validation")
    plan = _Refit(source, chosen, float(best) if isinstance(best, int | float) else None, cfg.train.monitor,
                  tuple(overrides))
    return plan, cfg


def _refit_data(cfg: ExperimentConfig, prepared: Prepared) -> EncodedSequences:
    """The prepared data with the split of a refit (training extended over the validation period)."""
    data = prepared.data
    cutoffs = prepared.stats.get("cutoffs") or {}
    roles = user_roles(data.n_users, cfg.data.split) if data.split.protocol == "user" else None
    split = refit_split(data.split, data.offsets, data.timestamps, t_test=cutoffs.get("t_test"), roles=roles)
    return replace(data, split=split)


def _quiet(_message: str) -> None:
    """The log of ranks other than 0."""


def _loss_fn(cfg: ExperimentConfig, data: EncodedSequences, log: Callable[[str], None]) -> IntentRecLoss:
    """The training loss: full item softmax, or sampled with log-Q correction when ``train.sampled_softmax > 0``
    (negatives from the training popularity; seeded, so every rank of a distributed run draws the same ones)."""
    n_neg = cfg.train.sampled_softmax
    if n_neg <= 0:
        return IntentRecLoss(cfg.train.lambda_intent)
    from intentrec.data.live import training_item_counts

    counts = torch.from_numpy(training_item_counts(data))
    log_q = sampling_log_q(counts, cfg.train.sampling_alpha)
    generator = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + 17)
    per = "per scored position" if cfg.train.sampling_per_row else "per step"
    log(f"item loss: sampled softmax, {n_neg:,} negatives {per} (q ∝ (count + 1)^{cfg.train.sampling_alpha:g}, "
        f"log-Q corrected) over {data.spec.n_items - 2:,} items; evaluation still ranks the full catalogue")
    sampler = SampledSoftmax(log_q, n_neg, generator=generator, per_row=cfg.train.sampling_per_row)
    return IntentRecLoss(cfg.train.lambda_intent, sampler)


def _train(
    cfg: ExperimentConfig, run: Path, ctx: DistributedContext, *, resume: bool, progress: bool,
    log: Callable[[str], None], evaluate_test: bool, refit: _Refit | None = None,
) -> TrainOutcome:
    """The body of :func:`train` (and of :func:`refit`, given its plan) on one rank."""
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    t0 = time.perf_counter()
    if not ctx.is_main:
        barrier(ctx)  # rank 0 prepares and caches the data first; the others then load the cache entry
    if refit is None:
        data = prepare(cfg.data, progress=progress)
    else:
        data = _refit_data(cfg, prepare_with_report(cfg.data, progress=progress))
    if ctx.is_main:
        barrier(ctx)
    prepare_seconds = time.perf_counter() - t0
    attribute_codes: dict[str, np.ndarray] = {}
    coded = tuple(dict.fromkeys(cfg.model.output_attributes + cfg.model.repeat_boost_attributes))
    if coded and not cfg.model.is_heuristic:  # checked before the run directory appears
        from intentrec.data.live import item_attribute_codes

        attribute_codes = item_attribute_codes(data, coded)
    log(f"data: {data.spec.dataset}: {data.n_users:,} users, {data.spec.n_items - 2:,} items, "
        f"{data.item_idx.shape[0]:,} events; {data.split.description} ({prepare_seconds:.1f}s)")

    if ctx.is_main:  # the run directory appears only once the data is known to fit the config
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=2))
        atomic_write_text(run / SPEC_FILE, json.dumps(_spec_to_json(data.spec, _label_widths(data)), indent=2))
        atomic_write_text(run / VOCAB_FILE, vocabs_to_json(data.item_vocab, data.label_vocabs))
        if refit is not None:
            atomic_write_text(run / REFIT_FILE, json.dumps(refit.document(), indent=2))
            (run / "metrics_validation.json").unlink(missing_ok=True)

    if cfg.model.is_heuristic:
        if not ctx.is_main:  # nothing to train: rank 0 fits and scores the baseline alone
            return TrainOutcome(run, FitResult(0, float("nan"), 0, False, 0.0, stop_reason="fitted"), {}, {},
                                prepare_seconds, ctx.rank)
        return _fit_heuristic_run(cfg, data, run, prepare_seconds, evaluate_test, log, refit)

    seed_everything(cfg.train.seed)
    device = ctx.device
    model = build_model(cfg.model, data.spec)
    set_item_attribute_codes(model, attribute_codes)
    model = model.to(device)
    windows = TrainingWindows(data, cfg.model.max_len, cfg.train.duration_weight)
    if len(windows) == 0:
        raise IntentRecError("no training windows: every user has fewer than 2 training events; check the split")
    collate_fn = _collate_fn(cfg, data)

    def make_batches(epoch: int) -> Iterator[SequenceBatch]:
        rng = np.random.default_rng([cfg.train.seed, epoch])
        batches = bucketed_batches(windows.lengths, cfg.train.batch_size, rng)  # global batches: same on every rank
        # this rank's slice of each global batch (all of it for one process)
        yield from rank_batches(windows, batches, collate_fn, ctx, num_workers=cfg.train.num_workers)

    label_counts = intent_label_counts(data)

    def validate(m: nn.Module) -> dict[str, float]:
        return _evaluate(cfg, m, data, data.split.val_targets, label_counts).item

    if refit is not None:
        log(f"refit of {refit.source}: {refit.epochs} of the {cfg.train.epochs} epochs of its schedule, on training + "
            "validation events, no validation")

    steps = (len(windows) + cfg.train.batch_size - 1) // cfg.train.batch_size
    log(f"model {cfg.model.label}: {sum(p.numel() for p in model.parameters()):,} parameters on {device}; "
        f"{windows.n_targets:,} training targets in {len(windows):,} windows, {steps} steps/epoch")
    if ctx.enabled:
        log(f"distributed: {ctx.world_size} processes ({ctx.backend}); global batch {cfg.train.batch_size} windows, "
            f"about {-(-cfg.train.batch_size // ctx.world_size)} per process")
    result = fit(model, make_batches, steps, _loss_fn(cfg, data, log), validate if refit is None else None,
                 cfg.train, run, stop_after=None if refit is None else refit.epochs, resume=resume,
                 progress=progress, log=log, dist=ctx)
    if not ctx.is_main:
        return TrainOutcome(run, result, {}, {}, prepare_seconds, ctx.rank)
    if refit is not None and result.epochs_run < refit.epochs:
        log(f"warning: the refit stopped after {result.epochs_run} of its {refit.epochs} epochs "
            f"({result.stop_reason}); continue it with --resume and a larger --set train.max_minutes=...")

    if matplotlib_available() and result.history:
        plot_history(result.history, run / "training_curves.png", f"{cfg.name}: {cfg.model.label}")
    load_model_weights(model, run / BEST_WEIGHTS)
    return _write_metrics(cfg, data, run, result, lambda t: _evaluate(cfg, model, data, t, label_counts),
                          evaluate_test, prepare_seconds, refit=refit)


def _write_metrics(
    cfg: ExperimentConfig, data: EncodedSequences, run: Path, result: FitResult,
    evaluate: Callable[[np.ndarray], MetricReport], evaluate_test: bool, prepare_seconds: float,
    val_report: MetricReport | None = None, refit: _Refit | None = None,
) -> TrainOutcome:
    """Score validation (and test) with ``evaluate`` beside the popularity floor; write the metric files.

    A refit has no validation targets: only the test document is written, with the refit described under ``refit``.
    """
    training = {
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
        "train_seconds": round(result.train_seconds, 2), "monitor": cfg.train.monitor,
        "best_validation": None if refit is not None else result.best_metric, "stop_reason": result.stop_reason,
    }

    def document(split: str, targets: np.ndarray, report: MetricReport) -> dict[str, Any]:
        pop = evaluate_popularity(data, targets, exclude_seen=_exclude_seen(cfg, data.spec), ks=cfg.eval.ks,
                                  intent_topk=cfg.eval.intent_topk)
        doc = _metrics_document(cfg, data, split, report, pop)
        doc["training"] = training
        if refit is not None:
            doc["refit"] = refit.document()
        return doc

    if refit is not None:
        test_report = evaluate(data.split.test_targets)
        test_doc = document("test", data.split.test_targets, test_report)
        atomic_write_text(run / METRICS_FILE, json.dumps(test_doc, indent=2))
        _save_per_target(run / "per_target_test.npz", test_report, data, data.split.test_targets)
        return TrainOutcome(run, result, test_doc, {}, prepare_seconds)
    val_doc = document("validation", data.split.val_targets, val_report or evaluate(data.split.val_targets))
    atomic_write_text(run / "metrics_validation.json", json.dumps(val_doc, indent=2))
    if not evaluate_test:
        return TrainOutcome(run, result, {}, val_doc, prepare_seconds)
    test_report = evaluate(data.split.test_targets)
    test_doc = document("test", data.split.test_targets, test_report)
    atomic_write_text(run / METRICS_FILE, json.dumps(test_doc, indent=2))
    _save_per_target(run / "per_target_test.npz", test_report, data, data.split.test_targets)
    return TrainOutcome(run, result, test_doc, val_doc, prepare_seconds)


def _fit_heuristic_run(
    cfg: ExperimentConfig, data: EncodedSequences, run: Path, prepare_seconds: float, evaluate_test: bool,
    log: Callable[[str], None], refit: _Refit | None = None,
) -> TrainOutcome:
    """The untrained baselines: fit on training events, then write the same files as a trained run (no weights)."""
    t0 = time.perf_counter()
    scorer = fit_heuristic(cfg.model, data)
    fit_seconds = time.perf_counter() - t0
    log(f"model {cfg.model.label}: fitted on training events in {fit_seconds:.1f}s (no gradient training)")
    label_counts = intent_label_counts(data)

    def evaluate(targets: np.ndarray) -> MetricReport:
        return evaluate_heuristic(scorer, data, targets, exclude_seen=_exclude_seen(cfg, data.spec), ks=cfg.eval.ks,
                                  intent_topk=cfg.eval.intent_topk, label_counts=label_counts)

    val_report = evaluate(data.split.val_targets) if refit is None else None
    best = val_report.item.get(cfg.train.monitor, float("nan")) if val_report is not None else float("nan")
    result = FitResult(best_epoch=0, best_metric=best, epochs_run=0, stopped_early=False, train_seconds=fit_seconds,
                       history=[], stop_reason="fitted")
    return _write_metrics(cfg, data, run, result, evaluate, evaluate_test, prepare_seconds, val_report, refit)


# ----------------------------------------------------------------------------------------------------------
# load / evaluate / recommend
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RunArtifacts:
    """A trained run loaded back: config, data, model."""

    cfg: ExperimentConfig
    data: EncodedSequences
    model: nn.Module
    stats: dict[str, Any] = field(default_factory=dict)
    """Preparation statistics (numeric min/max, cut-offs) of ``data``."""
    run_dir: Path | None = None
    """The run directory it was loaded from."""


def load_run(run_dir: str | Path, *, progress: bool = False) -> RunArtifacts:
    """Load a run directory written by :func:`train` (re-preparing its data from the cache).

    Raises:
        CheckpointError: the directory is not a finished run, or its data no longer matches its model.
    """
    run = Path(run_dir)
    cfg_path = run / CONFIG_FILE
    if cfg_path.is_file() and not (run / BEST_WEIGHTS).exists():
        try:
            arch = json.loads(cfg_path.read_text(encoding="utf-8")).get("model", {}).get("architecture", "")
        except json.JSONDecodeError:
            arch = ""
        if arch in HEURISTICS:
            raise CheckpointError(f"{run} is a {arch} baseline run: it has no model to load (its metrics are in "
                                  f"{run / METRICS_FILE}); train a model for recommendations")
    for name in (CONFIG_FILE, SPEC_FILE, BEST_WEIGHTS):
        if not (run / name).is_file():
            raise CheckpointError(f"{run} is not a finished training run: {name} is missing "
                                  f"(train one with `intentrec train --config FILE --out {run}`)")
    try:
        cfg = config_from_dict(json.loads((run / CONFIG_FILE).read_text(encoding="utf-8")), str(run / CONFIG_FILE))
    except (json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{run / CONFIG_FILE} is unreadable: {err}") from None
    saved_spec, _ = _read_spec_file(run / SPEC_FILE)
    prepared = prepare_with_report(cfg.data, progress=progress)
    data = prepared.data if not (run / REFIT_FILE).is_file() else _refit_data(cfg, prepared)
    if data.spec != saved_spec:
        raise CheckpointError(
            f"the data prepared from {run / CONFIG_FILE} no longer matches the trained model "
            "(the input files changed since training); retrain the model"
        )
    model = build_model(cfg.model, data.spec)
    load_model_weights(model, run / BEST_WEIGHTS)
    model.eval()
    return RunArtifacts(cfg, data, model, prepared.stats, run)


def evaluate_split(art: RunArtifacts, split: str = "test") -> MetricReport:
    """Evaluate a loaded run on ``split`` (``test`` or ``validation``); per-target values in target order."""
    if split not in {"test", "validation"}:
        raise ConfigError(f"unknown split {split!r}: use 'test' or 'validation'")
    if split == "validation" and art.run_dir is not None and (art.run_dir / REFIT_FILE).is_file():
        raise ConfigError(f"{art.run_dir} is a refit: it was trained on its validation targets, so it has no "
                          "validation score (evaluate its source run on validation instead)")
    targets = art.data.split.test_targets if split == "test" else art.data.split.val_targets
    return _evaluate(art.cfg, art.model, art.data, targets, intent_label_counts(art.data))


def evaluate_run(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """Re-evaluate a finished run on ``split`` (``test`` or ``validation``) and return the metrics document."""
    art = load_run(run_dir)
    report = evaluate_split(art, split)
    targets = art.data.split.test_targets if split == "test" else art.data.split.val_targets
    pop = evaluate_popularity(art.data, targets, exclude_seen=_exclude_seen(art.cfg, art.data.spec),
                              ks=art.cfg.eval.ks, intent_topk=art.cfg.eval.intent_topk)
    return _metrics_document(art.cfg, art.data, split, report, pop)


@dataclass
class Recommendation:
    """Top-k items and predicted intents for one history."""

    user_id: str | None
    history: list[str]
    items: list[tuple[str, float]]
    """(item id, score) best first."""
    item_names: list[str]
    """Display names of ``items`` (id and title when the data has titles)."""
    intents: dict[str, list[tuple[str, float]]]
    """intent -> top labels with probabilities."""
    intent_attention: dict[str, float]
    """Attention weight of each intent head (PAPER Eq. 2), empty for models without fusion."""
    ignored_items: list[str]
    """Requested history items unknown to the model."""


def _find_user(data: EncodedSequences, user_id: str) -> int:
    try:
        return data.user_ids.index(str(user_id))
    except ValueError:
        examples = ", ".join(data.user_ids[:5])
        raise ConfigError(f"unknown user {user_id!r}; known users look like: {examples}") from None


def _items_example(
    art: RunArtifacts, items: list[str], request_time: float | None = None
) -> tuple[Any, np.ndarray, list[str]]:
    """An ad-hoc history of item ids encoded as the serving path encodes raw events (item attributes from the item
    tables, time-since-release at the event time), placed one minute apart ending at the data's last timestamp."""
    from intentrec.data.live import live_features
    from intentrec.features.live import encode_live_events, item_history

    data = art.data
    live = live_features(art.cfg.data, data, art.stats.get("numeric_min_max", {}))
    end = float(data.timestamps.max())
    step = 60.0 if data.spec.timed else 1.0
    events = item_history(items, end, step)
    enc = encode_live_events(events, live, data.spec, data.item_vocab, data.label_vocabs, art.cfg.model.max_len,
                             request_time)
    if enc.example is None:
        raise ConfigError(f"none of the items {items} is known to the model (e.g. {data.item_vocab.ids[:5]})")
    return enc.example, enc.item_idx, list(enc.ignored_items)


@torch.no_grad()
def recommend(
    run_dir: str | Path, *, user_id: str | None = None, items: list[str] | None = None, k: int = 10,
    exclude_seen: bool | None = None, art: RunArtifacts | None = None, request_time: float | None = None,
) -> Recommendation:
    """Top-k items and intents for a known user's full history, or for an ad-hoc list of item ids.

    With ``items``, the events are encoded as the serving path encodes raw events (item attributes from the item
    tables, time-since-release at the event time), one minute apart ending at the data's last timestamp (the HTTP
    service takes real timestamps). ``request_time`` (seconds since the epoch; None = now) is when the
    recommendations are asked for, read by models trained with ``model.request_gap``.
    """
    art = art or load_run(run_dir)
    if (user_id is None) == (items is None):
        raise ConfigError("give exactly one of --user or --items")
    ignored: list[str] = []
    if user_id is not None:
        data, u = art.data, _find_user(art.data, user_id)
        p = int(data.offsets[u + 1] - data.offsets[u])  # predict the event after the whole history
        data, u = _with_appended_slot(data, u, request_time), 0
        example = example_from_events(data, u, max(0, p - art.cfg.model.max_len), p + 1, "last", "none")
        history_idx = data.item_idx[data.user_slice(u)][:p]
    else:
        example, history_idx, ignored = _items_example(art, list(items or []), request_time)
    batch = _collate_fn(art.cfg, art.data)([example])
    out = art.model(batch)
    first = torch.zeros(1, dtype=torch.long, device=batch.item_idx.device)  # (1,) the only row
    scores = score_positions(art.model, out, batch, first, -1).float()[0]  # (I,)
    scores[:2] = -torch.inf
    if _exclude_seen(art.cfg, art.data.spec) if exclude_seen is None else exclude_seen:
        scores[torch.from_numpy(np.array(history_idx))] = -torch.inf  # copy: the data may be memory-mapped
    top = torch.topk(scores, min(k, int(torch.isfinite(scores).sum())))
    vocab = art.data.item_vocab
    intents: dict[str, list[tuple[str, float]]] = {}
    for name, logits in out.intent_logits.items():
        probs = torch.softmax(logits[0, -1].float(), dim=-1)
        best = torch.topk(probs, min(3, probs.shape[0]))
        labels = art.data.label_vocabs[name]
        intents[name] = [(labels.decode(int(i)), float(v)) for v, i in zip(best.values, best.indices, strict=True)]
    attention: dict[str, float] = {}
    if out.intent_attention is not None:
        names = list(out.intent_logits)
        attention = {n: float(w) for n, w in zip(names, out.intent_attention[0, -1].tolist(), strict=True)}
    return Recommendation(
        user_id=user_id,
        history=[art.data.item_name(int(i)) if i >= 2 else "<unknown>" for i in history_idx[-5:]],
        items=[(vocab.decode(int(i)), float(s)) for s, i in zip(top.values, top.indices, strict=True)],
        item_names=[art.data.item_name(int(i)) for i in top.indices],
        intents=intents,
        intent_attention=attention,
        ignored_items=ignored,
    )


def _with_appended_slot(data: EncodedSequences, u: int, request_time: float | None = None) -> EncodedSequences:
    """A view of user ``u`` with one empty event appended, so the whole history is the input. The slot is the
    request: at ``request_time`` (None = now; untimed data: the next position), as the serving path encodes it."""
    s = data.user_slice(u)
    n = s.stop - s.start

    def cat(arr: np.ndarray) -> np.ndarray:
        return np.concatenate([arr[s], np.zeros((1, *arr.shape[1:]), dtype=arr.dtype)])

    ts = data.timestamps[s]
    request_time = request_time_or_now(ts, data.spec.timed, request_time)
    return EncodedSequences(
        user_ids=(data.user_ids[u],),
        offsets=np.array([0, n + 1], dtype=np.int64),
        item_idx=cat(data.item_idx),
        timestamps=np.concatenate([ts, np.array([request_time], dtype=ts.dtype)]),
        duration=cat(data.duration),
        session=cat(data.session),
        categorical={k: cat(v) for k, v in data.categorical.items()},
        numeric=cat(data.numeric),
        split=data.split,
        spec=data.spec,
        item_vocab=data.item_vocab,
        label_vocabs=data.label_vocabs,
        duration_median=data.duration_median,
    )


# ----------------------------------------------------------------------------------------------------------
# export (the bundle) and batch prediction
# ----------------------------------------------------------------------------------------------------------


def export(run_dir: str | Path, out: str | Path, *, onnx: bool = False, progress: bool = False) -> Path:
    """Write the serving bundle of a finished run (``intentrec export``).

    Args:
        run_dir: a training run directory.
        out: the bundle directory (replaced when it is an existing bundle).
        onnx: also write ``model.onnx`` (the scorer as an ONNX graph; needs the ``onnx`` package).
        progress: print data-preparation timings.

    Returns:
        The bundle directory.

    Raises:
        CheckpointError: the run is not finished, is a heuristic baseline, or ``out`` is not replaceable.
    """
    from intentrec.data.live import live_features
    from intentrec.serve.bundle import write_bundle

    art = load_run(run_dir, progress=progress)
    live = live_features(art.cfg.data, art.data, art.stats.get("numeric_min_max", {}))
    widths = _label_widths(art.data)
    extra_files: dict[str, bytes] = {}
    if onnx:
        from intentrec.serve.onnx import ONNX_FILE, onnx_bytes

        extra_files[ONNX_FILE] = onnx_bytes(art.model, art.cfg, art.data.spec, widths)
    return write_bundle(
        out, model=art.model, cfg=art.cfg, spec=art.data.spec, label_widths=widths,
        item_vocab=art.data.item_vocab, label_vocabs=art.data.label_vocabs, live=live,
        item_names=art.data.item_names, fingerprint=art.data.fingerprint, source=str(Path(run_dir).resolve()),
        extra_files=extra_files,
    )


@dataclass
class PredictSummary:
    """What :func:`predict` wrote."""

    out: Path
    """The Parquet file."""
    histories: int
    """Rows written (users or sessions)."""
    events: int
    """Input events read."""
    fallbacks: int
    """Histories without a known item (popularity results)."""
    ignored_items: int
    """Unknown item ids dropped, summed over histories."""
    errors: int
    """Histories that could not be scored (their ``error`` column says why)."""
    seconds: float
    """Wall time."""


def _history_events(history: Any) -> list[Any]:
    """A streamed :class:`~intentrec.data.stream.History` as live events (NaN times -> None)."""
    from intentrec.features.live import LiveEvent

    return [LiveEvent(item, None if not np.isfinite(t) else float(t), {a: v[i] for a, v in history.attributes.items()})
            for i, (item, t) in enumerate(zip(history.item_ids, history.timestamps.tolist(), strict=True))]


def predict_schema(head_names: tuple[str, ...], has_fusion: bool) -> dict[str, str]:
    """Columns of the batch-prediction Parquet file (one row per user or session)."""
    schema = {"user_id": "string", "items": "list<string>", "scores": "list<float32>", "boosts": "list<float32>"}
    for name in head_names:
        schema[f"{name}_labels"] = "list<string>"
        schema[f"{name}_probs"] = "list<float32>"
        if has_fusion:
            schema[f"{name}_attention"] = "float32"
    if has_fusion:
        schema["intent_embedding"] = "list<float32>"
    schema.update({"n_events": "int64", "events_used": "int64", "fallback": "string",
                   "ignored_items": "list<string>", "error": "string"})
    return schema


def predict(
    bundle_dir: str | Path,
    input_path: str | Path,
    out: str | Path,
    *,
    k: int = 100,
    columns: dict[str, str] | None = None,
    by: str = "user",
    exclude_seen: bool | None = None,
    chunk_rows: int = 100_000,
    backend: str = "torch",
    intent_top: int = 5,
    progress: bool = True,
    log: Callable[[str], None] = print,
    request_time: float | None = None,
) -> PredictSummary:
    """Batch inference (``intentrec predict``): top-k items, intents, attention and Z for every user of a file.

    ``request_time`` (seconds since the epoch; None = now) is when every history's recommendations are asked for,
    read by models trained with ``model.request_gap``.

    Streams the input in chunks of ``chunk_rows`` events (memory bounded by the chunk, not the file) and writes
    one Parquet row per user (or session, ``by="session"``) with the columns of :func:`predict_schema`. A history
    that cannot be scored (e.g. a wrong attribute type) gets an ``error`` and empty results; the others go on.
    The output appears only when the run finishes (temporary file + rename).

    Raises:
        CheckpointError: the bundle is missing, damaged or from another version.
        SchemaError / DataError: the input lacks a required column or cannot be read.
    """
    from intentrec.data.stream import ParquetRowWriter, iter_histories
    from intentrec.errors import RequestError
    from intentrec.serve.predictor import Prediction, Predictor, PredictRequest

    t0 = time.perf_counter()
    pred = Predictor.from_path(bundle_dir, backend=backend, intent_top=intent_top)
    bundle = pred.bundle
    live = bundle.live
    fields = [r.field for r in live.rules if r.field] + [n.name for n in live.numeric if n.source == "event"]
    has_fusion = getattr(bundle.model, "intent_fusion", None) is not None
    schema = predict_schema(pred.head_names, has_fusion)

    def row(key: str, n: int, p: Prediction | None, error: str | None) -> dict[str, Any]:
        r: dict[str, Any] = {"user_id": key, "items": [], "scores": [], "boosts": None, "n_events": n, "events_used": 0,
                             "fallback": None, "ignored_items": [], "error": error}
        for name in pred.head_names:
            r[f"{name}_labels"], r[f"{name}_probs"] = [], []
            if has_fusion:
                r[f"{name}_attention"] = None
        if has_fusion:
            r["intent_embedding"] = None
        if p is None:
            return r
        r.update(items=[i for i, _ in p.items], scores=[s for _, s in p.items], boosts=p.item_boosts,
                 events_used=p.events_used,
                 fallback=p.fallback, ignored_items=list(p.ignored_items))
        for name, labels in p.intents.items():
            r[f"{name}_labels"] = [lab for lab, _ in labels]
            r[f"{name}_probs"] = [q for _, q in labels]
            if has_fusion:
                r[f"{name}_attention"] = p.attention.get(name)
        if has_fusion:
            r["intent_embedding"] = p.intent_embedding
        return r

    counts = {"histories": 0, "events": 0, "fallbacks": 0, "ignored": 0, "errors": 0}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                   TimeRemainingColumn(), disable=not progress, transient=False)
    with ParquetRowWriter(out, schema) as writer, bar:
        task = bar.add_task("predict", total=None)
        for histories, n_rows in iter_histories(input_path, columns=columns, attributes=fields, by=by,
                                                 require_time=bundle.spec.timed, chunk_rows=chunk_rows,
                                                 on_total=lambda n: bar.update(task, total=n)):
            requests = []
            for h in histories:
                requests.append(PredictRequest(_history_events(h), k=k, exclude_seen=exclude_seen, user_id=h.key,
                                               request_time=request_time))
            try:
                results: list[tuple[Prediction | None, str | None]] = [(p, None) for p in pred.predict_many(requests)]
            except RequestError:  # score one by one so a bad history does not sink the chunk
                results = []
                for r in requests:
                    try:
                        results.append((pred.predict_many([r])[0], None))
                    except RequestError as err:
                        results.append((None, str(err)))
            rows = []
            for h, (p, error) in zip(histories, results, strict=True):
                rows.append(row(h.key, len(h.item_ids), p, error))
                counts["errors"] += error is not None
                counts["fallbacks"] += p is not None and p.fallback is not None
                counts["ignored"] += 0 if p is None else len(p.ignored_items)
            writer.write(rows)
            counts["histories"] += len(histories)
            counts["events"] += n_rows
            bar.update(task, completed=counts["events"])
    summary = PredictSummary(Path(out), counts["histories"], counts["events"], counts["fallbacks"], counts["ignored"],
                             counts["errors"], time.perf_counter() - t0)
    log(f"wrote {summary.histories:,} {by}s ({summary.events:,} events) to {summary.out} in {summary.seconds:.1f}s; "
        f"{summary.fallbacks} popularity fallbacks, {summary.ignored_items} unknown item ids ignored, "
        f"{summary.errors} errors")
    return summary


def dataset_summary(cfg: ExperimentConfig) -> dict[str, Any]:
    """Size and protocol of a config's prepared data (for benchmark reports); simulator data adds its ceilings.

    Returns:
        ``{dataset, n_users, n_items, n_events, description, ceilings}``; ``ceilings`` maps each intent to the
        simulator oracle's test accuracy (None for real data).
    """
    data = prepare(cfg.data)
    return {
        "dataset": data.spec.dataset,
        "n_users": data.n_users,
        "n_items": data.spec.n_items - 2,
        "n_events": int(data.item_idx.shape[0]),
        "description": f"{data.spec.dataset}: {data.n_users:,} users, {data.spec.n_items - 2:,} items, "
                       f"{data.item_idx.shape[0]:,} events; {data.split.description}",
        "ceilings": _simulator_ceilings(cfg, data),
    }


def _simulator_ceilings(cfg: ExperimentConfig, data: EncodedSequences) -> dict[str, float] | None:
    """Oracle intent accuracy on the test targets when the data comes from the streaming simulator."""
    if cfg.data.source.adapter != "streaming_sim" or data.split.test_targets.shape[0] == 0:
        return None
    from intentrec.datasets import streaming_sim as sim

    source = cfg.data.source
    if source.path is not None:
        events = sim.read_simulation(source.path).events
    else:
        events = sim.simulate(sim.SimConfig.from_name(source.name or "small")).events
    targets = data.split.test_targets
    users = [data.user_ids[u] for u in targets[:, 0]]
    times = data.timestamps[data.offsets[targets[:, 0]] + targets[:, 1]]
    return sim.intent_ceilings(events, users, times)


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a config file with ``key=value`` overrides (thin wrapper for the CLI)."""
    return load_config(path, overrides or [])
