"""Fixtures for the data-stage tests: tiny synthetic logs written to tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from intentrec.config import DataConfig

WriteTable = Callable[..., Path]
TableConfig = Callable[..., DataConfig]


def _write(frame: pl.DataFrame, path: Path) -> Path:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".jsonl":
        frame.write_ndjson(path)
    elif suffix == ".tsv":
        frame.write_csv(path, separator="\t")
    else:
        frame.write_csv(path)
    return path


@pytest.fixture
def write_table(tmp_path: Path) -> WriteTable:
    """``write_table(columns, name="log.csv")`` writes a dict of columns (or a frame) and returns its path."""

    def write(columns: Mapping[str, Sequence[Any]] | pl.DataFrame, name: str = "log.csv") -> Path:
        frame = columns if isinstance(columns, pl.DataFrame) else pl.DataFrame(dict(columns), strict=False)
        return _write(frame, tmp_path / name)

    return write


@pytest.fixture
def table_config() -> TableConfig:
    """``table_config(path, **data_section)`` -> a DataConfig for the table adapter (no cache unless given)."""

    def make(path: Path, *, columns: Mapping[str, Any] | None = None, source: Mapping[str, Any] | None = None,
             **data: Any) -> DataConfig:
        src: dict[str, Any] = {"adapter": "table", "path": str(path), **(source or {})}
        if columns is not None:
            src["columns"] = dict(columns)
        data.setdefault("cache_dir", None)
        data.setdefault("clean", {"min_events_per_user": 1})
        return DataConfig.model_validate({"source": src, **data})

    return make
