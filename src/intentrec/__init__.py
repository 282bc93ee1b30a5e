"""intentrec — IntentRec / FM-Intent: predict a user's session intents, then the next item.

The public API is re-exported here lazily, so ``import intentrec`` stays light (no torch at import time).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
