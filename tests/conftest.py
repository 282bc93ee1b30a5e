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
