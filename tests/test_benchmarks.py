"""benchmarks/compare_runs.py pairs two runs' per-target values and tests the difference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from intentrec import workflows
from intentrec.config import load_config

REPO = Path(__file__).resolve().parents[1]


def test_compare_runs_reports_a_paired_test(tmp_path: Path) -> None:
    for name, variant in (("a", "V3"), ("b", "V0")):
        cfg = load_config(REPO / "configs" / "tiny.yaml", [
            f"model.variant={variant}", "train.epochs=1", "train.max_steps_per_epoch=3",
            f"data.cache_dir={tmp_path / 'cache'}",
        ])
        workflows.train(cfg, tmp_path / name, progress=False, log=lambda _: None)
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "compare_runs.py"), str(tmp_path / "a"), str(tmp_path / "b")],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "IntentRec V3" in result.stdout and "IntentRec V0" in result.stdout
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert 0.0 <= doc["p_value"] <= 1.0 and doc["bootstrap_95ci"][0] <= doc["bootstrap_95ci"][1]
