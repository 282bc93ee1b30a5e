"""Benchmark suites: file validation, run expansion, resume, failure recording, report tables and significance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from intentrec.benchmark import report as report_mod
from intentrec.benchmark.runner import run_suite
from intentrec.benchmark.suite import expand_runs, load_suite, run_slug
from intentrec.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _suite_file(tmp_path: Path, **overrides: object) -> Path:
    doc: dict[str, object] = {
        "name": "t",
        "seeds": [0, 1],
        "intentrec": "IntentRec",
        "reference": {"table1": "GRU", "table2": "IntentRec V1", "table3": "IntentRec V0"},
        "set": {"train.epochs": 1, "train.max_steps_per_epoch": 2},
        "datasets": [{"name": "ml", "config": str(REPO / "configs" / "tiny.yaml"),
                      "set": {"data.cache_dir": str(tmp_path / "cache")}}],
        "models": [
            {"name": "Popularity", "set": {"model.architecture": "popularity"}},
            {"name": "GRU", "set": {"model.architecture": "gru"}},
            {"name": "IntentRec", "set": {"model.variant": "V3"}, "tables": [1, 2, 3]},
            {"name": "IntentRec V3", "set": {"model.variant": "V3"}, "tables": [3], "expand": "single_heads"},
        ],
    }
    doc.update(overrides)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_invalid_suites_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown key 'modles'"):
        load_suite(_suite_file(tmp_path, modles=[]))
    with pytest.raises(ConfigError, match="'Nope' is not one of the models"):
        load_suite(_suite_file(tmp_path, intentrec="Nope"))
    with pytest.raises(ConfigError, match="repeated"):
        load_suite(_suite_file(tmp_path, models=[{"name": "GRU"}, {"name": "IntentRec"}, {"name": "GRU"}]))
    bad = _suite_file(tmp_path, datasets=[{"name": "ml", "config": str(REPO / "configs" / "tiny.yaml"),
                                           "set": {"model.variant": "V9"}}])
    with pytest.raises(ConfigError, match=r"(?s)suite dataset 'ml'.*model\.variant"):
        expand_runs(load_suite(bad), bad.parent)


def test_expansion_orders_overrides_and_expands_single_heads(tmp_path: Path) -> None:
    path = _suite_file(tmp_path, datasets=[{
        "name": "ml", "config": str(REPO / "configs" / "tiny.yaml"), "set": {"model.dropout": 0.3},
        "model_set": {"GRU": {"model.dropout": 0.5}},
    }])
    runs = expand_runs(load_suite(path), path.parent)
    keys = [r.key for r in runs]
    assert keys == ["ml/Popularity/seed0", "ml/GRU/seed0", "ml/GRU/seed1", "ml/IntentRec/seed0", "ml/IntentRec/seed1",
                    "ml/IntentRec V3 only-genre/seed0", "ml/IntentRec V3 only-genre/seed1",
                    "ml/IntentRec V3 only-recency/seed0", "ml/IntentRec V3 only-recency/seed1"]
    by_key = {r.key: r for r in runs}
    assert by_key["ml/GRU/seed1"].cfg.model.dropout == 0.5  # model_set beats the dataset's set
    assert by_key["ml/IntentRec/seed0"].cfg.model.dropout == 0.3
    assert by_key["ml/GRU/seed1"].cfg.train.seed == 1 and by_key["ml/GRU/seed1"].cfg.train.epochs == 1
    only = by_key["ml/IntentRec V3 only-recency/seed0"]
    assert only.cfg.model.heads == ("recency",) and only.single_head == "recency" and only.tables == (3,)
    assert by_key["ml/GRU/seed0"].config_hash != by_key["ml/GRU/seed1"].config_hash
    late = {r.key: r for r in expand_runs(load_suite(path), path.parent, ["model.dropout=0.1"])}
    assert late["ml/GRU/seed1"].cfg.model.dropout == 0.1  # --set wins over everything in the suite
    assert run_slug("IntentRec V3 only-genre") == "intentrec-v3-only-genre"


def _fake_run(root: Path, key: str, model: str, seed: int, tables: list[int], ndcg: np.ndarray,
              val: float, intents: dict[str, dict[str, float]], single_head: str | None = None) -> dict:
    run_dir = root / "runs" / run_slug(model) / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    users = np.asarray([str(i) for i in range(ndcg.size)])
    np.savez(run_dir / "per_target_test.npz", user_id=users, position=np.arange(ndcg.size), ndcg=ndcg,
             **{"ndcg@10": ndcg, "hr@10": (ndcg > 0).astype(float), "mrr": ndcg, "rank": np.ones(ndcg.size)})
    proto = {"split": "test", "protocol": "temporal", "ranking": "full catalogue (10 items)", "exclude_seen": True,
             "description": "d", "excluded_targets": {"cold_item": 0}}
    item = {"ndcg@10": float(ndcg.mean()), "hr@10": float((ndcg > 0).mean()), "mrr": float(ndcg.mean())}
    return {"key": key, "dataset": "ds", "model": model, "seed": seed, "tables": tables, "single_head": single_head,
            "heuristic": False, "status": "done", "run_dir": run_dir.relative_to(root).as_posix(),
            "per_target": (run_dir / "per_target_test.npz").relative_to(root).as_posix(),
            "test": {"item": item, "intents": intents, "n_targets": int(ndcg.size)},
            "validation": {"item": {"ndcg@10": val}, "intents": {}, "n_targets": int(ndcg.size)},
            "popularity_test": {"item": {}, "intents": {"action": {"accuracy": 0.5}}}, "protocol": proto,
            "wall_seconds": 60.0, "epochs_run": 3, "stop_reason": "early_stop"}


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # a constant paired difference, on purpose
def test_report_tables_relative_values_and_significance_by_hand(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.2, size=400)
    runs = {}
    # the reference (TransAct) at 0.1 mean; IntentRec clearly better on every target; SASRec better on validation
    # than TransAct but worse on test: the best baseline must be the validation winner (SASRec), not the test one
    for seed in (0, 1):
        runs[f"ds/TransAct/seed{seed}"] = _fake_run(tmp_path, f"ds/TransAct/seed{seed}", "TransAct", seed, [1],
                                                    base, 0.10, {"action": {"accuracy": 0.50, "macro_f1": 0.3}})
        runs[f"ds/SASRec/seed{seed}"] = _fake_run(tmp_path, f"ds/SASRec/seed{seed}", "SASRec", seed, [1],
                                                  base * 0.9, 0.20, {})
        runs[f"ds/IntentRec/seed{seed}"] = _fake_run(
            tmp_path, f"ds/IntentRec/seed{seed}", "IntentRec", seed, [1, 3], base + 0.01 * (seed + 1), 0.15,
            {"action": {"accuracy": 0.55 + 0.01 * seed, "macro_f1": 0.3}})
    runs["ds/V3 only-action/seed0"] = _fake_run(tmp_path, "ds/V3 only-action/seed0", "V3 only-action", 0, [3],
                                                base, 0.1, {"action": {"accuracy": 0.50}}, single_head="action")
    runs["ds/Broken/seed0"] = {"key": "ds/Broken/seed0", "dataset": "ds", "model": "Broken", "seed": 0,
                               "status": "failed", "error": "RuntimeError: boom"}
    doc = {
        "suite": {"name": "t", "description": "", "metric": "ndcg@10", "intentrec": "IntentRec",
                  "reference": {"table1": "TransAct", "table2": "V1", "table3": "V0"},
                  "datasets": [{"name": "ds"}],
                  "models": [{"name": n} for n in ("TransAct", "SASRec", "IntentRec", "V3")]},
        "runs": runs, "datasets": {"ds": {"description": "toy", "ceilings": {"action": 0.8}}},
        "machine": {"processor": "x", "cpu_count": 2, "python": "3", "torch": "2"},
    }
    path = report_mod.write_report(doc, tmp_path)
    text = path.read_text(encoding="utf-8")
    mean_star = float(np.mean([(base + 0.01).mean(), (base + 0.02).mean()]))
    rel = 100 * (mean_star - base.mean()) / base.mean()
    assert f"{mean_star:.4f} ± 0.0071 ({rel:+.2f}%)" in text  # std of the two seed means (ddof=1) = 0.01/sqrt(2)
    assert "Best baseline on **validation** ndcg@10: **SASRec**" in text
    assert "IntentRec beats SASRec" in text and "IntentRec beats TransAct" in text
    assert "| SASRec | 0.0" in text and "N/A" in text  # SASRec has no intent head
    # Table 3: the intent column of V3-all is relative to the single-head variant (0.555 vs 0.50 = +11%)
    assert "0.5550 ± 0.0071 (+11.00%)" in text
    assert "| action | 0.8000 | 0.5000 | 0.5550 |" in text  # simulator ceiling row
    assert "`ds/Broken/seed0`: RuntimeError: boom" in text
    assert (tmp_path / "plots" / "ds_ndcg10.png").stat().st_size > 1000

    star = report_mod._Model("IntentRec", [runs["ds/IntentRec/seed0"], runs["ds/IntentRec/seed1"]])
    other = report_mod._Model("TransAct", [runs["ds/TransAct/seed0"], runs["ds/TransAct/seed1"]])
    s = report_mod.significance(tmp_path, star, other, "ndcg@10")
    assert s is not None and s["seeds"] == [0, 1] and s["n_targets"] == 400
    assert s["diff"] == pytest.approx(0.015) and s["p"] < 1e-6 and s["ci_low"] == pytest.approx(0.015)


def test_significance_refuses_unpaired_targets(tmp_path: Path) -> None:
    a = _fake_run(tmp_path, "ds/A/seed0", "A", 0, [1], np.full(10, 0.2), 0.1, {})
    b = _fake_run(tmp_path, "ds/B/seed0", "B", 0, [1], np.full(11, 0.1), 0.1, {})
    assert report_mod.significance(tmp_path, report_mod._Model("A", [a]), report_mod._Model("B", [b]),
                                   "ndcg@10") is None


def test_run_suite_resumes_reuses_and_records_failures(tmp_path: Path) -> None:
    path = _suite_file(tmp_path, seeds=[0], models=[
        {"name": "GRU", "set": {"model.architecture": "gru"}},
        {"name": "IntentRec", "set": {"model.variant": "V3"}, "tables": [1, 2, 3]},
    ])
    out = tmp_path / "out"
    logs: list[str] = []
    doc = run_suite(path, out, progress=False, log=logs.append)
    assert {k: r["status"] for k, r in doc["runs"].items()} == {"ml/GRU/seed0": "done", "ml/IntentRec/seed0": "done"}
    rec = doc["runs"]["ml/GRU/seed0"]
    assert (out / rec["per_target"]).is_file() and rec["epochs_run"] == 1 and rec["test"]["n_targets"] > 0
    assert json.loads((out / "results.json").read_text())["runs"]["ml/GRU/seed0"]["config_hash"] == rec["config_hash"]
    assert "## Summary" in (out / "report.md").read_text()

    # unchanged: reused, not retrained
    logs.clear()
    run_suite(path, out, progress=False, log=logs.append)
    assert sum("reused" in line for line in logs) == 2

    # a changed config retrains that run only; a run that raises is recorded and the suite goes on
    path = _suite_file(tmp_path, seeds=[0], models=[
        {"name": "GRU", "set": {"model.architecture": "gru", "model.d_model": 16, "model.item_emb_dim": 16}},
        {"name": "IntentRec", "set": {"model.variant": "V3"}, "tables": [1, 2, 3]},
        {"name": "Broken", "set": {"model.architecture": "gru", "model.heads": ["genre", "genre"]}},
    ])
    logs.clear()
    doc = run_suite(path, out, progress=False, log=logs.append)
    assert sum("reused" in line for line in logs) == 1
    assert doc["runs"]["ml/GRU/seed0"]["config"]["model"]["d_model"] == 16
    broken = doc["runs"]["ml/Broken/seed0"]
    assert broken["status"] == "failed" and "genre" in broken["error"]
    assert "## Failed runs" in (out / "report.md").read_text()


def test_invocations_sharing_an_output_folder_split_the_runs_and_keep_each_others_records(tmp_path: Path) -> None:
    from intentrec.benchmark import runner
    from intentrec.train.checkpoint import atomic_write_text

    path = _suite_file(tmp_path, seeds=[0], intentrec="GRU", models=[
        {"name": "Popularity", "set": {"model.architecture": "popularity"}},
        {"name": "GRU", "set": {"model.architecture": "gru"}, "tables": [1, 2, 3]},
    ], reference={"table1": "Popularity", "table2": "GRU", "table3": "GRU"})
    out = tmp_path / "out"
    held = runner._claim(out / "locks" / "ml--gru--seed0.lock")  # another invocation is training GRU
    assert held is not None and runner._claim(out / "locks" / "ml--gru--seed0.lock") is None
    foreign = {"key": "ml/Other/seed0", "dataset": "ml", "model": "Other", "seed": 0, "tables": [1],
               "status": "failed", "config_hash": "x", "error": "ValueError: elsewhere", "finished": "now"}
    logs: list[str] = []

    def log(line: str) -> None:
        logs.append(line)
        if "Popularity/seed0 (" in line:  # while this invocation works, another one records a run
            with runner._locked(out / "locks" / "results.lock"):
                results = out / "results.json"
                disk = (json.loads(results.read_text()) if results.exists()
                        else {"format": runner.RESULTS_FORMAT, "runs": {}, "datasets": {}})
                disk["runs"][foreign["key"]] = foreign
                atomic_write_text(results, json.dumps(disk))

    doc = run_suite(path, out, progress=False, log=log)
    assert any("GRU/seed0: being trained by another invocation" in line for line in logs)
    assert set(doc["runs"]) == {"ml/Popularity/seed0", "ml/Other/seed0"} and doc["runs"]["ml/Other/seed0"] == foreign
    assert set(json.loads((out / "results.json").read_text())["runs"]) == set(doc["runs"])

    held.close()  # the other invocation stopped: GRU is trained now, and nothing recorded is lost
    logs.clear()
    doc = run_suite(path, out, progress=False, log=logs.append)
    assert doc["runs"]["ml/GRU/seed0"]["status"] == "done" and doc["runs"]["ml/Other/seed0"] == foreign
    assert sum("reused" in line for line in logs) == 1  # Popularity


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # a constant paired difference, on purpose
def test_report_gives_refits_apart_with_their_own_paired_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 0.2, size=300)
    runs = {}
    for seed in (0, 1):
        for model, published, refitted, val in (("SASRec", base, base + 0.02, 0.2), ("IntentRec", base, base + 0.03, 0.1)):
            key = f"ds/{model}/seed{seed}"
            run = _fake_run(tmp_path, key, model, seed, [1], published, val, {})
            refit_dir = tmp_path / "refits" / run_slug(model) / f"seed{seed}"
            refit_dir.mkdir(parents=True)
            np.savez(refit_dir / "per_target_test.npz", user_id=np.asarray([str(i) for i in range(base.size)]),
                     position=np.arange(base.size), **{"ndcg@10": refitted, "hr@10": refitted, "mrr": refitted})
            run["refit"] = {"status": "done", "config_hash": "h", "epochs": 3 + seed, "epochs_run": 3 + seed,
                            "per_target": (refit_dir / "per_target_test.npz").relative_to(tmp_path).as_posix(),
                            "test": {"item": {"ndcg@10": float(refitted.mean())}, "intents": {}, "n_targets": 300},
                            "wall_seconds": 120.0}
            runs[key] = run
    runs["ds/SASRec/seed1"]["refit"] = {"status": "failed", "error": "boom"}  # one refit failed: one seed left
    doc = {"suite": {"name": "t", "description": "", "metric": "ndcg@10", "intentrec": "IntentRec",
                     "reference": {"table1": "SASRec", "table2": "V1", "table3": "V0"},
                     "datasets": [{"name": "ds"}], "models": [{"name": "SASRec"}, {"name": "IntentRec"}]},
           "runs": runs, "datasets": {"ds": {"description": "toy"}},
           "machine": {"processor": "x", "cpu_count": 2, "python": "3", "torch": "2"}}
    text = report_mod.write_report(doc, tmp_path).read_text(encoding="utf-8")
    assert "### Refit on training + validation events (a variant protocol)" in text
    b = base.mean()
    # IntentRec: published b, refit b + 0.03 on both seeds (+x% of b); SASRec: one refit left (seed 0)
    assert f"| IntentRec | {b:.4f} ± 0.0000 | {b + 0.03:.4f} ± 0.0000 ({100 * 0.03 / b:+.2f}%) | 3, 4 |" in text
    assert f"| SASRec | {b:.4f} ± 0.0000 | {b + 0.02:.4f} ({100 * 0.02 / b:+.2f}%) | 3, boom |" not in text
    assert f"| SASRec | {b:.4f} ± 0.0000 | {b + 0.02:.4f} ({100 * 0.02 / b:+.2f}%) | 3, - |" in text
    # the refits are paired on seed 0 (the seeds both have): a constant +0.01, which beats
    assert "IntentRec beats SASRec" in text and f"{b + 0.03:.4f} vs {b + 0.02:.4f}" in text
    assert "| ds (refit) | SASRec |" in text  # its own summary row, after the published one
    assert text.index("| ds | SASRec |") < text.index("| ds (refit) | SASRec |")
    assert "refit wall minutes" in text and "| IntentRec | 2 | 2.0 | 3, 3 | early_stop, early_stop | 4.0 |" in text
    assert (tmp_path / "plots" / "ds_ndcg10.png").stat().st_size > 1000


def test_run_suite_refits_each_run_reuses_the_refit_and_redoes_it_when_the_run_changes(tmp_path: Path) -> None:
    models = [{"name": "Popularity", "set": {"model.architecture": "popularity"}},
              {"name": "IntentRec", "set": {"model.variant": "V3"}, "tables": [1, 2, 3]}]
    path = _suite_file(tmp_path, seeds=[0], refit=True, models=models)
    out = tmp_path / "out"
    logs: list[str] = []
    doc = run_suite(path, out, progress=False, log=logs.append)
    for key in ("ml/Popularity/seed0", "ml/IntentRec/seed0"):
        refit = doc["runs"][key]["refit"]
        assert refit["status"] == "done", refit
        refit_dir = out / refit["run_dir"]
        assert refit_dir.parent.parent.parent.name == "refits" and (refit_dir / "refit.json").is_file()
        assert refit["test"]["n_targets"] == doc["runs"][key]["test"]["n_targets"]
    assert doc["runs"]["ml/IntentRec/seed0"]["refit"]["epochs"] == doc["runs"]["ml/IntentRec/seed0"]["best_epoch"] == 1
    text = (out / "report.md").read_text()
    assert "### Refit on training + validation events" in text and "| ml (refit) |" in text

    logs.clear()
    run_suite(path, out, progress=False, log=logs.append)
    assert sum("refit: done earlier" in line for line in logs) == 2

    # --no-refit: nothing refitted, the refits on record stay
    logs.clear()
    doc = run_suite(path, out, refit=False, progress=False, log=logs.append)
    assert not any("refit" in line for line in logs) and doc["runs"]["ml/IntentRec/seed0"]["refit"]["status"] == "done"

    # the run's config changed: the run is retrained and its old refit folder replaced by a new refit
    models[1]["set"] = {"model.variant": "V3", "model.dropout": 0.2}
    path = _suite_file(tmp_path, seeds=[0], refit=True, models=models)
    logs.clear()
    doc = run_suite(path, out, progress=False, log=logs.append)
    refit = doc["runs"]["ml/IntentRec/seed0"]["refit"]
    assert refit["status"] == "done" and refit["config_hash"] == doc["runs"]["ml/IntentRec/seed0"]["config_hash"]
    assert json.loads((out / refit["run_dir"] / "config.json").read_text())["model"]["dropout"] == 0.2
    assert sum("refit: done earlier" in line for line in logs) == 1  # Popularity's


def test_dataset_refit_overrides_the_suite(tmp_path: Path) -> None:
    path = _suite_file(tmp_path, refit=True, datasets=[{"name": "ml", "config": str(REPO / "configs" / "tiny.yaml"),
                                                        "refit": False}])
    assert not any(r.refit for r in expand_runs(load_suite(path), path.parent))
    assert all(r.refit for r in expand_runs(load_suite(path), path.parent, refit=True))
    path = _suite_file(tmp_path, datasets=[{"name": "ml", "config": str(REPO / "configs" / "tiny.yaml")}])
    assert not any(r.refit for r in expand_runs(load_suite(path), path.parent))
