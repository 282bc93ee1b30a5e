"""Reading tables (CSV/TSV, Parquet, JSONL/NDJSON) and text files with clear errors, and parsing dates.

The format is chosen by extension: ``.csv`` (comma), ``.tsv``/``.tab`` (tab), ``.parquet``/``.pq`` (also
``*.parquet.snappy``), ``.jsonl``/``.ndjson`` (one JSON object per line) and ``.json`` (JSON lines or an array of
objects).

Bad input is refused with the file, the line or row and the fix, never silently altered:

* text files (CSV/TSV/JSON) must be UTF-8: the first invalid byte is reported with its line, byte offset and
  (CSV/TSV) column, and the hint to re-encode the file (:func:`check_utf8`); nothing is decoded lossily;
* a CSV/TSV header that names a column twice is a :class:`~intentrec.errors.SchemaError`;
* CSV/TSV column types are inferred from the first 10,000 rows; when a later value does not fit (text in a
  number column), the file is read again with types inferred from every row, so the column's own check (e.g. an
  unparsable timestamp) reports the exact row instead of a parser error;
* a line with more or fewer fields than the header is reported by line number;
* JSON integers beyond 64 bits (e.g. 40-digit ids) are kept as their digits (text), never rounded.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from intentrec.errors import DataError, SchemaError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "check_file",
    "check_header",
    "check_id_columns",
    "check_utf8",
    "csv_error",
    "csv_header",
    "date_to_seconds",
    "first_bad_row",
    "is_parse_error",
    "polars_reason",
    "read_csv_checked",
    "read_json_records",
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
        raise DataError(f"cannot read {path}: {polars_reason(err)} (check that it is a valid {fmt} file)") from None


_UTF8_CHUNK = 1 << 23


def _utf8_column(path: Path, line: bytes, fmt: str) -> str:
    """Best effort: the column of a CSV/TSV line (or the JSON key) holding an invalid UTF-8 byte, as text."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        if fmt in {"csv", "tsv"}:
            sep = "," if fmt == "csv" else "\t"
            with path.open("rb") as fh:
                header_line = fh.readline().decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
            header = next(csv.reader([header_line], delimiter=sep))
            fields = next(csv.reader([text], delimiter=sep))
            for j, value in enumerate(fields):
                if "\ufffd" in value:
                    return f", column {header[j]!r}" if j < len(header) else f", field {j + 1}"
        elif fmt in {"ndjson", "json"}:
            doc = json.loads(text.strip().rstrip(","))
            if isinstance(doc, dict):
                for name, value in doc.items():
                    if "\ufffd" in str(name) or "\ufffd" in str(value):
                        return f", key {name!r}"
    except (ValueError, StopIteration, csv.Error, OSError):
        pass
    return ""


def check_utf8(path: Path, key: str) -> None:
    """Check that a text table is valid UTF-8, reading it in chunks (memory bounded by one chunk).

    Nothing is decoded lossily: an id with a stray Latin-1 byte would otherwise become a different id (and two
    distinct ids could merge into one).

    Args:
        path: the file (CSV/TSV/JSON).
        key: the config key that names it (for the message).

    Raises:
        DataError: the file holds a byte sequence that is not UTF-8; the message names the line (1-based, the
            header is line 1), the byte offset, the column when it can be found, and how to re-encode the file.
    """
    fmt = table_format(path)
    offset = 0  # file offset of buf[0]
    lines = 0  # newlines before buf[0]
    carry = b""
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(_UTF8_CHUNK)
            buf = carry + chunk
            if not buf:
                return
            try:
                codecs.decode(buf, "utf-8")
                good = len(buf)
            except UnicodeDecodeError as err:
                if chunk and err.reason == "unexpected end of data":  # a character cut by the chunk boundary
                    good = err.start
                else:
                    start = buf.rfind(b"\n", 0, err.start) + 1
                    end = buf.find(b"\n", err.start)
                    line = buf[start:end if end >= 0 else len(buf)]
                    where = _utf8_column(path, line, fmt)
                    bad = buf[err.start:err.end]
                    line_no = lines + buf.count(b"\n", 0, err.start) + 1
                    raise DataError(
                        f"{path}: line {line_no} is not valid UTF-8 (byte offset "
                        f"{offset + err.start}, bytes {bad!r}{where}). Re-save the file as UTF-8, e.g. `iconv -f "
                        f"latin1 -t utf-8 {path.name} > utf8-{path.name}` when it is Latin-1, and point {key} at the "
                        "new file"
                    ) from None
            lines += buf.count(b"\n", 0, good)
            offset += good
            carry = buf[good:]
            if not chunk:
                return


