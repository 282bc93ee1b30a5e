"""Exception hierarchy. Every error intentrec raises for bad input is an :class:`IntentRecError`.

Messages say what is wrong, where (file, column, key, row) and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "IntentRecError",
    "RequestError",
    "SchemaError",
    "UnknownItemError",
    "VocabError",
]


class IntentRecError(Exception):
    """Base class of every error intentrec raises on purpose."""


class ConfigError(IntentRecError):
    """A configuration file or override is invalid (the message names the key path)."""


class DataError(IntentRecError):
    """Input data cannot be read or is unusable (the message names the file and the fix)."""


class SchemaError(DataError):
    """A table lacks a required column or a column has the wrong type."""


class VocabError(IntentRecError):
    """A vocabulary lookup or vocabulary file is invalid."""


class UnknownItemError(VocabError):
    """Every item id in a request is unknown to the model's vocabulary."""


class CheckpointError(IntentRecError):
    """A checkpoint or run directory is missing, truncated or incompatible."""


class RequestError(IntentRecError):
    """A live request (HTTP body, batch-prediction row) is invalid: the message names the event and the field."""
