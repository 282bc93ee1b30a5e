"""Benchmark suites: models × datasets × seeds in one YAML file, expanded into concrete training runs.

A suite file::

    name: paper
    description: PAPER Tables 1-3 on public data
    seeds: [0, 1, 2]
    set: {train.max_minutes: 20}          # overrides for every run (dotted keys, any YAML value)
    refit: false                          # also refit every run on training + validation events (a variant)
    intentrec: IntentRec                  # the model tested against the best baseline
    reference: {table1: TransAct, table2: IntentRec V1, table3: IntentRec V0}
    datasets:
      - name: movielens
        config: ../configs/movielens.yaml # relative to the suite file
        set: {train.epochs: 30}           # overrides for this dataset
        model_set:                        # tuned values per model on this dataset (recorded by `intentrec tune`)
          SASRec: {model.dropout: 0.3}
        models: null                      # null = every model of the suite; or a list of names
        refit: null                       # null = the suite's refit; true / false for this dataset
    models:
      - {name: TransAct, set: {model.architecture: transact}, tables: [1]}
      - {name: IntentRec, set: {model.architecture: intentrec, model.variant: V3}, tables: [1, 2, 3]}
      - {name: IntentRec V3, set: {model.variant: V3}, tables: [3], expand: single_heads}

``expand: single_heads`` turns one entry into one run per intent of the dataset (``<name> only-<intent>``, with
``model.heads: [<intent>]``): the single-head variants of PAPER Table 3.

Later keys win: dataset config file < suite ``set`` < dataset ``set`` < model ``set`` < dataset ``model_set`` <
``intentrec benchmark --set``; ``train.seed`` is set from the seed last. Every run of a dataset shares its data config (so its targets), which
makes the per-target comparisons of the report paired.

``refit: true`` (suite or dataset; ``intentrec benchmark --refit`` for every dataset) adds, after each finished run,
:func:`intentrec.workflows.refit`: the same config and seed retrained on the training events plus the validation
period for the epochs the run's validation chose, scored on the same test targets. The report gives those numbers
in a section of their own, as a variant protocol beside the published one (never mixed into Tables 1-3).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from intentrec.config import ExperimentConfig, load_config
from intentrec.errors import ConfigError

__all__ = ["RunSpec", "Suite", "SuiteDataset", "SuiteModel", "expand_runs", "load_suite", "run_slug"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_overrides(v: dict[str, Any]) -> dict[str, Any]:
    for key in v:
        if not key or any(not part for part in key.split(".")):
            raise ValueError(f"override key {key!r} must be a dotted path such as train.epochs")
    return v


class SuiteModel(_Frozen):
    """One model row of the tables."""

    name: str
    """Display name, unique in the suite (e.g. ``SASRec``, ``IntentRec V1``)."""
    set: dict[str, Any] = {}
    """Config overrides (dotted keys) that make this model, e.g. ``{model.architecture: sasrec}``."""
    tables: tuple[Literal[1, 2, 3], ...] = (1,)
    """PAPER tables this model is a row of: 1 (baselines vs TransAct), 2 (V0-V3 vs V1), 3 (single heads vs V0)."""
    expand: Literal["single_heads"] | None = None
    """``single_heads``: one run per intent of the dataset, with only that intent's head (PAPER Table 3)."""

    _keys = field_validator("set")(_check_overrides)


class SuiteDataset(_Frozen):
    """One dataset (one data config, so one set of targets)."""

    name: str
    """Display name, unique in the suite."""
    config: str
    """Experiment config file, relative to the suite file (or ``packaged:<file>`` for a config shipped in the
    package, e.g. ``packaged:quickstart.yaml``)."""
    set: dict[str, Any] = {}
    """Overrides for every run on this dataset."""
    model_set: dict[str, dict[str, Any]] = {}
    """Per-model overrides on this dataset (tuned hyperparameters), keyed by model name."""
    models: tuple[str, ...] | None = None
    """Subset of the suite's models run on this dataset (``null`` = all)."""
    seeds: tuple[int, ...] | None = None
    """Seeds for this dataset (``null`` = the suite's)."""
    refit: bool | None = None
    """Refit every run of this dataset on training + validation events (``null`` = the suite's ``refit``)."""

    _keys = field_validator("set")(_check_overrides)


class TableReferences(_Frozen):
    """The row every other row of a table is relative to (PAPER §6.4-§6.6)."""

    table1: str = "TransAct"
    table2: str = "IntentRec V1"
    table3: str = "IntentRec V0"


