"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
