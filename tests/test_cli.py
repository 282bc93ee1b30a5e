"""CLI end to end on the bundled data (configs/tiny.yaml, seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentrec.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("cli")
    cfg = work / "tiny.yaml"
    shutil.copy(REPO / "configs" / "tiny.yaml", cfg)
    out = work / "run"
    result = runner.invoke(
        app,
        ["train", "--config", str(cfg), "--out", str(out), "--no-progress",
         "--set", f"data.cache_dir={work / 'cache'}"],
    )
    assert result.exit_code == 0, result.output
    assert "popularity" in result.output and "full catalogue" in result.output
    return out


def test_train_writes_a_complete_run(tiny_run: Path) -> None:
    for name in ("config.json", "data_spec.json", "vocabs.json", "model.safetensors", "history.jsonl",
                 "metrics.json", "metrics_validation.json", "per_target_test.npz", "last/manifest.json", "training_curves.png"):
        assert (tiny_run / name).is_file(), name
    doc = json.loads((tiny_run / "metrics.json").read_text())
    assert doc["split"] == "test" and doc["protocol"] == "leave-one-out"
    assert "full catalogue" in doc["ranking"] and doc["exclude_seen"] is True
    for key in ("ndcg@10", "recall@10", "mrr", "hr@1", "ndcg@20"):
        assert 0.0 <= doc["item"][key] <= 1.0
    assert set(doc["intents"]) == {"genre", "recency"}
    assert "accuracy" in doc["intents"]["recency"] and "map" in doc["intents"]["genre"]
    assert "ndcg@10" in doc["baselines"]["popularity"]["item"]
    history = [json.loads(x) for x in (tiny_run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all("loss/item" in h and "loss/intent/genre" in h and "val/ndcg@10" in h for h in history)


def test_evaluate_reproduces_the_training_metrics(tiny_run: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(tiny_run), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    saved = json.loads((tiny_run / "metrics.json").read_text())
    assert doc["item"] == pytest.approx(saved["item"])
    val = runner.invoke(app, ["evaluate", str(tiny_run), "--split", "validation", "--json"])
    assert json.loads(val.output)["item"]["ndcg@10"] == pytest.approx(saved["training"]["best_validation"])


def test_recommend_for_a_user_and_for_items(tiny_run: Path) -> None:
    result = runner.invoke(app, ["recommend", str(tiny_run), "--user", "1", "--k", "5", "--json"])
    assert result.exit_code == 0, result.output
    rec = json.loads(result.output)
    assert len(rec["items"]) == 5 and set(rec["intents"]) == {"genre", "recency"}
    assert sum(rec["intent_attention"].values()) == pytest.approx(1.0, abs=1e-5)
    assert not set(i for i, _ in rec["items"]) & set(rec["history"])  # seen items excluded (MovieLens default)
    result = runner.invoke(app, ["recommend", str(tiny_run), "--items", "1,2,nonexistent-item", "--k", "3"])
    assert result.exit_code == 0, result.output
    assert "ignored unknown items" in result.output and "nonexistent-item" in result.output
    bad = runner.invoke(app, ["recommend", str(tiny_run), "--user", "no-such-user"])
    assert bad.exit_code == 2 and "unknown user" in bad.output
    at = runner.invoke(app, ["recommend", str(tiny_run), "--user", "1", "--request-time", "2018-09-24T10:00:00Z"])
    assert at.exit_code == 0, at.output
    bad = runner.invoke(app, ["recommend", str(tiny_run), "--user", "1", "--request-time", "yesterday"])
    assert bad.exit_code == 2 and "--request-time 'yesterday'" in bad.output


def test_errors_are_clear_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  variant: V0\n  d_modle: 3\n")
    result = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "model.d_modle" in result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / "missing-run")])
    assert result.exit_code == 2 and "not a finished training run" in result.output


def test_data_describe(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    shutil.copy(REPO / "configs" / "tiny.yaml", cfg)
    result = runner.invoke(app, ["data", "describe", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["users"] == 671 and stats["interactions"] > 0 and "genre" in stats["intents"]
    result = runner.invoke(app, ["data", "describe", "movielens"])
    assert result.exit_code == 0 and "sessions" in result.output


def test_data_describe_by_adapter_name(shared_data: Path) -> None:
    result = runner.invoke(app, ["data", "describe", "s3rec", "--path", str(shared_data / "amazon-yelp-lastfm-s3rec"),
                                 "--name", "Beauty", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["users"] == 22363 and stats["interactions"] == 198502 and stats["timed"] is False
    missing = runner.invoke(app, ["data", "describe", "trivago"])
    assert missing.exit_code == 2 and "--path" in missing.output


def test_data_simulate_writes_a_log_the_pipeline_reads(tmp_path: Path) -> None:
    folder = tmp_path / "sim"
    result = runner.invoke(app, ["data", "simulate", "--preset", "tiny@seed=2", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in folder.iterdir()} >= {"events.parquet", "items.parquet", "README.md"}
    cfg = tmp_path / "sim.yaml"
    text = (REPO / "configs" / "streaming_sim.yaml").read_text(encoding="utf-8")
    cfg.write_text(text.replace("    path: null", f"    path: {folder}"), encoding="utf-8")
    described = runner.invoke(app, ["data", "describe", str(cfg), "--json"])
    assert described.exit_code == 0, described.output
    stats = json.loads(described.output)
    assert stats["users"] == 50 and set(stats["intents"]) == {"action", "genre", "format", "recency"}
    bad = runner.invoke(app, ["data", "simulate", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "tiny" in bad.output
