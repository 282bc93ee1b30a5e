"""Reading tables (CSV/TSV, Parquet, JSONL/NDJSON) and text files with clear errors, and parsing dates.

The format is chosen by extension: ``.csv`` (comma), ``.tsv``/``.tab`` (tab), ``.parquet``/``.pq`` (also
``*.parquet.snappy``), ``.jsonl``/``.ndjson`` (one JSON object per line) and ``.json`` (JSON lines or an array of
objects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from intentrec.errors import DataError, SchemaError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "check_file",
    "date_to_seconds",
    "first_bad_row",
    "read_table",
    "read_text",
    "table_columns",
    "table_format",
    "write_table",
]

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")

_TZ_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%:z",
    "%Y-%m-%d %H:%M:%S%:z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
)
_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%d-%b-%Y",
    "%Y%m%d",
)


def check_file(path: Path, key: str) -> Path:
    """Check that ``path`` is an existing, non-empty file.

    Args:
        path: the file.
        key: the config key that names it (for the message).

    Returns:
        The path.

    Raises:
        DataError: the file does not exist, is a folder, or is empty.
    """
    if not path.exists():
        raise DataError(f"file not found: {path} (set {key} to an existing file)")
    if not path.is_file():
        raise DataError(f"{path} is not a file (set {key} to a file, not a folder)")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); point {key} at a file with data")
    return path


def table_format(path: Path) -> str:
    """The table format of a file from its extension: parquet, csv, tsv, ndjson or json (DataError otherwise)."""
    suffixes = [s.lower() for s in path.suffixes]
    if not suffixes:
        raise DataError(f"{path}: cannot tell the format without an extension; use one of {SUPPORTED_SUFFIXES}")
    last = suffixes[-1]
    if last in {".snappy", ".gz", ".zst"} and len(suffixes) > 1 and suffixes[-2] in {".parquet", ".pq"}:
        return "parquet"
    if last in {".parquet", ".pq"}:
        return "parquet"
    if last == ".csv":
        return "csv"
    if last in {".tsv", ".tab"}:
        return "tsv"
    if last in {".jsonl", ".ndjson"}:
        return "ndjson"
    if last == ".json":
        return "json"
    raise DataError(f"{path}: unsupported file type {last!r}; use one of {SUPPORTED_SUFFIXES}")


def table_columns(path: Path, key: str) -> list[str]:
    """The column names of a table file, read cheaply (header or schema only).

    Raises:
        DataError: the file is missing, empty or unreadable.
    """
    check_file(path, key)
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            return list(pl.read_parquet_schema(path).keys())
        if fmt in {"csv", "tsv"}:
            sep = "," if fmt == "csv" else "\t"
            return pl.read_csv(path, separator=sep, n_rows=0, infer_schema=False).columns
        return read_table(path, key).columns
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err} (check that it is a valid {fmt} file)") from None


def read_table(path: Path, key: str, *, string_columns: Sequence[str] = ()) -> pl.DataFrame:
    """Read a CSV/TSV/Parquet/JSONL file into a Polars frame.

    Args:
        path: the file; the format follows the extension.
        key: the config key that names the file (for messages).
        string_columns: columns read (CSV/TSV) or cast (other formats) as Utf8 — id columns, so that ``007``
            keeps its leading zeros and ids are never assumed integer.

    Returns:
        The table, with at least one row.

    Raises:
        DataError: the file is missing, empty, unreadable, or has no rows.
    """
    check_file(path, key)
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(path)
        elif fmt in {"csv", "tsv"}:
            sep = "," if fmt == "csv" else "\t"
            header = pl.read_csv(path, separator=sep, n_rows=0, infer_schema=False).columns
            overrides = {c: pl.String for c in string_columns if c in header}
            frame = pl.read_csv(
                path, separator=sep, schema_overrides=overrides, infer_schema_length=10_000, encoding="utf8-lossy"
            )
        elif fmt == "ndjson":
            frame = pl.read_ndjson(path, infer_schema_length=10_000)
        else:
            text = path.read_text(encoding="utf-8").lstrip()
            frame = pl.read_json(path) if text.startswith("[") else pl.read_ndjson(path, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError, ValueError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {err} (check that it is a valid {fmt} file)") from None
    if frame.height == 0:
        raise DataError(f"{path} has no data rows (only a header or an empty table); point {key} at a file with data")
    casts = [pl.col(c).cast(pl.String) for c in string_columns if c in frame.columns and frame.schema[c] != pl.String]
    if casts:
        try:
            frame = frame.with_columns(casts)
        except pl.exceptions.PolarsError as err:
            raise SchemaError(f"{path}: cannot read id columns {list(string_columns)} as text: {err}") from None
    return frame


def read_text(path: Path, key: str, encodings: Sequence[str] = ("utf-8", "latin-1")) -> str:
    """Read a text file, trying each encoding in turn (MovieLens 100k/1M files are latin-1).

    Raises:
        DataError: the file is missing, empty, or cannot be decoded.
    """
    check_file(path, key)
    raw = path.read_bytes()
    for enc in encodings:
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise DataError(f"cannot decode {path} as any of {list(encodings)}; re-save it as UTF-8")


def first_bad_row(frame: pl.DataFrame, original: str, parsed: pl.Series, row_column: str = "_row") -> tuple[int, str]:
    """The first row whose non-null value of ``original`` failed to parse (``parsed`` is null there).

    Returns:
        (1-based data row number, the offending value as text).
    """
    bad = frame.select(pl.col(row_column), pl.col(original).cast(pl.String).alias("_v")).filter(
        parsed.is_null() & frame[original].is_not_null()
    )
    row, value = bad.row(0)
    return int(row) + 1, str(value)


def date_to_seconds(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """An expression converting a date column to Float64 seconds since the epoch (UTC).

    Strings are parsed with the first matching format among ISO 8601 (with or without time, fraction, ``Z`` or an
    offset), ``YYYY/MM/DD``, ``DD-Mon-YYYY`` (MovieLens 100k) and ``YYYYMMDD``; naive times are taken as UTC.
    Date/Datetime columns are converted; numbers are taken as seconds already. Unparsable values become null.

    Args:
        expr: the column expression.
        dtype: the column's type.
    """
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.Float64) / 1e6
    if isinstance(dtype, pl.Datetime):
        return expr.dt.epoch("us").cast(pl.Float64) / 1e6
    if dtype.is_numeric():
        return expr.cast(pl.Float64)
    text = expr.cast(pl.String).str.strip_chars().str.replace(r"Z$", "+00:00")
    parsed = [text.str.to_datetime(f, strict=False, time_unit="us").dt.convert_time_zone("UTC") for f in _TZ_FORMATS]
    parsed += [text.str.to_datetime(f, strict=False, time_unit="us").dt.replace_time_zone("UTC") for f in _NAIVE_FORMATS]
    return pl.coalesce(parsed).dt.epoch("us").cast(pl.Float64) / 1e6


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """Write a frame to Parquet (zstd), creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, compression="zstd")


def write_columns(columns: Mapping[str, Any], path: Path) -> None:
    """Write a column-oriented table (name -> list or numpy array; a 2-D array becomes a fixed-size list column)
    to Parquet atomically (a temporary sibling renamed into place)."""
    series = [pl.Series(name, values) for name, values in columns.items()]  # numpy 2-D -> Array(dtype, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pl.DataFrame(series).write_parquet(tmp, compression="zstd")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
