"""Adapters: each turns one source format into the canonical interaction and item frames (see ``schema``).

* ``movielens`` — ml-latest(-small), ml-100k, ml-1m / ml-10m folders, or the bundled ml-latest-small copy;
* ``s3rec`` — the S3-Rec benchmark files (Beauty, Sports_and_Outdoors, Yelp, LastFM); untimed;
* ``trivago`` — RecSys Challenge 2019 session logs;
* ``table`` — any CSV/TSV/Parquet/JSONL file described by ``data.source.columns``;
* ``streaming_sim`` — the simulated streaming log of :mod:`intentrec.datasets.streaming_sim` (a folder written by
  ``write_simulation`` or ``write_sharded_simulation``, or a preset generated in memory).

:func:`load` reads a source into memory; :func:`scan` gives a lazy Polars scan for sources that can be prepared out
of core (``intentrec.data.chunked``).
"""

from __future__ import annotations

import importlib.resources
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import polars as pl

from intentrec.config import SourceConfig
from intentrec.data.io import (
    check_file,
    check_header,
    check_id_columns,
    check_utf8,
    csv_error,
    csv_header,
    date_to_seconds,
    first_bad_row,
    is_parse_error,
    polars_reason,
    read_table,
    read_text,
    table_format,
)
from intentrec.data.schema import (
    ACTION,
    DURATION,
    DURATION_MAX,
    ITEM_ID,
    ROW,
    SESSION_ID,
    TIMESTAMP,
    USER_ID,
    require_columns,
    validate_interactions,
    validate_items,
)
from intentrec.datasets import streaming_sim
from intentrec.errors import ConfigError, DataError, SchemaError

__all__ = [
    "S3REC_EXCLUDE_SEEN",
    "TRIVAGO_CONTEXT_ACTIONS",
    "TRIVAGO_ITEM_ACTIONS",
    "RawData",
    "RawScan",
    "bundled_movielens_path",
    "load",
    "scan",
    "source_files",
]

TRIVAGO_ITEM_ACTIONS = (
    "interaction item image",
    "clickout item",
    "interaction item info",
    "interaction item rating",
    "interaction item deals",
    "search for item",
)
"""trivago action types whose ``reference`` is a hotel id: these become interactions."""
TRIVAGO_CONTEXT_ACTIONS = ("filter selection", "change of sort order", "search for destination", "search for poi")
"""trivago action types without an item: folded into the ``context_action`` of later item events."""
S3REC_EXCLUDE_SEEN = {"Beauty": True, "Sports_and_Outdoors": True, "Toys_and_Games": True, "Yelp": False, "LastFM": False}
"""Seen-item filter default per S3-Rec dataset (EVALUATION.md); unknown names default to False."""

_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_NO_GENRE = {"(no genres listed)", "unknown"}
_YEAR_RE = r"\((\d{4})[^()]*\)\s*$"


@dataclass
class RawData:
    """What an adapter returns: canonical frames and dataset facts."""

    interactions: pl.DataFrame
    """Canonical interaction frame (see ``schema``)."""
    items: pl.DataFrame | None
    """Canonical item frame, or None when the source has no item metadata."""
    timed: bool
    """True when ``timestamp`` holds real seconds; False when it is the order index within the user."""
    dataset: str
    """Human-readable dataset name."""
    exclude_seen_default: bool
    """The dataset's default for the seen-item filter."""
    report: dict[str, int] = field(default_factory=dict)
    """Counts of repairs and removals made while reading."""


@dataclass
class RawScan:
    """A lazily scanned source (out-of-core preparation): canonical interactions as a Polars ``LazyFrame``.

    Unlike :class:`RawData`, rows with a missing user, item or time are still present (the reader drops and
    counts them while streaming) and nothing has been validated beyond the column names.
    """

    interactions: pl.LazyFrame
    """Canonical interactions, in file order, ``_row`` numbered from 0."""
    items: pl.DataFrame | None
    """Canonical item frame (held in memory: one row per item), or None."""
    timed: bool
    """As :attr:`RawData.timed`."""
    dataset: str
    """Human-readable dataset name."""
    exclude_seen_default: bool
    """The dataset's default for the seen-item filter."""
    report: dict[str, int] = field(default_factory=dict)
    """Counts of repairs and removals made while reading."""


# ----------------------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------------------


def bundled_movielens_path() -> Path:
    """The folder of the ml-latest-small copy shipped inside the package."""
    return Path(str(importlib.resources.files("intentrec") / "resources" / "ml-latest-small"))


def source_files(source: SourceConfig) -> list[Path]:
    """The input files an adapter will read (for the cache key), without reading them.

    Raises:
        ConfigError: a required source key is missing.
        DataError: a file or folder does not exist.
    """
    if source.adapter == "movielens":
        folder = _movielens_folder(source)
        return [folder / name for name in _movielens_files(folder)[1]]
    if source.adapter == "s3rec":
        seq, attrs = _s3rec_files(source)
        return [seq, *([attrs] if attrs.is_file() else [])]
    if source.adapter == "streaming_sim":
        if source.path is None:  # generated: the config (in the key) and the generator's code define the data
            _sim_config(source)
            return [Path(streaming_sim.__file__)]
        folder = _sim_folder(source)
        events = [check_file(f, "data.source.path") for f in streaming_sim.simulation_event_files(folder)]
        return events + [check_file(folder / name, "data.source.path") for name in streaming_sim.SIM_FILES[1:]]
    path = _required_path(source)
    files = [check_file(path, "data.source.path")]
    if source.adapter == "table" and source.items_path is not None:
        files.append(check_file(Path(source.items_path).expanduser(), "data.source.items_path"))
    return files


def load(source: SourceConfig) -> RawData:
    """Read a source into canonical frames.

    Args:
        source: the ``data.source`` section.

    Returns:
        The canonical interactions (and items, when the source has metadata) with dataset facts.

    Raises:
        ConfigError: the source section is incomplete (e.g. no ``name`` for s3rec).
        SchemaError: a required column is missing (the message names it, the file and the key to set).
        DataError: a file is missing, empty, unreadable or has unparsable values.
    """
    readers = {
        "movielens": _movielens, "s3rec": _s3rec, "trivago": _trivago, "table": _table,
        "streaming_sim": _streaming_sim,
    }
    raw = readers[source.adapter](source)
    raw.interactions = _drop_null_keys(raw.interactions, raw.report)
    if raw.interactions.height == 0:
        raise DataError(f"{raw.dataset}: no interactions left after reading (every row lacked a user, item or time)")
    validate_interactions(raw.interactions, raw.dataset)
    if raw.items is not None:
        validate_items(raw.items, raw.dataset)
    return raw


