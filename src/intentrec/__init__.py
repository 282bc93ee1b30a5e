"""intentrec — IntentRec / FM-Intent: predict a user's session intents, then the next item.

The public API is re-exported lazily, so ``import intentrec`` stays light (no torch or polars at import time)::

    import intentrec
    cfg = intentrec.load_config("configs/tiny.yaml")
    outcome = intentrec.train(cfg, "runs/tiny")
    rec = intentrec.recommend("runs/tiny", user_id="1", k=10)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ExperimentConfig": "intentrec.config",
    "load_config": "intentrec.config",
    "prepare": "intentrec.data",
    "describe": "intentrec.data",
    "build_model": "intentrec.model",
    "train": "intentrec.workflows",
    "evaluate_run": "intentrec.workflows",
    "load_run": "intentrec.workflows",
    "recommend": "intentrec.workflows",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Import public names on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'intentrec' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
