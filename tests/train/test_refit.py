"""``intentrec refit``: retrain a finished run on training + validation events for the epochs validation chose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from intentrec import workflows
from intentrec.cli import app
from intentrec.config import load_config
from intentrec.errors import CheckpointError, ConfigError
from intentrec.features.dataset import TrainingWindows

REPO = Path(__file__).resolve().parents[2]
QUIET = {"progress": False, "log": lambda _: None}


def _history(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IntentRec V3 on the tiny config (leave-one-out), 3 epochs of 3 steps."""
    work = tmp_path_factory.mktemp("refit")
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        "train.epochs=3", "train.max_steps_per_epoch=3", "train.patience=5", f"data.cache_dir={work / 'cache'}",
    ])
    workflows.train(cfg, work / "source", **QUIET)
    return work / "source"


@pytest.fixture(scope="module")
def refitted(source: Path) -> Path:
    out = source.parent / "refit"
    workflows.refit(source, out, **QUIET)
    return out


def test_refit_trains_the_chosen_epochs_on_the_validation_events_too(source: Path, refitted: Path) -> None:
    chosen = json.loads((source / "metrics_validation.json").read_text())["training"]["best_epoch"]
    doc = json.loads((refitted / "metrics.json").read_text())
    assert doc["refit"]["epochs"] == chosen and doc["refit"]["source_run"] == str(source)
    assert doc["refit"]["overrides"] == []
    assert doc["training"]["stop_reason"] == "fixed_epochs" and doc["training"]["best_validation"] is None
    assert json.loads((refitted / "refit.json").read_text()) == doc["refit"]
    assert not (refitted / "metrics_validation.json").exists()
    history = _history(refitted)
    assert len(history) == chosen and not any(k.startswith("val/") for h in history for k in h)
    # the same test targets, so a refit pairs with its source target by target
    a, b = np.load(source / "per_target_test.npz"), np.load(refitted / "per_target_test.npz")
    assert np.array_equal(a["user_id"], b["user_id"]) and np.array_equal(a["position"], b["position"])
    # one more training target per evaluated user: the validation item
    src, ref = workflows.load_run(source).data, workflows.load_run(refitted).data
    added = TrainingWindows(ref, 20, "none").n_targets - TrainingWindows(src, 20, "none").n_targets
    assert added == int((np.diff(src.offsets) >= 3).sum()) > 0
    assert ref.split.val_targets.shape == (0, 2) and np.array_equal(ref.split.test_targets, src.split.test_targets)


def test_a_refit_loads_evaluates_and_exports_but_has_no_validation_score(refitted: Path, tmp_path: Path) -> None:
    doc = json.loads((refitted / "metrics.json").read_text())
    again = workflows.evaluate_run(refitted, "test")
    assert again["item"]["ndcg@10"] == pytest.approx(doc["item"]["ndcg@10"], abs=1e-12)
    assert "refit" in again["description"]
    with pytest.raises(ConfigError, match="refit"):
        workflows.evaluate_run(refitted, "validation")
    assert (workflows.export(refitted, tmp_path / "bundle") / "model.safetensors").is_file()


def test_stopping_early_keeps_the_full_schedule(source: Path) -> None:
    """Epochs 1-2 of a 2-epoch refit follow the 3-epoch schedule exactly (a compressed one would change epoch 2)."""
    two, three = source.parent / "refit-2", source.parent / "refit-3"
    workflows.refit(source, two, epochs=2, **QUIET)
    workflows.refit(source, three, epochs=3, **QUIET)
    h2, h3 = _history(two), _history(three)
    assert len(h2) == 2 and len(h3) == 3
    for a, b in zip(h2, h3[:2], strict=True):
        assert a["loss/total"] == pytest.approx(b["loss/total"], rel=1e-6)
    # a refit resumes like a training run: 2 epochs, then --resume to 3, gives the 3-epoch refit's weights
    workflows.refit(source, two, epochs=3, resume=True, **QUIET)
    assert len(_history(two)) == 3
    resumed, direct = load_file(two / "model.safetensors"), load_file(three / "model.safetensors")
    assert resumed.keys() == direct.keys()
    assert all(torch.allclose(resumed[k], direct[k], atol=1e-6) for k in direct)


