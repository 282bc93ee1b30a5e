"""Fixtures of the serving tests: tiny trained runs and their bundles (trained once per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from intentrec import workflows
from intentrec.config import load_config

REPO = Path(__file__).resolve().parents[2]


def _train(tmp: Path, config: str, overrides: list[str]) -> Path:
    cfg = load_config(REPO / "configs" / config, [
        *overrides, "train.epochs=1", "train.max_steps_per_epoch=3", f"data.cache_dir={tmp / 'cache'}",
    ])
    run = tmp / "run"
    workflows.train(cfg, run, progress=False, log=lambda _: None)
    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IntentRec V3 on the bundled MovieLens data (genre multi-label + recency intents), 3 training steps."""
    return _train(tmp_path_factory.mktemp("tiny"), "tiny.yaml", [])


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of :func:`tiny_run`."""
    return workflows.export(tiny_run, tmp_path_factory.mktemp("bundle") / "bundle")


@pytest.fixture(scope="session")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IntentRec V3 on the tiny streaming simulator (repeat-with-series, genre, format, recency intents)."""
    return _train(tmp_path_factory.mktemp("sim"), "streaming_sim.yaml", [
        "data.source.name=tiny", "model.max_len=30", "model.d_model=32", "model.d_proj=16", "model.d_short=16",
    ])


@pytest.fixture(scope="session")
def sim_bundle(sim_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of :func:`sim_run`."""
    return workflows.export(sim_run, tmp_path_factory.mktemp("sim-bundle") / "bundle")
