"""Hyperparameter search with Optuna (TPE) on the **validation** split; the test split is never scored.

A search-space file (YAML) maps dotted config keys to ranges::

    train.lr: {low: 3.0e-4, high: 3.0e-3, log: true}     # float (log-uniform)
    model.dropout: {low: 0.0, high: 0.5}                  # float
    model.n_layers: {low: 1, high: 3}                     # int (both bounds are integers)
    train.lambda_intent: {choices: [0.1, 0.3, 1.0, 3.0]}  # categorical

Every trial trains with :func:`intentrec.workflows.train` (``evaluate_test=False``) and returns the best validation
``train.monitor``. Giving every model the same ``trials`` and ``train.max_minutes`` is the same tuning budget. The
study lives in ``DIR/study.db`` (SQLite), so an interrupted search resumes; ``DIR/best.json`` holds the chosen
values as overrides to paste into a suite's ``model_set``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from intentrec import workflows
from intentrec.config import ExperimentConfig, load_config
from intentrec.errors import ConfigError, IntentRecError
from intentrec.train.checkpoint import atomic_write_text

__all__ = ["load_space", "tune"]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise IntentRecError("hyperparameter search needs Optuna: pip install 'intentrec[hpo]'") from None
    return optuna


def load_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a search-space file (see the module docstring).

    Raises:
        ConfigError: missing file, not a mapping, or a range without ``choices`` or ``low``/``high``.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"search-space file not found: {p} (example: benchmarks/search_space.yaml)")
    raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{p}: a search space maps dotted config keys to ranges, e.g. 'train.lr: {{low: 1e-4, high: 1e-2, log: true}}'")
    for key, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{p}: '{key}' must map to a range such as {{low: 0.0, high: 0.5}} or {{choices: [...]}}")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise ConfigError(f"{p}: '{key}' has unknown fields {sorted(unknown)} (use low/high/log/step or choices)")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{p}: '{key}': choices must be a non-empty list")
        elif not {"low", "high"} <= set(spec):
            raise ConfigError(f"{p}: '{key}' needs both low and high (or choices)")
        elif not spec["low"] < spec["high"]:
            raise ConfigError(f"{p}: '{key}': low ({spec['low']}) must be below high ({spec['high']})")
    return raw


def _suggest(trial: Any, key: str, spec: dict[str, Any]) -> Any:
    if "choices" in spec:
        return trial.suggest_categorical(key, spec["choices"])
    low, high = spec["low"], spec["high"]
    if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
        return trial.suggest_int(key, low, high, step=int(spec.get("step", 1)), log=bool(spec.get("log", False)))
    return trial.suggest_float(key, float(low), float(high), log=bool(spec.get("log", False)),
                               step=spec.get("step"))


def tune(
    config: str | Path,
    space_path: str | Path,
    out: str | Path,
    *,
    trials: int,
    overrides: list[str] | None = None,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) a TPE search until the study has ``trials`` finished trials.

    Args:
        config: the experiment config the trials start from (its ``train.max_minutes`` bounds each trial).
        space_path: the search-space YAML.
        out: output folder (``study.db``, ``trials.jsonl``, ``best.json``, ``trials/<n>/`` run folders).
        trials: total finished trials wanted (counting trials of earlier sessions).
        overrides: ``key=value`` overrides applied before the sampled values.
        seed: seed of the TPE sampler.
        progress: training progress bars.
        log: where per-trial lines go.

    Returns:
        The ``best.json`` document: ``{metric, value, trial, params, overrides, trials, ...}``.
    """
    optuna = _optuna()
    space = load_space(space_path)
    base = load_config(config, overrides or [])
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="intentrec", storage=f"sqlite:///{(root / 'study.db').resolve()}", load_if_exists=True,
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
    )
    metric = base.train.monitor

    def objective(trial: Any) -> float:
        params = {key: _suggest(trial, key, spec) for key, spec in space.items()}
        sampled = [f"{k}={json.dumps(v)}" for k, v in params.items()]
        try:
            cfg: ExperimentConfig = load_config(config, [*(overrides or []), *sampled])
        except ConfigError as err:  # an invalid combination (e.g. d_model not divisible by n_heads)
            log(f"trial {trial.number}: invalid combination, pruned: {err}")
            raise optuna.TrialPruned() from None
        run_dir = root / "trials" / f"{trial.number:04d}"
        t0 = time.perf_counter()
        outcome = workflows.train(cfg, run_dir, progress=progress, log=lambda _m: None, evaluate_test=False)
        value = float(outcome.validation["item"][metric])
        shutil.rmtree(run_dir / "last", ignore_errors=True)  # resume state is not needed once a trial ended
        record = {"trial": trial.number, "value": value, "params": params, "epochs": outcome.fit.epochs_run,
                  "stop_reason": outcome.fit.stop_reason, "seconds": round(time.perf_counter() - t0, 1)}
        with (root / "trials.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        log(f"trial {trial.number}: validation {metric} {value:.4f} with {params} ({record['seconds']:.0f}s)")
        return value

    done = [t for t in study.trials if t.state.name in {"COMPLETE", "PRUNED"}]
    left = max(0, trials - len(done))
    if left:
        log(f"tuning {base.model.label} on {base.name}: {left} trial(s) to go (validation {metric}; test is never "
            "scored)")
        study.optimize(objective, n_trials=left, catch=(IntentRecError,))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        raise IntentRecError(f"no trial finished in {root}; see the errors above")
    best = study.best_trial
    doc = {
        "metric": f"validation {metric}",
        "value": best.value,
        "trial": best.number,
        "params": best.params,
        "overrides": {k: best.params[k] for k in space},
        "trials": len(complete),
        "model": base.model.label,
        "config": str(config),
        "max_minutes_per_trial": base.train.max_minutes,
        "sampler": f"TPE(seed={seed})",
    }
    atomic_write_text(root / "best.json", json.dumps(doc, indent=2))
    return doc