def polars_reason(err: BaseException) -> str:
    """The first line of a Polars error, without its advice about Python arguments the user cannot set."""
    text = str(err).strip()
    first = text.splitlines()[0].strip() if text else type(err).__name__
    return first.removesuffix(".")


def check_header(names: Sequence[str], path: Path) -> None:
    """Refuse a header that names a column twice (which of the two would be the user id?).

    Raises:
        SchemaError: a name appears more than once; the message lists the positions.
    """
    seen: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        seen.setdefault(name, []).append(j + 1)
    for name, where in seen.items():
        if len(where) > 1:
            raise SchemaError(
                f"{path}: the header names column {name!r} {len(where)} times (columns {where}); rename or drop "
                "the extra column so that every column name is unique"
            )


def csv_header(path: Path, sep: str) -> list[str]:
    """The raw header fields of a CSV/TSV file (duplicates kept, unlike Polars, which renames them)."""
    with path.open("rb") as fh:
        first = fh.readline().decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    try:
        return next(csv.reader([first], delimiter=sep))
    except (StopIteration, csv.Error):
        return []


def _ragged_line(path: Path, sep: str) -> str:
    """Best effort: the first line whose number of fields differs from the header's (for an error message)."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter=sep)
            header = next(reader, [])
            for row in reader:
                if row and len(row) != len(header):
                    return (f"; line {reader.line_num} has {len(row)} fields but the header has {len(header)} "
                            "(a missing or extra separator, or an unquoted separator inside a value)")
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return ""


def is_parse_error(err: BaseException) -> bool:
    """Whether a Polars error is a value that does not fit the column type inferred from the first rows."""
    return "could not parse" in str(err) or "invalid primitive value" in str(err)


def read_csv_checked(path: Path, sep: str, string_columns: Sequence[str] = ()) -> pl.DataFrame:
    """Read a UTF-8 CSV/TSV (checked by the caller) with ``string_columns`` as text.

    Types come from the first 10,000 rows; when a later value does not fit, the file is read again with types
    inferred from every row (so a number column with a stray word becomes text, and its own check names the row).

    Raises:
        SchemaError: the header names a column twice.
        DataError: the file cannot be parsed (the message names the first ragged line when there is one).
    """
    names = csv_header(path, sep)
    check_header(names, path)
    overrides = {c: pl.String for c in string_columns if c in names}
    try:
        try:
            return pl.read_csv(path, separator=sep, schema_overrides=overrides, infer_schema_length=10_000)
        except pl.exceptions.ComputeError as err:
            if not is_parse_error(err):
                raise
        return pl.read_csv(path, separator=sep, schema_overrides=overrides, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise csv_error(path, sep, err) from None


def csv_error(path: Path, sep: str, err: BaseException) -> DataError:
    """The error for a CSV/TSV file Polars cannot parse: its reason, and the first ragged line when there is one."""
    return DataError(
        f"cannot read {path}: {polars_reason(err)}{_ragged_line(path, sep)} (check that it is a valid "
        f"{'comma' if sep == ',' else 'tab'}-separated file with one header line)"
    )


def _json_int(text: str) -> int | str:
    """JSON integers that fit 64 bits stay integers; longer ones (e.g. 40-digit ids) keep their digits as text."""
    value = int(text)
    return value if -(2**63) <= value < 2**63 else text


def read_json_records(path: Path) -> pl.DataFrame:
    """Read JSON lines or a JSON array of objects with Python's parser (the fallback when Polars cannot, e.g. for
    integers beyond 64 bits, which are kept as text).

    Raises:
        DataError: a line (or the array) is not valid JSON, or a record is not an object; the message names the line.
    """
    text = path.read_text(encoding="utf-8")
    records: list[Any] = []
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text, parse_int=_json_int)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
        lines: list[int] = list(range(1, len(records) + 1))
        what = "element"
    else:
        lines = []
        for n, line in enumerate(io.StringIO(text), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line, parse_int=_json_int))
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}: line {n} is not valid JSON ({err.msg} at column {err.pos + 1}); each line must hold one "
                    "JSON object"
                ) from None
            lines.append(n)
        what = "line"
    for n, record in zip(lines, records, strict=True):
        if not isinstance(record, dict):
            raise DataError(f"{path}: {what} {n} is a JSON {type(record).__name__}, not an object of column values")
    try:
        return pl.DataFrame(records, infer_schema_length=None, strict=False)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as err:
        raise DataError(f"cannot read {path}: {polars_reason(err)} (values of a column must share one type)") from None


def _nested(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Object)


def check_id_columns(schema: Mapping[str, pl.DataType], columns: Sequence[str], path: Path) -> None:
    """Refuse id columns that hold lists or records (an id is one string or integer per row).

    Raises:
        SchemaError: names the file, the column and its type.
    """
    for c in columns:
        if c in schema and _nested(schema[c]):
            raise SchemaError(
                f"{path}: column {c!r} holds {schema[c]} values, but an id column needs one value per row (a "
                "string or an integer); flatten the file or point the config at another column"
            )


def read_table(path: Path, key: str, *, string_columns: Sequence[str] = ()) -> pl.DataFrame:
    """Read a CSV/TSV/Parquet/JSONL file into a Polars frame.

    Args:
        path: the file; the format follows the extension. Text formats must be UTF-8.
        key: the config key that names the file (for messages).
        string_columns: columns read (CSV/TSV) or cast (other formats) as Utf8 — id columns, so that ``007``
            keeps its leading zeros and ids are never assumed integer (nor rounded: JSON integers beyond 64 bits
            keep their digits).

    Returns:
        The table, with at least one row.

    Raises:
        SchemaError: a CSV/TSV header names a column twice, or an id column holds lists or records.
        DataError: the file is missing, empty, not UTF-8, unreadable, or has no rows.
    """
    check_file(path, key)
    fmt = table_format(path)
    if fmt != "parquet":
        check_utf8(path, key)
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(path)
        elif fmt in {"csv", "tsv"}:
            frame = read_csv_checked(path, "," if fmt == "csv" else "\t", string_columns)
        else:
            try:
                if fmt == "ndjson" or not path.read_text(encoding="utf-8").lstrip().startswith("["):
                    frame = pl.read_ndjson(path, infer_schema_length=10_000)
                else:
                    frame = pl.read_json(path)
            except (pl.exceptions.PolarsError, ValueError):
                frame = read_json_records(path)  # Python's parser: ids beyond 64 bits, and line numbers in errors
    except (pl.exceptions.PolarsError, OSError, ValueError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {polars_reason(err)} (check that it is a valid {fmt} file)") from None
    if frame.height == 0:
        raise DataError(f"{path} has no data rows (only a header or an empty table); point {key} at a file with data")
    check_id_columns(frame.schema, string_columns, path)
    casts = [pl.col(c).cast(pl.String) for c in string_columns if c in frame.columns and frame.schema[c] != pl.String]
    if casts:
        try:
            frame = frame.with_columns(casts)
        except pl.exceptions.PolarsError as err:
            raise SchemaError(
                f"{path}: cannot read id columns {list(string_columns)} as text: {polars_reason(err)}"
            ) from None
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
