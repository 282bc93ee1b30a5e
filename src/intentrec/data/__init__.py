"""data stage: raw logs -> :class:`~intentrec.structs.EncodedSequences`. The only package that imports Polars.

Public API (imported lazily, so ``import intentrec.data`` stays light):

* :func:`prepare` — read, clean, sessionise, label, split and encode (cached on disk);
* :func:`describe` — dataset statistics as a plain dict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intentrec.data.pipeline import prepare
    from intentrec.data.summary import describe

__all__ = ["describe", "prepare"]


def __getattr__(name: str) -> Any:
    if name == "prepare":
        from intentrec.data.pipeline import prepare

        return prepare
    if name == "describe":
        from intentrec.data.summary import describe

        return describe
    raise AttributeError(f"module 'intentrec.data' has no attribute {name!r}")
