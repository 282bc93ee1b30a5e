"""Every example in README.md works: the command blocks are run, the YAML snippets validate."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from intentrec.config import config_from_dict

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
BASH = [body for lang, body in BLOCKS if lang == "bash"]
QUICKSTART_SMOKE = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=3"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intentrec", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False)


def test_readme_opens_with_the_two_set_up_commands() -> None:
    assert "intentrec quickstart" in BASH[0]
    assert "pytest" in BASH[1] and "lint-imports" in BASH[1]
    assert "pip install torch==2.13.0" in BASH[0] and "pip install torch==2.13.0" in BASH[1]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    test_command = BASH[1].strip().split("&& ", 2)[-1]  # after creating and activating the venv
    assert test_command.replace("pip install ", "pip install -q ") in ci


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(REPO / "configs", work / "configs")
    shutil.copytree(REPO / "benchmarks", work / "benchmarks", ignore=shutil.ignore_patterns("*.png", "*.py"))
    return work


def test_quickstart_runs(workdir: Path) -> None:
    """The first README command's job, shortened to one epoch of three steps to keep CI fast."""
    result = _run(["quickstart", "--no-progress", "--out", "runs/quickstart", *QUICKSTART_SMOKE], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "popularity" in result.stdout and "Top-10" in result.stdout
    assert (workdir / "runs" / "quickstart" / "metrics.json").is_file()


def test_command_examples_run_in_order(workdir: Path) -> None:
    commands = [line.strip() for body in BASH[2:] for line in body.splitlines() if line.strip()]
    assert len(commands) >= 6
    for command in commands:
        args = shlex.split(command)
        assert args[0] == "intentrec", command
        result = _run([*args[1:], *(["--no-progress"] if args[1] in {"train", "refit", "benchmark"} else [])], workdir)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


def test_yaml_snippets_are_valid_configs() -> None:
    snippets = [body for lang, body in BLOCKS if lang == "yaml"]
    assert snippets
    for body in snippets:
        config_from_dict(yaml.safe_load(body), origin="README.md")
