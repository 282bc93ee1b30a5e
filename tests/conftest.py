"""Shared test fixtures: real-data location, one torch thread, tiny trained runs and their bundles (trained once
per test session; used by the serving and analysis tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real datasets folder (``<repo>/../shared/data``, or ``$INTENTREC_SHARED_DATA``); skips if absent."""
    env = os.environ.get("INTENTREC_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real datasets not available: {path} is missing (set INTENTREC_SHARED_DATA to the folder)")
    return path


@pytest.fixture(autouse=True)
def _one_torch_thread():  # type: ignore[no-untyped-def]
    """Tiny test models run fastest (and never oversubscribe the 2 CI cores) on one intra-op thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(tmp: Path, config: str, overrides: list[str]) -> Path:
    from intentrec import workflows
    from intentrec.config import load_config

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
    from intentrec import workflows

    return workflows.export(tiny_run, tmp_path_factory.mktemp("bundle") / "bundle")


@pytest.fixture(scope="session")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IntentRec V3 on the tiny streaming simulator (repeat-with-series, genre, format, recency intents)."""
    return _train(tmp_path_factory.mktemp("sim"), "streaming_sim.yaml", [
        "data.source.name=tiny", "model.max_len=30", "model.d_model=32", "model.item_emb_dim=32", "model.d_proj=16",
        "model.d_short=16",
    ])


@pytest.fixture(scope="session")
def sim_bundle(sim_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of :func:`sim_run`."""
    from intentrec import workflows

    return workflows.export(sim_run, tmp_path_factory.mktemp("sim-bundle") / "bundle")
