"""Hyperparameter search: validation only (test never scored), resumable, clear errors for bad spaces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intentrec.benchmark.tune import load_space, tune
from intentrec.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_bad_search_spaces_are_named(tmp_path: Path) -> None:
    cases = {
        "train.lr: 0.1\n": "must map to a range",
        "train.lr: {low: 0.1}\n": "needs both low and high",
        "train.lr: {low: 0.1, high: 0.01}\n": "must be below high",
        "train.lr: {lo: 0.1, high: 0.2}\n": "unknown fields",
        "model.dropout: {choices: []}\n": "non-empty list",
    }
    for text, message in cases.items():
        path = tmp_path / "space.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_space(path)
    with pytest.raises(ConfigError, match="not found"):
        load_space(tmp_path / "missing.yaml")


def test_tune_selects_on_validation_never_scores_test_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}\nmodel.n_layers: {low: 1, high: 2}\n",
                     encoding="utf-8")
    overrides = ["train.epochs=1", "train.max_steps_per_epoch=2", f"data.cache_dir={tmp_path / 'cache'}"]
    out = tmp_path / "tune"
    lines: list[str] = []
    doc = tune(REPO / "configs" / "tiny.yaml", space, out, trials=2, overrides=overrides, log=lines.append)
    assert doc["trials"] == 2 and set(doc["overrides"]) == {"train.lr", "model.n_layers"}
    assert isinstance(doc["overrides"]["model.n_layers"], int)
    trial_dirs = sorted((out / "trials").iterdir())
    assert len(trial_dirs) == 2
    for d in trial_dirs:
        assert (d / "metrics_validation.json").is_file()
        assert not (d / "metrics.json").exists() and not (d / "per_target_test.npz").exists()
        assert not (d / "last").exists()
    values = [json.loads(line)["value"] for line in (out / "trials.jsonl").read_text().splitlines()]
    assert doc["value"] == max(values)
    # resuming to 3 trials runs exactly one more
    doc = tune(REPO / "configs" / "tiny.yaml", space, out, trials=3, overrides=overrides, log=lines.append)
    assert doc["trials"] == 3 and len(list((out / "trials").iterdir())) == 3
    assert json.loads((out / "best.json").read_text())["trials"] == 3


def test_shipped_search_spaces_are_valid() -> None:
    for path in sorted((REPO / "benchmarks").glob("search_space*.yaml")):
        assert "train.lr" in load_space(path)