class Suite(_Frozen):
    """A benchmark suite (see the module docstring for the file format)."""

    name: str
    """Suite name (shown in the report)."""
    description: str = ""
    """What the suite measures."""
    seeds: tuple[int, ...] = (0,)
    """Training seeds; heuristic baselines are deterministic and run once."""
    set: dict[str, Any] = {}
    """Overrides for every run."""
    intentrec: str = "IntentRec"
    """Name of the model tested against the best baseline (paired t-test + bootstrap CI)."""
    metric: str = "ndcg@10"
    """Headline item metric of the tables and the significance tests (per-target values: ndcg@10, hr@10, mrr)."""
    reference: TableReferences = TableReferences()
    """Reference rows of Tables 1-3."""
    refit: bool = False
    """After every finished run, also refit it on training + validation events (:func:`intentrec.workflows.refit`)
    and report the refits apart, as a variant protocol. Doubles the cost of the trained models."""
    datasets: tuple[SuiteDataset, ...]
    """Datasets, run in order."""
    models: tuple[SuiteModel, ...]
    """Models, run in order on every dataset (unless a dataset lists a subset)."""

    _keys = field_validator("set")(_check_overrides)

    @model_validator(mode="after")
    def _check(self) -> Suite:
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        for kind, names in (("model", [m.name for m in self.models]), ("dataset", [d.name for d in self.datasets])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind} names must be unique; repeated: {dup}")
        known = {m.name for m in self.models}
        if self.intentrec not in known:
            raise ValueError(f"intentrec: {self.intentrec!r} is not one of the models {sorted(known)}")
        for d in self.datasets:
            unknown = sorted(set(d.models or ()) - known) + sorted(set(d.model_set) - known)
            if unknown:
                raise ValueError(f"dataset {d.name!r} names unknown models {unknown}; models: {sorted(known)}")
        if self.metric not in {"ndcg@10", "hr@10", "mrr"}:
            raise ValueError("metric must be one of ndcg@10, hr@10, mrr (the per-target values kept by every run)")
        return self


@dataclass(frozen=True)
class RunSpec:
    """One concrete training run of a suite."""

    dataset: str
    model: str
    seed: int
    cfg: ExperimentConfig
    tables: tuple[int, ...]
    single_head: str | None
    """The intent of a single-head variant (``expand: single_heads``), else None."""
    refit: bool = False
    """Whether the run is also refitted on training + validation events once it has finished."""

    @property
    def key(self) -> str:
        """Stable id: ``dataset/model/seed``."""
        return f"{self.dataset}/{self.model}/seed{self.seed}"

    @property
    def config_hash(self) -> str:
        """Hash of the resolved config: a finished run with the same hash is reused on resume."""
        return hashlib.sha256(json.dumps(self.cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def run_slug(text: str) -> str:
    """A file-name-safe form of a model or dataset name (``IntentRec V3 only-genre`` -> ``intentrec-v3-only-genre``)."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(p for p in out.split("-") if p) or "run"


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file.

    Raises:
        ConfigError: the file is missing, not YAML, or invalid (the message names the key).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"suite file not found: {p} (suites ship in benchmarks/: smoke.yaml, paper.yaml, published.yaml)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: cannot parse: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a suite is a mapping with name, datasets and models")
    try:
        return Suite.model_validate(raw)
    except ValidationError as err:
        lines = [f"invalid suite {p}:"]
        for e in err.errors():
            where = ".".join(str(x) for x in e["loc"]) or "(top level)"
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  - unknown key '{where}'" if e["type"] == "extra_forbidden" else f"  - '{where}': {msg}")
        raise ConfigError("\n".join(lines)) from None


def _config_path(dataset: SuiteDataset, suite_dir: Path) -> Path:
    if dataset.config.startswith("packaged:"):
        return Path(str(resources.files("intentrec") / "resources" / "configs" / dataset.config.split(":", 1)[1]))
    path = Path(dataset.config)
    return path if path.is_absolute() else suite_dir / path


def _as_overrides(values: dict[str, Any]) -> list[str]:
    # JSON is valid YAML, so every value round-trips through apply_overrides' YAML parser
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def expand_runs(
    suite: Suite, suite_dir: str | Path, overrides: list[str] | None = None, *, refit: bool | None = None
) -> list[RunSpec]:
    """Every concrete run of ``suite``, datasets in order, then models, then seeds.

    Args:
        suite: the validated suite.
        suite_dir: folder of the suite file (dataset config paths are relative to it).
        overrides: ``key=value`` overrides applied to every run after the suite's own (e.g. a shorter
            ``train.max_minutes`` on a slow machine); they are part of each run's config, hence of its hash.
        refit: refit every run (True) or none (False), whatever the suite says; None = the suite's and datasets'
            ``refit``.

    Raises:
        ConfigError: a dataset config is missing or a combination of overrides is invalid (named with its run).
    """
    runs: list[RunSpec] = []
    for d in suite.datasets:
        path = _config_path(d, Path(suite_dir))
        try:
            base = load_config(path, [*_as_overrides(suite.set), *_as_overrides(d.set), *(overrides or [])])
        except ConfigError as err:
            raise ConfigError(f"suite dataset {d.name!r}: {err}") from None
        intents = [i.name for i in base.data.intents]
        seeds = d.seeds or suite.seeds
        do_refit = refit if refit is not None else (d.refit if d.refit is not None else suite.refit)
        for m in suite.models:
            if d.models is not None and m.name not in d.models:
                continue
            variants: list[tuple[str, dict[str, Any], str | None]] = [(m.name, {}, None)]
            if m.expand == "single_heads":
                variants = [(f"{m.name} only-{i}", {"model.heads": [i]}, i) for i in intents]
            for name, extra, head in variants:
                run_overrides = [*_as_overrides(suite.set), *_as_overrides(d.set), *_as_overrides(m.set),
                                 *_as_overrides(extra), *_as_overrides(d.model_set.get(m.name, {}))]
                for seed in seeds:
                    try:
                        cfg = load_config(path, [*run_overrides, *(overrides or []), f"train.seed={seed}",
                                                 f"name={json.dumps(name)}"])
                    except ConfigError as err:
                        raise ConfigError(f"suite run {d.name}/{name}/seed{seed}: {err}") from None
                    runs.append(RunSpec(d.name, name, seed, cfg, tuple(m.tables), head, do_refit))
                    if cfg.model.is_heuristic:
                        break  # deterministic: one run stands for every seed
    return runs