def test_refit_refuses_bad_sources_and_epochs(source: Path, refitted: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="already a refit"):
        workflows.refit(refitted, tmp_path / "x", **QUIET)
    with pytest.raises(CheckpointError, match="not a finished training run"):
        workflows.refit(tmp_path / "missing", tmp_path / "y", **QUIET)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    (broken / "metrics_validation.json").write_text("{}", encoding="utf-8")
    with pytest.raises(CheckpointError, match="unreadable"):
        workflows.refit(broken, tmp_path / "w", **QUIET)
    with pytest.raises(ConfigError, match="overwrite its source"):
        workflows.refit(source, source, **QUIET)
    for bad in (0, 4):
        with pytest.raises(ConfigError, match=r"outside \[1, train.epochs = 3\]"):
            workflows.refit(source, tmp_path / "z", epochs=bad, **QUIET)
    assert not (tmp_path / "z").exists()


def test_refit_of_an_untrained_baseline_refits_its_counts(tmp_path: Path) -> None:
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["model.architecture=popularity",
                                                      f"data.cache_dir={tmp_path / 'cache'}"])
    workflows.train(cfg, tmp_path / "pop", **QUIET)
    outcome = workflows.refit(tmp_path / "pop", tmp_path / "pop-refit", **QUIET)
    before = json.loads((tmp_path / "pop" / "metrics.json").read_text())
    assert outcome.test["refit"]["epochs"] == 0 and outcome.validation == {}
    assert outcome.test["n_targets"] == before["n_targets"]
    # the counts now include the validation items, so the popularity ranking (and its score) moves
    assert outcome.test["item"]["mrr"] != before["item"]["mrr"]


def test_cli_refit(source: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["refit", str(source), "--out", str(tmp_path / "cli"), "--epochs", "1",
                                      "--set", "train.num_threads=1", "--no-progress"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "refit of" in text and "1 of the 3 epochs" in text and "(refit, 1 epoch)" in text
    assert json.loads((tmp_path / "cli" / "refit.json").read_text())["overrides"] == ["train.num_threads=1"]
    bad = CliRunner().invoke(app, ["refit", str(tmp_path / "nothing"), "--out", str(tmp_path / "c2"), "--no-progress"])
    assert bad.exit_code == 2 and "not a finished training run" in " ".join(bad.output.split())


def test_temporal_refit_trains_up_to_the_test_cutoff(tmp_path: Path) -> None:
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        "data.split.protocol=temporal", "data.split.targets=all", "train.epochs=1", "train.max_steps_per_epoch=2",
        f"data.cache_dir={tmp_path / 'cache'}",
    ])
    workflows.train(cfg, tmp_path / "src", **QUIET)
    workflows.refit(tmp_path / "src", tmp_path / "ref", **QUIET)
    src, ref = workflows.load_run(tmp_path / "src"), workflows.load_run(tmp_path / "ref")
    t_test = ref.stats["cutoffs"]["t_test"]
    for u in range(ref.data.n_users):
        ts = ref.data.timestamps[ref.data.offsets[u]:ref.data.offsets[u + 1]]
        assert ref.data.split.train_len[u] == int((ts < t_test).sum())
    assert ref.data.split.train_len.sum() > src.data.split.train_len.sum()
    assert np.array_equal(ref.data.split.test_targets, src.data.split.test_targets)


def test_a_refit_cut_short_by_the_time_budget_says_so(source: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    outcome = workflows.refit(source, tmp_path / "short", epochs=3, overrides=["train.max_minutes=0.00001"],
                              progress=False, log=messages.append)
    assert outcome.fit.epochs_run == 1 and outcome.test["training"]["stop_reason"] == "time_budget"
    assert any("stopped after 1 of its 3 epochs" in m and "--resume" in m for m in messages)
    assert any("time budget" in m and "(no validation)" in m for m in messages)
