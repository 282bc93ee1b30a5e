"""Out-of-core event reading and Parquet writing for batch prediction.

:func:`iter_histories` streams an events file (CSV/TSV/Parquet/JSONL) of any size as complete per-user (or
per-session) histories, with memory bounded by the chunk size and the longest single history: the file is first
sorted by (key, time) with Polars' streaming engine into a temporary Parquet file, which is then read in record
batches; a history cut by a batch boundary is carried over to the next batch.

:class:`ParquetRowWriter` writes result rows in row groups to a temporary file renamed into place on success, so
a killed job never leaves a file that looks complete.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from intentrec.data.io import check_file, check_utf8, date_to_seconds, polars_reason, table_format
from intentrec.data.schema import ITEM_ID, SESSION_ID, TIMESTAMP, USER_ID
from intentrec.errors import DataError, SchemaError

__all__ = ["History", "ParquetRowWriter", "count_rows", "iter_histories"]


@dataclass(frozen=True)
class History:
    """One user's (or session's) events, oldest first."""

    key: str
    """The user id (or ``user_id/session_id``)."""
    item_ids: list[str]
    """(l,) raw item ids."""
    timestamps: np.ndarray
    """(l,) float64 seconds since the epoch (NaN where missing)."""
    attributes: dict[str, list[Any]]
    """Extra interaction columns by name, each a list of l values."""


def _scan(path: Path, key: str) -> pl.LazyFrame:
    check_file(path, key)
    fmt = table_format(path)
    if fmt != "parquet":
        check_utf8(path, key)  # text must be UTF-8: a lossy decode could turn an id into another one
    try:
        if fmt == "parquet":
            return pl.scan_parquet(path)
        if fmt in {"csv", "tsv"}:
            return pl.scan_csv(path, separator="," if fmt == "csv" else "\t", infer_schema_length=10_000)
        if fmt == "ndjson":
            return pl.scan_ndjson(path, infer_schema_length=10_000)
        return pl.read_json(path).lazy()  # a JSON array is read whole
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {polars_reason(err)} (check that it is a valid {fmt} file)") from None


def count_rows(path: str | os.PathLike[str]) -> int:
    """Rows of a Parquet file (from its metadata)."""
    return int(pq.ParquetFile(path).metadata.num_rows)


def iter_histories(
    path: str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    attributes: Sequence[str] = (),
    by: str = "user",
    require_time: bool = True,
    chunk_rows: int = 100_000,
    tmp_dir: str | os.PathLike[str] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[History], int]]:
    """Stream complete histories from an events file.

    Args:
        path: the events file; needs ``user_id``, ``item_id`` and ``timestamp`` columns (after ``columns``).
        columns: canonical name -> your column name (e.g. ``{"user_id": "uid"}``), for ``user_id``, ``item_id``,
            ``timestamp`` and ``session_id``; the other columns keep their names.
        attributes: interaction columns the model reads (kept when present; missing ones are absent).
        by: ``user`` (one history per user) or ``session`` (per user and ``session_id``).
        require_time: fail without a timestamp column (else events keep the file order and get NaN times).
        chunk_rows: rows read per batch.
        tmp_dir: where the sorted temporary copy goes (default: next to the input).
        on_total: called once with the number of events, before the first chunk (for a progress bar).

    Yields:
        ``(histories, rows)``: complete histories and the number of input rows they hold, in (key, time) order.

    Raises:
        SchemaError: a required column is missing (the message lists the file's columns and the option to set).
        DataError: the file is unreadable or a timestamp cannot be parsed.
    """
    src = Path(path)
    lazy = _scan(src, "--input")
    try:
        schema = lazy.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(f"cannot read {src}: {err}") from None
    mapping = dict(columns or {})
    required = [USER_ID, ITEM_ID] + ([TIMESTAMP] if require_time else []) + ([SESSION_ID] if by == "session" else [])
    if by not in {"user", "session"}:
        raise DataError(f"--by must be 'user' or 'session', got {by!r}")
    names = {c: mapping.get(c, c) for c in required}
    time_col = mapping.get(TIMESTAMP, TIMESTAMP)
    has_time = time_col in schema
    missing = [f"{c} (column {n!r})" for c, n in names.items() if n not in schema]
    if missing:
        raise SchemaError(
            f"{src} lacks {', '.join(missing)}; its columns are {list(schema)}. Map yours with "
            "--column canonical=yours, e.g. --column user_id=userId --column item_id=movieId"
        )
    keep = [a for a in dict.fromkeys(attributes) if a in schema and a not in {*names.values(), time_col}]
    time = pl.lit(None, pl.Float64)
    if has_time:
        time = date_to_seconds(pl.col(time_col), schema[time_col])
        if schema[time_col] == pl.String:  # a text column may mix epoch seconds and dates
            time = pl.coalesce(pl.col(time_col).str.strip_chars().cast(pl.Float64, strict=False), time)
    raw_time = pl.col(time_col).cast(pl.String) if has_time else pl.lit(None, pl.String)
    key_expr = pl.col(names[USER_ID]).cast(pl.String)
    if by == "session":
        key_expr = pl.concat_str([key_expr, pl.lit("/"), pl.col(names[SESSION_ID]).cast(pl.String)])
    frame = lazy.select(
        key_expr.alias("_key"),
        pl.col(names[ITEM_ID]).cast(pl.String).alias(ITEM_ID),
        time.alias(TIMESTAMP),
        raw_time.alias("_raw_time"),
        *[pl.col(a) for a in keep],
    ).with_row_index("_row")
    tmp = Path(tmp_dir or src.parent) / f".{src.name}.sorted-{secrets.token_hex(6)}.parquet"
    try:
        try:
            frame.sort(["_key", TIMESTAMP, "_row"]).sink_parquet(tmp)
        except (pl.exceptions.PolarsError, OSError) as err:
            raise DataError(f"cannot read {src}: {err}") from None
        bad = pl.scan_parquet(tmp).filter(pl.col(TIMESTAMP).is_null() & pl.col("_raw_time").is_not_null())
        first = bad.select("_row", "_raw_time").head(1).collect()
        if first.height:
            row, raw = first.row(0)
            raise DataError(
                f"{src}: row {row + 1} has timestamp {raw!r}, which is neither seconds since the epoch nor a date/time "
                "(ISO 8601, e.g. 2024-05-01T12:30:00Z); fix or drop that row"
            )
        if on_total is not None:
            on_total(count_rows(tmp))
        yield from _batches(tmp, keep, chunk_rows)
    finally:
        tmp.unlink(missing_ok=True)


def _histories(frame: pl.DataFrame, keep: Sequence[str]) -> list[History]:
    out: list[History] = []
    keys = frame["_key"].to_numpy()
    if not len(keys):
        return out
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    items = frame[ITEM_ID].to_list()
    ts = frame[TIMESTAMP].cast(pl.Float64).fill_null(np.nan).to_numpy()
    attrs = {a: frame[a].to_list() for a in keep}
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        out.append(History(str(keys[s]), items[s:e], ts[s:e], {a: v[s:e] for a, v in attrs.items()}))
    return out


def _batches(path: Path, keep: Sequence[str], chunk_rows: int) -> Iterator[tuple[list[History], int]]:
    carry: pl.DataFrame | None = None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=max(1, chunk_rows)):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        if carry is not None:
            frame = pl.concat([carry, frame], how="vertical_relaxed")
        last_key = frame["_key"][-1]
        tail = frame["_key"] == last_key
        carry = frame.filter(tail)
        done = frame.filter(~tail)
        if done.height:
            yield _histories(done, keep), done.height
    if carry is not None and carry.height:
        yield _histories(carry, keep), carry.height


_TYPES = {
    "string": pa.string(), "int64": pa.int64(), "float32": pa.float32(), "float64": pa.float64(),
    "bool": pa.bool_(), "list<string>": pa.list_(pa.string()), "list<float32>": pa.list_(pa.float32()),
}


def _arrow_type(name: str) -> pa.DataType:
    if name not in _TYPES:
        raise ValueError(f"unknown column type {name!r}; use one of {sorted(_TYPES)}")
    return _TYPES[name]


class ParquetRowWriter:
    """Write dict rows to a Parquet file in row groups; the file appears (atomically) only on a clean close.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.parquet"
        >>> with ParquetRowWriter(out) as w:
        ...     w.write([{"user_id": "1", "items": ["a", "b"]}])
        >>> count_rows(out)
        1
    """

    def __init__(self, path: str | os.PathLike[str], schema: Mapping[str, str] | None = None) -> None:
        """``schema``: column -> type name (``string``, ``int64``, ``float32``, ``float64``, ``bool``,
        ``list<string>``, ``list<float32>``); None infers it from the first rows."""
        self.path = Path(path)
        self._schema = None if schema is None else pa.schema([(k, _arrow_type(v)) for k, v in schema.items()])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{secrets.token_hex(6)}")
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append rows (every row has the same keys; the first batch fixes the schema)."""
        if not rows:
            return
        table = pa.Table.from_pylist(list(rows), schema=self._schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd")
        else:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)
        self.rows += len(rows)

    def close(self) -> None:
        """Finish the file and move it into place (an empty result still writes a valid file with no rows)."""
        if self._writer is None:
            schema = self._schema or pa.schema([(USER_ID, pa.string())])
            pq.write_table(schema.empty_table(), self._tmp)
        else:
            self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Discard the partial file."""
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ParquetRowWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
