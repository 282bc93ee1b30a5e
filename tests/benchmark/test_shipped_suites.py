"""The suites shipped in benchmarks/: valid, expandable, and the smoke suite runs end to end from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentrec.benchmark.suite import expand_runs, load_suite
from intentrec.cli import app

REPO = Path(__file__).resolve().parents[2]
SUITES = sorted((REPO / "benchmarks").glob("*.yaml"))


@pytest.mark.parametrize("path", [p for p in SUITES if not p.name.startswith("search_space")], ids=lambda p: p.stem)
def test_shipped_suite_is_valid_and_expands(path: Path) -> None:
    suite = load_suite(path)
    runs = expand_runs(suite, path.parent)
    names = {r.model for r in runs}
    assert suite.intentrec in names and suite.reference.table1 in names
    for r in runs:  # every run of a dataset shares its data config: the paired tests rely on it
        first = next(x for x in runs if x.dataset == r.dataset)
        assert r.cfg.data == first.cfg.data


def test_smoke_suite_runs_from_the_cli_and_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the prepared-data cache lands here
    out = tmp_path / "smoke"
    result = CliRunner().invoke(app, ["benchmark", "--suite", str(REPO / "benchmarks" / "smoke.yaml"),
                                      "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["runs"] and all(r["status"] == "done" for r in doc["runs"].values())
    report = (out / "report.md").read_text()
    for heading in ("### Table 1", "### Table 2", "### Table 3", "### Significance"):
        assert heading in report
    assert list((out / "plots").glob("*.png"))
    again = CliRunner().invoke(app, ["benchmark", "--suite", str(REPO / "benchmarks" / "smoke.yaml"),
                                     "--out", str(out), "--report-only"])
    assert again.exit_code == 0 and "report:" in again.output