def scan(source: SourceConfig) -> RawScan | None:
    """A lazy scan of the source, for sources that can be read out of core; None for the others (use :func:`load`).

    Scanned: a ``streaming_sim`` folder (``events.parquet`` or ``events/*.parquet`` shards) and a ``table`` file in
    CSV/TSV/Parquet/JSONL (the item file, when given, is read into memory). The other adapters parse, reshape or
    sort whole files (MovieLens, S3-Rec, trivago, a ``.json`` array) and are read with :func:`load`.

    Raises:
        SchemaError: a required column is missing.
        DataError: a file is missing or unreadable.
    """
    if source.adapter == "streaming_sim" and source.path is not None:
        return _scan_streaming_sim(source)
    if source.adapter == "table":
        return _scan_table(source)
    return None


def _required_path(source: SourceConfig) -> Path:
    if source.path is None:
        raise ConfigError(f"data.source.path is required for the {source.adapter!r} adapter (set it to the data file)")
    return Path(source.path).expanduser()


def _with_row(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))


def _drop_null_keys(frame: pl.DataFrame, report: dict[str, int]) -> pl.DataFrame:
    for column in (USER_ID, ITEM_ID, TIMESTAMP):
        missing = frame[column].null_count()
        if missing:
            report[f"rows_missing_{column}"] = report.get(f"rows_missing_{column}", 0) + missing
            frame = frame.filter(pl.col(column).is_not_null())
    return frame


TIMESTAMP_MIN = -62_135_596_800.0
"""0001-01-01T00:00:00Z in seconds: the earliest time a timestamp may hold."""
TIMESTAMP_MAX = 253_402_300_799.0
"""9999-12-31T23:59:59Z in seconds: the latest time a timestamp may hold (later values are a wrong unit)."""
_PLAUSIBLE_MAX = 4_102_444_800.0  # 2100-01-01, for guessing the unit of an out-of-range timestamp


def _check_time_dtype(dtype: pl.DataType, column: str, origin: str | Path) -> None:
    """Refuse timestamp columns that cannot hold times (booleans, lists, records)."""
    if dtype == pl.Boolean or isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Object):
        raise SchemaError(
            f"{origin}: column {column!r} holds {dtype} values, not times; the timestamp column needs numbers "
            "(seconds since 1970, or ms/us/ns with data.source.columns.timestamp_unit) or date strings "
            "(timestamp_unit: datetime)"
        )


def _unit_hint(value: float, divisor: float, key: str) -> str:
    """A hint naming the unit under which an out-of-range raw timestamp would be a plausible time."""
    raw = value * divisor
    for unit, div in _UNIT_DIVISOR.items():
        if div > divisor and 0 <= raw / div <= _PLAUSIBLE_MAX:
            if key.endswith("timestamp_unit"):
                return f"; the values look like {unit}: set {key}: {unit}"
            return f"; the values look like {unit}, not seconds"
    return f"; fix the value (or set {key} to match the column)" if key.endswith("timestamp_unit") else ""


def _time_range_error(origin: str | Path, column: str, row: int, raw: str, value: float, divisor: float,
                      key: str) -> DataError:
    return DataError(
        f"{origin}: timestamp {raw} in column {column!r} at row {row} (1-based, header not counted) is "
        f"{value:.4g} s since 1970, outside the years 1-9999{_unit_hint(value, divisor, key)}"
    )


def _seconds(
    frame: pl.DataFrame, column: str, divisor: float, origin: Path, key: str, name: str | None = None
) -> pl.DataFrame:
    """Cast a numeric-seconds column to Float64 / divisor (``name``: the column's name in the file, for messages).

    Raises:
        SchemaError: the column holds booleans, lists or records.
        DataError: a non-null value is unparsable, or a time is outside the years 1-9999 (a wrong unit: the
            message suggests the unit under which the values are plausible).
    """
    dtype = frame.schema[column]
    shown = name or column
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return frame.with_columns(date_to_seconds(pl.col(column), dtype).alias(column))
    _check_time_dtype(dtype, shown, origin)
    parsed = frame[column].cast(pl.Float64, strict=False)
    parsed = parsed.set((parsed.is_infinite() | parsed.is_nan()).fill_null(False), None)
    bad = parsed.is_null() & frame[column].is_not_null()
    if bad.any():
        row, value = first_bad_row(frame, column, parsed)
        raise DataError(
            f"{origin}: cannot parse timestamp {value!r} in column {shown!r} at row {row} (1-based, header not "
            f"counted). Fix the value, or set {key} to match the column (s, ms, us, ns, or datetime for date strings)."
        )
    seconds = parsed / divisor
    outside = ((seconds < TIMESTAMP_MIN) | (seconds > TIMESTAMP_MAX)).fill_null(False)
    if outside.any():
        j = int(outside.arg_max() or 0)
        raw = str(frame.select(pl.col(column).cast(pl.String))[column][j])
        raise _time_range_error(origin, shown, int(frame[ROW][j]) + 1, raw, float(seconds[j]), divisor, key)
    return frame.with_columns(seconds.alias(column))


# ----------------------------------------------------------------------------------------------------------
# movielens
# ----------------------------------------------------------------------------------------------------------


def _movielens_folder(source: SourceConfig) -> Path:
    if source.path is None:
        folder = bundled_movielens_path()
        if not folder.is_dir():
            raise DataError(f"the bundled MovieLens copy is missing at {folder}; reinstall intentrec")
        return folder
    folder = Path(source.path).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"data.source.path = {source.path!r} is not a folder; the movielens adapter needs the unpacked MovieLens "
            "folder (with ratings.csv + movies.csv, u.data + u.item, or ratings.dat + movies.dat), or null for the "
            "bundled ml-latest-small"
        )
    return folder


def _movielens_files(folder: Path) -> tuple[str, tuple[str, ...]]:
    if (folder / "ratings.csv").is_file():
        return "latest", ("ratings.csv", "movies.csv")
    if (folder / "u.data").is_file():
        files = ("u.data", "u.item", "u.genre") if (folder / "u.genre").is_file() else ("u.data", "u.item")
        return "100k", files
    if (folder / "ratings.dat").is_file():
        return "dat", ("ratings.dat", "movies.dat")
    present = sorted(p.name for p in folder.iterdir())[:20]
    raise DataError(
        f"{folder}: not a MovieLens folder: expected ratings.csv + movies.csv (ml-latest), u.data + u.item (ml-100k) "
        f"or ratings.dat + movies.dat (ml-1m/ml-10m); found {present}"
    )


def _movielens(source: SourceConfig) -> RawData:
    """MovieLens ratings as interactions, movies as items.

    Interactions keep ``rating`` and copy it to ``duration`` (the engagement-weight stand-in, see PROVENANCE).
    Item attributes: ``title``, ``genres`` (multi-valued; "(no genres listed)" / "unknown" give an empty list),
    ``year`` (parsed from "Title (1995)"; null when absent) and ``release_date`` in seconds. For ml-latest and
    ml-1m/10m only the year is known, so ``release_date`` is 1 January of that year: the release age (recency
    intent) is then an *upper bound* of the true age. ml-100k has real release dates (``01-Jan-1995``), used
    when present (1 January of the title year otherwise).
    """
    folder = _movielens_folder(source)
    variant, _ = _movielens_files(folder)
    if variant == "latest":
        frame, items = _ml_latest(folder)
    elif variant == "100k":
        frame, items = _ml_100k(folder)
    else:
        frame, items = _ml_dat(folder)
    frame = frame.with_columns(pl.col("rating").alias(DURATION))
    name = "ml-latest-small (bundled)" if source.path is None else folder.name
    return RawData(frame, items, timed=True, dataset=f"movielens/{name}", exclude_seen_default=True)


def _ml_interactions(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    frame = _with_row(frame)
    frame = _seconds(frame, TIMESTAMP, 1.0, path, "data.source.path")
    rating = frame["rating"].cast(pl.Float64, strict=False)
    if (rating.is_null() & frame["rating"].is_not_null()).any():
        row, value = first_bad_row(frame, "rating", rating)
        raise DataError(f"{path}: rating {value!r} at row {row} is not a number; is this a MovieLens ratings file?")
    return frame.with_columns(rating.alias("rating"))


def _year_expr(title: pl.Expr) -> pl.Expr:
    return title.str.extract(_YEAR_RE, 1).cast(pl.Int64, strict=False)


def _jan1(year: pl.Expr) -> pl.Expr:
    return pl.datetime(year, 1, 1, time_zone="UTC").dt.epoch("us").cast(pl.Float64) / 1e6


def _genre_list(expr: pl.Expr, separator: str = "|") -> pl.Expr:
    return (
        expr.str.split(separator)
        .list.eval(pl.element().str.strip_chars())
        .list.filter((pl.element() != "") & ~pl.element().is_in(list(_NO_GENRE)))
    )


def _ml_latest(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    ratings_path, movies_path = folder / "ratings.csv", folder / "movies.csv"
    ratings = read_table(ratings_path, "data.source.path", string_columns=("userId", "movieId"))
    require_columns(
        ratings.columns,
        {c: "data.source.path (a MovieLens ratings.csv)" for c in ("userId", "movieId", "rating", "timestamp")},
        origin=ratings_path, what="MovieLens ratings file",
    )
    frame = ratings.select(
        pl.col("userId").alias(USER_ID), pl.col("movieId").alias(ITEM_ID), pl.col("timestamp").alias(TIMESTAMP),
        pl.col("rating"),
    )
    frame = _ml_interactions(frame, ratings_path)
    movies = read_table(movies_path, "data.source.path", string_columns=("movieId", "title", "genres"))
    require_columns(
        movies.columns, {c: "data.source.path (a MovieLens movies.csv)" for c in ("movieId", "title", "genres")},
        origin=movies_path, what="MovieLens movies file",
    )
    items = movies.select(
        pl.col("movieId").alias(ITEM_ID),
        pl.col("title").str.strip_chars(),
        _genre_list(pl.col("genres")).alias("genres"),
        _year_expr(pl.col("title").str.strip_chars()).alias("year"),
    ).with_columns(_jan1(pl.col("year")).alias("release_date"))
    return frame, items.unique(ITEM_ID, keep="first", maintain_order=True)


def _ml_100k(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    data_path, item_path = folder / "u.data", folder / "u.item"
    check_file(data_path, "data.source.path")
    try:
        ratings = pl.read_csv(
            data_path, separator="\t", has_header=False, new_columns=["u", "i", "rating", "ts"],
            schema_overrides={"u": pl.String, "i": pl.String}, quote_char=None,
        )
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(f"cannot read {data_path}: {err} (expected tab-separated user, item, rating, time)") from None
    if ratings.width != 4:
        raise SchemaError(f"{data_path}: expected 4 tab-separated columns (user item rating time), got {ratings.width}")
    frame = ratings.select(
        pl.col("u").alias(USER_ID), pl.col("i").alias(ITEM_ID), pl.col("ts").alias(TIMESTAMP), pl.col("rating")
    )
    frame = _ml_interactions(frame, data_path)
    genre_names = list(_ML100K_GENRES)
    if (folder / "u.genre").is_file():
        lines = [ln.rsplit("|", 1) for ln in read_text(folder / "u.genre", "data.source.path").splitlines() if "|" in ln]
        genre_names = [name for name, _ in sorted(lines, key=lambda x: int(x[1]))]
    text = read_text(item_path, "data.source.path", encodings=("latin-1",))
    n_cols = 5 + len(genre_names)
    try:
        movies = pl.read_csv(
            io.BytesIO(text.encode("utf-8")), separator="|", has_header=False, quote_char=None,
            new_columns=["movie_id", "title", "release", "video_release", "url", *[f"g{j}" for j in range(len(genre_names))]],
            schema_overrides={"movie_id": pl.String, "title": pl.String, "release": pl.String},
            infer_schema=False,
        )
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(f"cannot read {item_path}: {err} (expected {n_cols} '|'-separated columns)") from None
    flags = [
        pl.when(pl.col(f"g{j}") == "1").then(pl.lit(name)).otherwise(None)
        for j, name in enumerate(genre_names) if name not in _NO_GENRE
    ]
    release = date_to_seconds(pl.col("release"), pl.String)
    year = pl.coalesce(
        _year_expr(pl.col("title").str.strip_chars()),
        pl.col("release").str.strip_chars().str.to_date("%d-%b-%Y", strict=False).dt.year().cast(pl.Int64),
    )
    items = movies.select(
        pl.col("movie_id").alias(ITEM_ID),
        pl.col("title").str.strip_chars(),
        pl.concat_list(flags).list.drop_nulls().alias("genres"),
        year.alias("year"),
        release.alias("_release"),
    ).with_columns(pl.coalesce(pl.col("_release"), _jan1(pl.col("year"))).alias("release_date")).drop("_release")
    return frame, items.unique(ITEM_ID, keep="first", maintain_order=True)


def _ml_dat(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    ratings_path, movies_path = folder / "ratings.dat", folder / "movies.dat"
    check_file(ratings_path, "data.source.path")
    try:
        # "1::122::5::838985046": with ':' as separator the values are columns 1, 3, 5, 7 (ratings hold no colons)
        ratings = pl.read_csv(ratings_path, separator=":", has_header=False, quote_char=None, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(f"cannot read {ratings_path}: {err} (expected user::item::rating::time lines)") from None
    if ratings.width != 7:
        raise SchemaError(f"{ratings_path}: expected 'user::item::rating::time' lines, found {ratings.width} ':' fields")
    c = ratings.columns
    frame = ratings.select(
        pl.col(c[0]).alias(USER_ID), pl.col(c[2]).alias(ITEM_ID), pl.col(c[6]).alias(TIMESTAMP),
        pl.col(c[4]).alias("rating"),
    )
    frame = _ml_interactions(frame, ratings_path)
    rows = [ln.split("::", 2) for ln in read_text(movies_path, "data.source.path").splitlines() if ln.strip()]
    bad = next((j for j, r in enumerate(rows) if len(r) != 3), None)
    if bad is not None:
        raise SchemaError(f"{movies_path}: line {bad + 1} is not 'id::title::genres': {rows[bad]!r}")
    movies = pl.DataFrame(
        {"id": [r[0] for r in rows], "title": [r[1].strip() for r in rows], "genres": [r[2] for r in rows]},
        schema={"id": pl.String, "title": pl.String, "genres": pl.String},
    )
    items = movies.select(
        pl.col("id").alias(ITEM_ID), pl.col("title"), _genre_list(pl.col("genres")).alias("genres"),
        _year_expr(pl.col("title")).alias("year"),
    ).with_columns(_jan1(pl.col("year")).alias("release_date"))
    return frame, items.unique(ITEM_ID, keep="first", maintain_order=True)


# ----------------------------------------------------------------------------------------------------------
# s3rec
# ----------------------------------------------------------------------------------------------------------


def _s3rec_files(source: SourceConfig) -> tuple[Path, Path]:
    folder = _required_path(source)
    if not folder.is_dir():
        raise DataError(f"data.source.path = {source.path!r} is not a folder; the s3rec adapter needs the folder "
                        "holding <name>.txt and <name>_item2attributes.json")
    if not source.name:
        names = sorted(p.stem for p in folder.glob("*.txt"))
        raise ConfigError(f"the s3rec adapter needs data.source.name: one of {names} (files in {folder})")
    seq = folder / f"{source.name}.txt"
    if not seq.is_file():
        names = sorted(p.stem for p in folder.glob("*.txt"))
        raise DataError(f"{seq} not found: data.source.name = {source.name!r}; available in {folder}: {names}")
    check_file(seq, "data.source.path")
    return seq, folder / f"{source.name}_item2attributes.json"


def _s3rec(source: SourceConfig) -> RawData:
    """S3-Rec benchmark files: ``<name>.txt`` lines ``user item item ...`` in time order (no timestamps).

    The data is untimed: ``timestamp`` is the event's order index within the user (0, 1, 2, ...). Item attribute
    ``category`` is the list of attribute ids (as strings) from ``<name>_item2attributes.json``, deduplicated
    within an item in first-seen order (Amazon: brand and sub-categories; Yelp: business categories; LastFM: tags).
    """
    seq_path, attr_path = _s3rec_files(source)
    text = read_text(seq_path, "data.source.path")
    lines = pl.DataFrame({"line": text.splitlines()}, schema={"line": pl.String}).with_row_index("_line")
    parts = lines.select(
        pl.col("_line"),
        pl.col("line").str.strip_chars().str.replace_all(r"\s+", " ").str.split(" ").alias("p"),
    ).filter(pl.col("p").list.len() > 0)
    parts = parts.filter(pl.col("p").list.first() != "")
    short = parts.filter(pl.col("p").list.len() < 2)
    if short.height:
        line_no = int(short["_line"][0]) + 1
        raise DataError(f"{seq_path}: line {line_no} has a user id but no items; expected 'user item item ...'")
    frame = (
        parts.select(pl.col("p").list.first().alias(USER_ID), pl.col("p").list.slice(1).alias(ITEM_ID))
        .explode(ITEM_ID)
        .pipe(_with_row)
        .with_columns(pl.int_range(pl.len()).over(USER_ID).cast(pl.Float64).alias(TIMESTAMP))
    )
    items = None
    if attr_path.is_file():
        try:
            mapping = json.loads(read_text(attr_path, "data.source.path"))
        except json.JSONDecodeError as err:
            raise DataError(f"{attr_path} is not valid JSON: {err}") from None
        if not isinstance(mapping, dict):
            raise DataError(f"{attr_path}: expected an object {{item_id: [attribute ids]}}")
        ids, cats = [], []
        for key, values in mapping.items():
            ids.append(str(key))
            vals = values if isinstance(values, list) else [values]
            cats.append(list(dict.fromkeys(str(v) for v in vals if v is not None)))
        items = pl.DataFrame({ITEM_ID: ids, "category": cats}, schema={ITEM_ID: pl.String, "category": pl.List(pl.String)})
    name = source.name or ""
    return RawData(frame, items, timed=False, dataset=f"s3rec/{name}",
                   exclude_seen_default=S3REC_EXCLUDE_SEEN.get(name, False))


# ----------------------------------------------------------------------------------------------------------
# trivago
# ----------------------------------------------------------------------------------------------------------


def _trivago(source: SourceConfig) -> RawData:
    """RecSys Challenge 2019 (trivago) session logs.

    Only *item* events — action types whose ``reference`` is a hotel id (``interaction item image``, ``clickout
    item``, ``interaction item info``, ``interaction item rating``, ``interaction item deals``, ``search for
    item``) — become interactions, with ``action`` = the action type and ``item_id`` = the reference. The other
    four action types (``filter selection``, ``change of sort order``, ``search for destination``, ``search for
    poi``) are folded into context: each kept event gets ``context_action`` = the most recent non-item action type
    earlier in the same session, or ``"none"``; so all 10 action types still inform the model. The count of folded
    rows is reported as ``trivago_context_rows_folded``. Columns ``device``, ``platform``, ``city``, ``step`` and
    ``session_id`` are kept. Events are ordered by user, timestamp, then step (``_row`` is renumbered in that
    order). Sessions come from ``session_id``.
    """
    path = _required_path(source)
    required = ("user_id", "session_id", "timestamp", "step", "action_type", "reference")
    frame = read_table(path, "data.source.path", string_columns=("user_id", "session_id", "reference"))
    require_columns(frame.columns, {c: "data.source.path (a trivago RecSys 2019 log)" for c in required},
                    origin=path, what="trivago log")
    frame = _with_row(frame)
    frame = _seconds(frame, "timestamp", 1.0, path, "data.source.path")
    step = frame["step"].cast(pl.Int64, strict=False)
    if (step.is_null() & frame["step"].is_not_null()).any():
        row, value = first_bad_row(frame, "step", step)
        raise DataError(f"{path}: step {value!r} at row {row} is not an integer")
    frame = frame.with_columns(step.alias("step"), pl.col("action_type").cast(pl.String))
    is_item = pl.col("action_type").is_in(list(TRIVAGO_ITEM_ACTIONS))
    frame = frame.sort(["session_id", "step", ROW], maintain_order=True).with_columns(
        pl.when(is_item).then(None).otherwise(pl.col("action_type")).forward_fill().over("session_id")
        .fill_null("none").alias("context_action"),
        is_item.alias("_is_item"),
    )
    report = {"trivago_context_rows_folded": int((~frame["_is_item"]).sum())}
    items_only = frame.filter(pl.col("_is_item"))
    missing_ref = items_only["reference"].null_count()
    if missing_ref:
        report["trivago_item_rows_without_reference"] = missing_ref
        items_only = items_only.filter(pl.col("reference").is_not_null())
    keep = [c for c in ("device", "platform", "city") if c in items_only.columns]
    out = (
        items_only.sort(["user_id", "timestamp", "step", ROW], maintain_order=True)
        .select(
            pl.col("user_id").alias(USER_ID),
            pl.col("reference").alias(ITEM_ID),
            pl.col("timestamp").alias(TIMESTAMP),
            pl.col("action_type").alias(ACTION),
            pl.col("context_action"),
            pl.col("session_id").alias(SESSION_ID),
            pl.col("step"),
            *[pl.col(c).cast(pl.String) for c in keep],
        )
        .pipe(_with_row)
    )
    return RawData(out, None, timed=True, dataset=f"trivago/{path.name}", exclude_seen_default=False, report=report)


# ----------------------------------------------------------------------------------------------------------
# table
# ----------------------------------------------------------------------------------------------------------

_UNIT_DIVISOR = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)


_OTHER_SEPARATORS = ("|", ",", ";", "/", "\t")
"""Separators looked for when no value of a multi-valued column holds the configured one."""


def _check_separator(frame: pl.LazyFrame, column: str, separator: str, origin: str | Path) -> None:
    """Refuse a separator that no value uses while another common one is used by at least 10% of the values.

    Raises:
        ConfigError: names ``data.source.multi_value_separator``, the column, the file and the separator to set.
    """
    if frame.collect_schema()[column] != pl.String:
        return
    text = pl.col(column)
    others = [c for c in _OTHER_SEPARATORS if c != separator]
    counts = frame.select(
        (text.is_not_null() & (text.str.strip_chars() != "")).sum().alias("_n"),
        text.str.contains(separator, literal=True).fill_null(False).sum().alias("_sep"),
        *[text.str.contains(c, literal=True).fill_null(False).sum().alias(f"_o{j}") for j, c in enumerate(others)],
    ).collect(engine="streaming").row(0)
    n, uses = int(counts[0] or 0), int(counts[1] or 0)
    found = [(int(k or 0), c) for k, c in zip(counts[2:], others, strict=True)]
    k, other = max(found) if found else (0, "")
    if n == 0 or uses or k < max(1, 0.1 * n):
        return
    example = frame.filter(text.str.contains(other, literal=True)).select(text).head(1).collect().item()
    raise ConfigError(
        f"{origin}: no value of the multi-valued column {column!r} contains data.source.multi_value_separator "
        f"{separator!r}, but {k} of {n} values contain {other!r} (e.g. {example!r}); set "
        f"data.source.multi_value_separator: {other!r} (or remove {column!r} from data.source.multi_valued)"
    )


def _split_multi(frame: _Frame, column: str, separator: str, origin: str | Path = "") -> _Frame:
    """Split a multi-valued text column into a list of labels.

    Each value is split at ``separator`` (a literal string, may be several characters), every label is stripped
    of surrounding whitespace, and empty labels are dropped: with ``|``, ``"a|b"``, ``" a | b "``, ``"a||b"`` and
    ``"a|b|"`` all give ``["a", "b"]``, while ``""`` and ``"|"`` give no label (``[]``) and null stays null. A
    value without the separator is one label. List columns (Parquet/JSON) are kept, their elements as text.

    Raises:
        ConfigError: no value uses ``separator`` but many use another common one (see :func:`_check_separator`).
    """
    dtype = frame.collect_schema()[column]
    if isinstance(dtype, pl.List):
        return frame.with_columns(pl.col(column).list.eval(pl.element().cast(pl.String)))
    _check_separator(frame.lazy().with_columns(pl.col(column).cast(pl.String)), column, separator, origin)
    return frame.with_columns(
        pl.col(column).cast(pl.String).str.split(separator).list.eval(pl.element().str.strip_chars())
        .list.filter(pl.element() != "").alias(column)
    )


def _duration_counts(frame: pl.LazyFrame) -> tuple[pl.Expr, dict[str, int]]:
    """The cleaned ``duration`` expression and the counts of values it sets to null, by reason."""
    raw = pl.col(DURATION)
    dur = raw.cast(pl.Float64, strict=False)
    unparsable = dur.is_null() & raw.is_not_null()
    invalid = dur.is_not_null() & (dur.is_nan() | dur.is_infinite() | (dur < 0))
    absurd = dur.is_not_null() & dur.is_finite() & (dur > DURATION_MAX)
    row = frame.select(
        unparsable.sum().alias("unparsable"), invalid.sum().alias("invalid"), absurd.sum().alias("absurd"),
        raw.is_not_null().sum().alias("present"),
    ).collect(engine="streaming").row(0, named=True)
    counts = {k: int(v or 0) for k, v in row.items()}
    return pl.when(invalid | absurd).then(None).otherwise(dur), counts


def _clean_duration(frame: _Frame, origin: str | Path, column: str | None, report: dict[str, int]) -> _Frame:
    """Repair the ``duration`` column: text, NaN, infinite, negative and absurd (> ``DURATION_MAX``) values become
    null (filled with the training median later) and are counted: ``duration_invalid_set_null`` (all of them), of
    which ``duration_unparsable_set_null`` (text) and ``duration_absurd_set_null`` (too large).

    Raises:
        SchemaError: the column holds lists or records, or no value at all is a number (a text column mapped by
            mistake); the message names the file, the column, the first row and the key.
    """
    dtype = frame.collect_schema()[DURATION]
    if isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Object):
        raise SchemaError(
            f"{origin}: column {column!r} (data.source.columns.duration) holds {dtype} values; the engagement "
            "column needs one number per event (seconds watched, dwell time, rating), or set it to null"
        )
    expr, counts = _duration_counts(frame.lazy())
    if counts["present"] and counts["unparsable"] == counts["present"]:
        first = (frame.lazy().filter(pl.col(DURATION).is_not_null()).select(pl.col(ROW), pl.col(DURATION).cast(pl.String))
                 .head(1).collect().row(0))
        raise SchemaError(
            f"{origin}: column {column!r} (data.source.columns.duration) holds no numbers: the first value "
            f"{first[1]!r} at row {int(first[0]) + 1} is text. Point data.source.columns.duration at a numeric "
            "engagement column (seconds watched, dwell time, rating), or set it to null"
        )
    n_bad = counts["unparsable"] + counts["invalid"] + counts["absurd"]
    if n_bad:
        report["duration_invalid_set_null"] = n_bad
    if counts["unparsable"]:
        report["duration_unparsable_set_null"] = counts["unparsable"]
    if counts["absurd"]:
        report["duration_absurd_set_null"] = counts["absurd"]
    return frame.with_columns(expr.alias(DURATION))


def _parse_dates(frame: pl.DataFrame, column: str, origin: Path, report: dict[str, int]) -> pl.DataFrame:
    parsed = frame.select(date_to_seconds(pl.col(column), frame.schema[column]).alias("_d"))["_d"]
    bad = parsed.is_null() & frame[column].is_not_null()
    n_bad = int(bad.sum())
    if n_bad and n_bad == int(frame[column].is_not_null().sum()):
        row = int(bad.arg_max() or 0)
        raise DataError(
            f"{origin}: no value of date column {column!r} could be parsed (first: {frame[column][row]!r} at row "
            f"{row + 1}); use ISO dates like 2020-01-31 or remove it from data.source.date_columns"
        )
    if n_bad:
        report[f"dates_unparsable_{column}"] = n_bad
    return frame.with_columns(parsed.alias(column))


def _numeric_datetime_error(path: object, column: object, dtype: object) -> SchemaError:
    """A numeric timestamp column declared as date strings (``timestamp_unit: datetime``)."""
    return SchemaError(f"{path}: column {column!r} is numeric ({dtype}) but data.source.columns.timestamp_unit is "
                       "'datetime'; set timestamp_unit to s, ms, us or ns")


def _unparsable_date_error(path: object, column: object, row: object, value: object) -> DataError:
    """A date string that does not parse, with its row."""
    return DataError(f"{path}: cannot parse timestamp {value!r} in column {column!r} at row {row} (1-based, header "
                     "not counted); use ISO 8601 such as 2020-01-31T12:00:00Z, or numeric epoch values with "
                     "data.source.columns.timestamp_unit")


def _table(source: SourceConfig) -> RawData:
    """Any CSV/TSV/Parquet/JSONL log described by ``data.source.columns``, plus optional item metadata.

    ``timestamp_unit`` s/ms/us/ns converts numbers to seconds; ``datetime`` parses date strings (naive times are
    UTC); native Date/Datetime columns are converted whatever the unit. Without a timestamp column the data is
    untimed and rows are taken in file order. NaN, infinite or negative durations are set to null (later filled
    with the training median, i.e. weight 1) and counted. Unmapped columns are kept as extra interaction columns
    (one whose name clashes with a canonical column is renamed ``<name>_raw``).
    """
    path = _required_path(source)
    cm = source.columns
    mapping, mapped, id_like = _table_mapping(source)
    raw = read_table(path, "data.source.path", string_columns=id_like)
    require_columns(raw.columns, {col: f"data.source.columns.{canon}" for canon, col in mapped.items()},
                    origin=path, what="interactions file")
    raw = _with_row(raw) if ROW not in raw.columns else raw.rename({ROW: f"{ROW}_raw"}).pipe(_with_row)
    used = set(mapped.values())
    extras = [c for c in raw.columns if c not in used and c != ROW]
    exprs = [pl.col(col).alias(canon) for canon, col in mapped.items()]
    exprs += [pl.col(c).alias(f"{c}_raw" if c in mapping else c) for c in extras]
    frame = raw.select(pl.col(ROW), *exprs)
    report: dict[str, int] = {}
    for canon in (USER_ID, ITEM_ID, ACTION, SESSION_ID):
        if canon in frame.columns:
            frame = frame.with_columns(pl.col(canon).cast(pl.String))
    if cm.timestamp is None:
        frame = frame.with_columns(pl.int_range(pl.len()).over(USER_ID).cast(pl.Float64).alias(TIMESTAMP))
    else:
        dtype = frame.schema[TIMESTAMP]
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            frame = frame.with_columns(date_to_seconds(pl.col(TIMESTAMP), dtype).alias(TIMESTAMP))
        elif cm.timestamp_unit == "datetime":
            if dtype.is_numeric():
                raise _numeric_datetime_error(path, cm.timestamp, dtype)
            parsed = frame.select(date_to_seconds(pl.col(TIMESTAMP), dtype).alias("_t"))["_t"]
            if (parsed.is_null() & frame[TIMESTAMP].is_not_null()).any():
                row, value = first_bad_row(frame, TIMESTAMP, parsed)
                raise _unparsable_date_error(path, cm.timestamp, row, value)
            frame = frame.with_columns(parsed.alias(TIMESTAMP))
        else:
            frame = _seconds(frame, TIMESTAMP, _UNIT_DIVISOR[cm.timestamp_unit], path,
                             "data.source.columns.timestamp_unit", cm.timestamp)
    if DURATION in frame.columns:
        frame = _clean_duration(frame, path, cm.duration, report)
    items = _table_items(source, report) if source.items_path is not None else None
    item_cols = set(items.columns) if items is not None else set()
    items_origin = Path(source.items_path or "").expanduser()
    for column in source.multi_valued:
        if column in frame.columns:
            frame = _split_multi(frame, column, source.multi_value_separator, path)
        if items is not None and column in items.columns:
            items = _split_multi(items, column, source.multi_value_separator, items_origin)
        if column not in frame.columns and column not in item_cols:
            raise ConfigError(
                f"data.source.multi_valued names {column!r}, which is neither an interaction column "
                f"({[c for c in frame.columns if c != ROW]}) nor an item column ({sorted(item_cols)})"
            )
    for column in source.date_columns:
        if items is not None and column in items.columns:
            items = _parse_dates(items, column, Path(source.items_path or ""), report)
        elif column in frame.columns:
            frame = _parse_dates(frame, column, path, report)
        else:
            raise ConfigError(
                f"data.source.date_columns names {column!r}, which is neither an item column ({sorted(item_cols)}) "
                f"nor an interaction column ({[c for c in frame.columns if c != ROW]})"
            )
    return RawData(frame, items, timed=cm.timestamp is not None, dataset=f"table/{path.name}",
                   exclude_seen_default=False, report=report)


def _table_items(source: SourceConfig, report: dict[str, int]) -> pl.DataFrame:
    path = Path(source.items_path or "").expanduser()
    key_col = source.item_columns_id
    items = read_table(path, "data.source.items_path", string_columns=(key_col,))
    require_columns(items.columns, {key_col: "data.source.item_columns_id"}, origin=path, what="item file")
    if key_col != ITEM_ID and ITEM_ID in items.columns:
        items = items.rename({ITEM_ID: f"{ITEM_ID}_raw"})
    items = items.rename({key_col: ITEM_ID}).with_columns(pl.col(ITEM_ID).cast(pl.String))
    missing = items[ITEM_ID].null_count()
    if missing:
        report["item_rows_missing_id"] = missing
        items = items.filter(pl.col(ITEM_ID).is_not_null())
    n_before = items.height
    items = items.unique(ITEM_ID, keep="first", maintain_order=True)
    if items.height < n_before:
        report["item_rows_duplicate"] = n_before - items.height
    return items


# ----------------------------------------------------------------------------------------------------------
# table, scanned lazily (out-of-core preparation)
# ----------------------------------------------------------------------------------------------------------


def _scan_file(path: Path, key: str, string_columns: Sequence[str]) -> pl.LazyFrame | None:
    """A lazy scan of a CSV/TSV/Parquet/JSONL table with ids as text (as :func:`read_table` reads it), or None
    for files read whole (a ``.json`` file, or JSON lines Polars cannot parse, e.g. integers beyond 64 bits).

    Every value is parsed once here (a streaming pass), so a CSV value that does not fit the type inferred from
    the first rows is found now: the scan is then redone with types inferred from every row, as
    :func:`~intentrec.data.io.read_csv_checked` does.

    Raises:
        SchemaError: a CSV/TSV header names a column twice.
        DataError: the file is missing, empty, not UTF-8, unreadable, or has no rows.
    """
    check_file(path, key)
    fmt = table_format(path)
    if fmt == "json":
        return None
    if fmt != "parquet":
        check_utf8(path, key)
    sep = "," if fmt == "csv" else "\t"
    overrides: dict[str, type[pl.DataType]] = {}
    if fmt in {"csv", "tsv"}:
        header = csv_header(path, sep)
        check_header(header, path)
        overrides = {c: pl.String for c in string_columns if c in header}

    def open_scan(infer: int | None) -> tuple[pl.LazyFrame, pl.Schema, int]:
        if fmt == "parquet":
            lazy = pl.scan_parquet(path)
        elif fmt in {"csv", "tsv"}:
            lazy = pl.scan_csv(path, separator=sep, schema_overrides=overrides, infer_schema_length=infer)
        else:
            lazy = pl.scan_ndjson(path, infer_schema_length=infer)
        schema = lazy.collect_schema()
        if fmt == "parquet":
            return lazy, schema, int(lazy.select(pl.len()).collect(engine="streaming").item())
        parsed = lazy.select(pl.len().alias("_n"), *[pl.col(c).null_count() for c in schema.names()])
        return lazy, schema, int(parsed.collect(engine="streaming")["_n"][0])  # parses every value

    try:
        try:
            lazy, schema, rows = open_scan(10_000)
        except pl.exceptions.ComputeError as err:
            if fmt == "ndjson":
                return None  # read whole with Python's JSON parser (read_table)
            if fmt not in {"csv", "tsv"} or not is_parse_error(err):
                raise
            lazy, schema, rows = open_scan(None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        if fmt in {"csv", "tsv"}:
            raise csv_error(path, sep, err) from None
        raise DataError(f"cannot read {path}: {polars_reason(err)} (check that it is a valid {fmt} file)") from None
    if rows == 0:
        raise DataError(f"{path} has no data rows (only a header or an empty table); point {key} at a file with data")
    check_id_columns(schema, string_columns, path)
    casts = [pl.col(c).cast(pl.String) for c in string_columns if c in schema and schema[c] != pl.String]
    return lazy.with_columns(casts) if casts else lazy


@dataclass
class _Check:
    """A count over all rows, computed in one streaming pass with the others."""

    name: str
    expr: pl.Expr


def _counts(lazy: pl.LazyFrame, checks: Sequence[_Check]) -> dict[str, int]:
    if not checks:
        return {}
    row = lazy.select([c.expr.cast(pl.Int64).sum().alias(c.name) for c in checks]).collect(engine="streaming")
    return {name: int(value or 0) for name, value in row.row(0, named=True).items()}


def _first_bad(lazy: pl.LazyFrame, bad: pl.Expr, column: str) -> tuple[int, str]:
    """(1-based data row, value as text) of the first row where ``bad`` holds (file order)."""
    first = lazy.filter(bad).select(pl.col(ROW), pl.col(column).cast(pl.String)).head(1).collect()
    row, value = first.row(0)
    return int(row) + 1, str(value)


def _table_mapping(source: SourceConfig) -> tuple[dict[str, str | None], dict[str, str], list[str]]:
    """The ``table`` adapter's column mapping: canonical -> your column (None = absent), only the mapped ones, and
    the id-like columns to read as strings."""
    cm = source.columns
    mapping = {
        USER_ID: cm.user_id, ITEM_ID: cm.item_id, TIMESTAMP: cm.timestamp, ACTION: cm.action,
        DURATION: cm.duration, SESSION_ID: cm.session_id,
    }
    mapped = {canon: col for canon, col in mapping.items() if col is not None}
    id_like = [cm.user_id, cm.item_id, *[c for c in (cm.action, cm.session_id) if c]]
    return mapping, mapped, id_like


def _scan_table(source: SourceConfig) -> RawScan | None:
    """The ``table`` adapter as a lazy scan (same columns, values, report and errors as :func:`_table`)."""
    path = _required_path(source)
    cm = source.columns
    mapping, mapped, id_like = _table_mapping(source)
    raw = _scan_file(path, "data.source.path", id_like)
    if raw is None:
        return None
    names = raw.collect_schema().names()
    require_columns(names, {col: f"data.source.columns.{canon}" for canon, col in mapped.items()},
                    origin=path, what="interactions file")
    if ROW in names:
        raw = raw.rename({ROW: f"{ROW}_raw"})
    raw = raw.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    used = set(mapped.values())
    extras = [c for c in raw.collect_schema().names() if c not in used and c != ROW]
    exprs = [pl.col(col).alias(canon) for canon, col in mapped.items()]
    exprs += [pl.col(c).alias(f"{c}_raw" if c in mapping else c) for c in extras]
    frame = raw.select(pl.col(ROW), *exprs)
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c in (USER_ID, ITEM_ID, ACTION, SESSION_ID)
                               if c in frame.collect_schema().names())
    schema = frame.collect_schema()
    report: dict[str, int] = {}
    if cm.timestamp is None:  # file order; the pipeline renumbers 0, 1, 2, ... per user after cleaning
        frame = frame.with_columns(pl.col(ROW).cast(pl.Float64).alias(TIMESTAMP))
    else:
        dtype = schema[TIMESTAMP]
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            frame = frame.with_columns(date_to_seconds(pl.col(TIMESTAMP), dtype).alias(TIMESTAMP))
        elif cm.timestamp_unit == "datetime":
            if dtype.is_numeric():
                raise _numeric_datetime_error(path, cm.timestamp, dtype)
            parsed = date_to_seconds(pl.col(TIMESTAMP), dtype)
            bad = parsed.is_null() & pl.col(TIMESTAMP).is_not_null()
            if _counts(frame, [_Check("bad", bad)])["bad"]:
                row, value = _first_bad(frame, bad, TIMESTAMP)
                raise _unparsable_date_error(path, cm.timestamp, row, value)
            frame = frame.with_columns(parsed.alias(TIMESTAMP))
        else:
            _check_time_dtype(dtype, str(cm.timestamp), path)
            number = pl.col(TIMESTAMP).cast(pl.Float64, strict=False)
            parsed = pl.when(number.is_infinite() | number.is_nan()).then(None).otherwise(number)
            bad = parsed.is_null() & pl.col(TIMESTAMP).is_not_null()
            divisor = _UNIT_DIVISOR[cm.timestamp_unit]
            seconds = parsed / divisor
            outside = ((seconds < TIMESTAMP_MIN) | (seconds > TIMESTAMP_MAX)).fill_null(False)
            counts = _counts(frame, [_Check("bad", bad), _Check("outside", outside)])
            if counts["bad"]:
                row, value = _first_bad(frame, bad, TIMESTAMP)
                raise DataError(
                    f"{path}: cannot parse timestamp {value!r} in column {cm.timestamp!r} at row {row} (1-based, "
                    "header not counted). Fix the value, or set data.source.columns.timestamp_unit to match the "
                    "column (s, ms, us, ns, or datetime for date strings)."
                )
            if counts["outside"]:
                row, value = _first_bad(frame, outside, TIMESTAMP)
                first = float(frame.filter(outside).select(seconds).head(1).collect().item())
                raise _time_range_error(path, str(cm.timestamp), row, value, first, divisor,
                                        "data.source.columns.timestamp_unit")
            frame = frame.with_columns(seconds.alias(TIMESTAMP))
    if DURATION in schema:
        frame = _clean_duration(frame, path, cm.duration, report)
    items = _table_items(source, report) if source.items_path is not None else None
    item_cols = set(items.columns) if items is not None else set()
    items_origin = Path(source.items_path or "").expanduser()
    for column in source.multi_valued:
        columns = frame.collect_schema().names()
        if column in columns:
            frame = _split_multi(frame, column, source.multi_value_separator, path)
        if items is not None and column in items.columns:
            items = _split_multi(items, column, source.multi_value_separator, items_origin)
        if column not in columns and column not in item_cols:
            raise ConfigError(
                f"data.source.multi_valued names {column!r}, which is neither an interaction column "
                f"({[c for c in columns if c != ROW]}) nor an item column ({sorted(item_cols)})"
            )
    for column in source.date_columns:
        columns = frame.collect_schema().names()
        if items is not None and column in items.columns:
            items = _parse_dates(items, column, Path(source.items_path or ""), report)
        elif column in columns:
            parsed = date_to_seconds(pl.col(column), frame.collect_schema()[column])
            bad = parsed.is_null() & pl.col(column).is_not_null()
            counts = _counts(frame, [_Check("bad", bad), _Check("present", pl.col(column).is_not_null())])
            if counts["bad"] and counts["bad"] == counts["present"]:
                row, value = _first_bad(frame, bad, column)
                raise DataError(
                    f"{path}: no value of date column {column!r} could be parsed (first: {value!r} at row "
                    f"{row}); use ISO dates like 2020-01-31 or remove it from data.source.date_columns"
                )
            if counts["bad"]:
                report[f"dates_unparsable_{column}"] = counts["bad"]
            frame = frame.with_columns(parsed.alias(column))
        else:
            raise ConfigError(
                f"data.source.date_columns names {column!r}, which is neither an item column ({sorted(item_cols)}) "
                f"nor an interaction column ({[c for c in columns if c != ROW]})"
            )
    return RawScan(frame, items, timed=cm.timestamp is not None, dataset=f"table/{path.name}",
                   exclude_seen_default=False, report=report)


# ----------------------------------------------------------------------------------------------------------
# streaming_sim
# ----------------------------------------------------------------------------------------------------------

_SIM_EVENT_COLUMNS = (USER_ID, ITEM_ID, TIMESTAMP, DURATION, SESSION_ID, "true_intent")
_SIM_ITEM_COLUMNS = (
    ITEM_ID, "title", "genre", "format", "show_id", "episode", "n_episodes", "release_date", "runtime", "popularity",
)


def _sim_config(source: SourceConfig) -> streaming_sim.SimConfig:
    return streaming_sim.SimConfig.from_name(source.name or "small")


def _sim_folder(source: SourceConfig) -> Path:
    folder = _required_path(source)
    if not folder.is_dir():
        raise DataError(
            f"data.source.path = {source.path!r} is not a folder; the streaming_sim adapter needs a folder written "
            f"by intentrec.datasets.streaming_sim.write_simulation ({list(streaming_sim.SIM_FILES)}), or null to "
            "generate the preset data.source.name in memory"
        )
    return folder


def _sim_frames(events: pl.LazyFrame, items: pl.DataFrame, origin: str | Path) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """Canonical (lazy) interactions and items of a simulated log (shared by the eager and the lazy reader)."""
    require_columns(events.collect_schema().names(),
                    dict.fromkeys(_SIM_EVENT_COLUMNS, "data.source.path (a streaming_sim folder)"),
                    origin=origin, what="simulated events")
    require_columns(items.columns, dict.fromkeys(_SIM_ITEM_COLUMNS, "data.source.path (a streaming_sim folder)"),
                    origin=origin, what="simulated items")
    frame = events.select(
        pl.col(USER_ID).cast(pl.String), pl.col(ITEM_ID).cast(pl.String), pl.col(TIMESTAMP).cast(pl.Float64),
        pl.col(DURATION).cast(pl.Float64), pl.col(SESSION_ID).cast(pl.String), pl.col("true_intent").cast(pl.String),
    ).with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    items = items.select(_SIM_ITEM_COLUMNS).with_columns(
        date_to_seconds(pl.col("release_date"), items.schema["release_date"]).alias("release_date")
    )
    return frame, items


def _scan_streaming_sim(source: SourceConfig) -> RawScan:
    folder = _sim_folder(source)
    files = streaming_sim.simulation_event_files(folder)
    try:
        config = streaming_sim.SimConfig.model_validate_json((folder / "config.json").read_text(encoding="utf-8"))
        events = pl.scan_parquet(files)
        items = pl.read_parquet(folder / "items.parquet")
    except (OSError, ValueError, pl.exceptions.PolarsError) as err:
        raise DataError(f"cannot read the simulation in {folder}: {err}") from None
    frame, items = _sim_frames(events, items, folder)
    return RawScan(frame, items, timed=True, dataset=f"streaming_sim-{config.label}", exclude_seen_default=False)


def _streaming_sim(source: SourceConfig) -> RawData:
    """The simulated streaming log (``intentrec.datasets.streaming_sim``).

    ``data.source.path`` = a folder written by ``write_simulation`` (``events.parquet``) or
    ``write_sharded_simulation`` (``events/part-*.parquet`` shards) is read; ``null`` generates the preset
    ``data.source.name`` in memory (``tiny``, ``small`` when null, ``medium``, ``large``; ``small@seed=3`` picks a
    seed; the name is ignored when a path is given). The dataset is named ``streaming_sim-<preset>[@seed=<n>]``.

    Interactions keep ``duration`` (minutes watched), ``session_id`` (the simulated sessions, so sessions follow
    them rather than the inactivity gap) and ``true_intent`` (the latent session intent, for analysis; do not use it
    as an input feature). The generator's realised labels, oracle predictions and ``fit`` stay out (they would leak
    the latent state); read them with ``read_simulation`` for ceilings. Item attributes: ``title``, ``genre``,
    ``format`` (``movie``/``show``), ``show_id`` (a movie's own id; groups the episodes of a show), ``episode``,
    ``n_episodes``, ``release_date`` (seconds), ``runtime`` (minutes) and ``popularity``.

    The seen-item filter defaults to off: continuing a show plays a new item (the next episode), but finished movies
    and shows are sometimes rewatched, and a seen item is a legitimate next item here.
    """
    if source.path is None:
        log = streaming_sim.simulate(_sim_config(source))
        origin: str | Path = "generated"
    else:
        folder = _sim_folder(source)
        log = streaming_sim.read_simulation(folder)
        origin = folder
    lazy, items = _sim_frames(log.events.lazy(), log.items, origin)
    return RawData(lazy.collect(), items, timed=True, dataset=f"streaming_sim-{log.config.label}",
                   exclude_seen_default=False)
