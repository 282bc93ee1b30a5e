"""Bad input, tried systematically, through the entry point of ``intentrec train`` / ``data describe``
(:func:`intentrec.data.pipeline.prepare_with_report`), in memory and streamed in chunks.

Each bad input either fails with a specific error (a :class:`~intentrec.errors.DataError` / ``SchemaError``, or a
``ConfigError`` when the config does not fit the data) whose message names the file, the column, the row where
there is one, and the fix; or it is repaired and the repair is counted in the preparation report. The table of
cases and messages is in RELIABILITY.md ("bad input").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from intentrec.config import DataConfig, SourceConfig
from intentrec.data import adapters, pipeline
from intentrec.data.pipeline import Prepared, prepare_with_report
from intentrec.errors import ConfigError, DataError, IntentRecError, SchemaError

Prepare = Callable[..., Prepared]

HEADER = "user_id,item_id,timestamp"
ALL_TRAINING = {"protocol": "user", "val_fraction": 0.01, "test_fraction": 0.01}
"""A user split that holds out nobody on a few users: every event is a training event (every item known)."""
LOG = [("a", "x", 1), ("a", "y", 2), ("a", "z", 3), ("b", "x", 4), ("b", "y", 5), ("b", "z", 6)]


def _csv(rows: Sequence[Sequence[Any]], header: str = HEADER) -> str:
    return header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows)


def _config(path: Path, *, columns: Mapping[str, Any] | None = None, source: Mapping[str, Any] | None = None,
            **data: Any) -> DataConfig:
    src: dict[str, Any] = {"adapter": "table", "path": str(path), **(source or {})}
    if columns is not None:
        src["columns"] = dict(columns)
    data.setdefault("cache_dir", None)
    data.setdefault("clean", {"min_events_per_user": 1})
    data.setdefault("split", {"protocol": "leave-one-out"})
    return DataConfig.model_validate({"source": src, **data})


@pytest.fixture(params=["in-memory", "streamed"])
def prepare(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Prepare:
    """``prepare(path, **data_section)``: the in-memory build, or the chunked build (a cache folder and any file
    size stream it), both through ``prepare_with_report``."""

    def run(path: Path, **data: Any) -> Prepared:
        if request.param == "streamed":
            monkeypatch.setattr(pipeline, "STREAM_MIN_BYTES", 0)
            data["cache_dir"] = str(tmp_path / "cache")
        return prepare_with_report(_config(path, **data))

    return run


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _fails(prepare: Prepare, path: Path, kind: type[IntentRecError], *needles: str, **data: Any) -> str:
    """Prepare ``path``, expect ``kind``, and check every needle is in the message; returns the message."""
    with pytest.raises(kind) as info:
        prepare(path, **data)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def _user_items(p: Prepared) -> dict[str, list[str]]:
    data = p.data
    ids = data.item_vocab.ids
    out: dict[str, list[str]] = {}
    for u, user in enumerate(data.user_ids):
        out[user] = [ids[int(i) - 2] if i >= 2 else "<unk>" for i in data.item_idx[data.user_slice(u)]]
    return out


# ----------------------------------------------------------------------------------------------------------
# columns
# ----------------------------------------------------------------------------------------------------------


def test_missing_column(prepare: Prepare, tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", _csv([(u, i) for u, i, _ in LOG], header="user_id,item_id"))
    _fails(prepare, path, SchemaError, str(path), "column 'timestamp' not found",
           "Available columns: ['user_id', 'item_id']", "Fix: set data.source.columns.timestamp")


@pytest.mark.parametrize(("header", "wanted", "found"), [
    ("userId,item_id,timestamp", "user_id", "userId"),
    ("user_id,ItemID,timestamp", "item_id", "ItemID"),
    ("user_id,item_id,time_stamp", "timestamp", "time_stamp"),
    ("user_id,item_id,timestmp", "timestamp", "timestmp"),
])
def test_misnamed_column_suggests_the_closest_name(prepare: Prepare, tmp_path: Path, header: str, wanted: str,
                                                   found: str) -> None:
    path = _write(tmp_path / "log.csv", _csv(LOG, header=header))
    _fails(prepare, path, SchemaError, str(path), f"column {wanted!r} not found", f"Did you mean {found!r}?",
           f"set data.source.columns.{wanted}: {found}")


def test_duplicate_header_column(prepare: Prepare, tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", _csv([(*r, "q") for r in LOG], header=HEADER + ",user_id"))
    _fails(prepare, path, SchemaError, str(path), "names column 'user_id' 2 times (columns [1, 4])", "rename")


# ----------------------------------------------------------------------------------------------------------
# types
# ----------------------------------------------------------------------------------------------------------


def test_text_in_the_duration_column_is_a_counted_repair(prepare: Prepare, tmp_path: Path) -> None:
    rows = [(*r, w) for r, w in zip(LOG, ["10", "abc", "20", "long", "30", "20"], strict=True)]
    path = _write(tmp_path / "log.csv", _csv(rows, header=HEADER + ",watch"))
    p = prepare(path, columns={"duration": "watch"})
    assert p.report["duration_unparsable_set_null"] == 2 and p.report["duration_invalid_set_null"] == 2
    assert p.report["duration_filled_with_median"] == 2
    assert np.isfinite(p.data.duration).all()


def test_a_duration_column_without_numbers_is_a_schema_error(prepare: Prepare, tmp_path: Path) -> None:
    rows = [(*r, w) for r, w in zip(LOG, ["long", "short", "long", "short", "long", "short"], strict=True)]
    path = _write(tmp_path / "log.csv", _csv(rows, header=HEADER + ",watch"))
    _fails(prepare, path, SchemaError, str(path), "column 'watch'", "data.source.columns.duration",
           "holds no numbers", "'long' at row 1", "Point data.source.columns.duration at a numeric",
           columns={"duration": "watch"})


@pytest.mark.parametrize(("column", "values", "needles"), [
    ("timestamp", [True, False, True, True, False, True], ("column 'timestamp' holds Boolean values, not times",)),
    ("timestamp", [[1], [2], [3], [4], [5], [6]], ("column 'timestamp' holds List(Int64) values, not times",)),
    ("user_id", [["a"], ["a"], ["a"], ["b"], ["b"], ["b"]], ("column 'user_id' holds List(String) values",
                                                           "an id column needs one value per row")),
    ("watch", [[1.0]] * 6, ("column 'watch' (data.source.columns.duration) holds List(Float64) values",)),
])
def test_columns_of_the_wrong_kind_are_schema_errors(prepare: Prepare, tmp_path: Path, column: str,
                                                     values: list[Any], needles: tuple[str, ...]) -> None:
    table: dict[str, Any] = {"user_id": [r[0] for r in LOG], "item_id": [r[1] for r in LOG],
                             "timestamp": [r[2] for r in LOG], "watch": [1.0] * 6}
    table[column] = values
    path = tmp_path / "log.parquet"
    pl.DataFrame(table).write_parquet(path)
    _fails(prepare, path, SchemaError, str(path), *needles, columns={"duration": "watch"})


def test_text_in_a_numeric_feature_names_the_key_and_value(prepare: Prepare, tmp_path: Path) -> None:
    rows = [(*r, v) for r, v in zip(LOG, ["1.5", "2", "cheap", "4", "5", "6"], strict=True)]
    path = _write(tmp_path / "log.csv", _csv(rows, header=HEADER + ",price"))
    _fails(prepare, path, ConfigError, "data.features.numeric[0] = 'price'", "numbers mixed with text",
           "'cheap'", "fix or blank those values", features={"numeric": ["price"]})


# ----------------------------------------------------------------------------------------------------------
# timestamps
# ----------------------------------------------------------------------------------------------------------


def test_unparsable_timestamp_beyond_the_type_inference_window(prepare: Prepare, tmp_path: Path) -> None:
    # types are inferred from the first 10,000 rows: a bad value later must still name its row, not crash
    rows: list[tuple[Any, ...]] = [(f"u{j % 40}", f"i{j % 60}", j) for j in range(12_000)]
    rows[11_000] = ("u0", "i0", "yesterday")
    path = _write(tmp_path / "log.csv", _csv(rows))
    _fails(prepare, path, DataError, str(path), "cannot parse timestamp 'yesterday'", "column 'timestamp'",
           "at row 11001", "data.source.columns.timestamp_unit")


def test_unparsable_timestamp_names_your_column(prepare: Prepare, tmp_path: Path) -> None:
    rows = [(u, i, t) for (u, i, _), t in zip(LOG, ["1", "2", "x3", "4", "5", "6"], strict=True)]
    path = _write(tmp_path / "log.csv", _csv(rows, header="user_id,item_id,when"))
    _fails(prepare, path, DataError, str(path), "'x3'", "column 'when'", "at row 3", columns={"timestamp": "when"})


@pytest.mark.parametrize(("scale", "unit"), [(1_000, "ms"), (1_000_000, "us"), (1_000_000_000, "ns")])
def test_timestamps_in_the_wrong_unit_name_the_unit(prepare: Prepare, tmp_path: Path, scale: int, unit: str) -> None:
    rows = [(u, i, (1_600_000_000 + t) * scale) for u, i, t in LOG]
    path = _write(tmp_path / "log.csv", _csv(rows))
    _fails(prepare, path, DataError, str(path), "column 'timestamp'", "at row 1", "outside the years 1-9999",
           f"set data.source.columns.timestamp_unit: {unit}", split={"protocol": "temporal"})


def test_out_of_order_timestamps_are_sorted_not_refused(prepare: Prepare, tmp_path: Path) -> None:
    rows = [("b", "z", 60), ("a", "z", 30), ("a", "x", 10), ("b", "y", 50), ("a", "y", 20), ("b", "x", 40),
            ("a", "w", 20)]  # a tie (a, t=20): file order decides
    path = _write(tmp_path / "log.csv", _csv(rows))
    p = prepare(path, split=ALL_TRAINING)
    assert _user_items(p) == {"a": ["x", "y", "w", "z"], "b": ["x", "y", "z"]}
    data = p.data
    for u in range(data.n_users):
        assert (np.diff(data.timestamps[data.user_slice(u)]) >= 0).all()
    assert data.timestamps.tolist() == [10.0, 20.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert p.report["events_read"] == 7 and int(data.offsets[-1]) == 7  # nothing dropped


# ----------------------------------------------------------------------------------------------------------
# durations (engagement)
# ----------------------------------------------------------------------------------------------------------


def test_nan_negative_infinite_and_absurd_durations_are_counted_repairs(prepare: Prepare, tmp_path: Path) -> None:
    """NaN, +-inf, negative and > 1e10 (absurd in any unit) engagement values are set to null and filled with
    the training median: counted, never an error, never a weight of 1e12."""
    watch = ["4", "nan", "-3", "1e12", "inf", "8", "6", "2"]
    rows = [("a", f"i{j}", j, w) for j, w in enumerate(watch)]
    path = _write(tmp_path / "log.csv", _csv(rows, header=HEADER + ",watch"))
    p = prepare(path, columns={"duration": "watch"})
    assert p.report["duration_invalid_set_null"] == 4  # nan, -3, 1e12, inf
    assert p.report["duration_absurd_set_null"] == 1
    assert p.report["duration_filled_with_median"] == 4
    median = p.data.duration_median
    assert median == 6.0  # of the valid training values 4 and 8 (leave-one-out: the last two are evaluation)
    assert p.data.duration.tolist() == [4.0, median, median, median, median, 8.0, 6.0, 2.0]


# ----------------------------------------------------------------------------------------------------------
# duplicates and short users
# ----------------------------------------------------------------------------------------------------------


def test_exact_duplicate_events_are_dropped_and_counted(prepare: Prepare, tmp_path: Path) -> None:
    rows = [*LOG, ("a", "x", 1), ("a", "x", 1), ("b", "z", 6), ("a", "x", 2)]  # the last one differs in time
    path = _write(tmp_path / "log.csv", _csv(rows))
    p = prepare(path)
    assert p.report["duplicates_dropped"] == 3
    assert p.report["events_read"] == 10 and int(p.data.offsets[-1]) == 7


def test_users_with_one_event_are_dropped_and_counted(prepare: Prepare, tmp_path: Path) -> None:
    rows = [*LOG, ("c", "x", 7), ("d", "y", 8)]
    path = _write(tmp_path / "log.csv", _csv(rows))
    p = prepare(path, clean={"min_events_per_user": 2})  # the default: a user needs an input and a target
    assert p.report["users_dropped_min_events"] == 2 and p.report["events_dropped_min_events"] == 2
    assert p.data.user_ids == ("a", "b")


# ----------------------------------------------------------------------------------------------------------
# empty files
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content"), [
    ("log.csv", ""), ("log.csv", HEADER + "\n"), ("log.tsv", "user_id\titem_id\ttimestamp\n"), ("log.jsonl", ""),
    ("log.jsonl", "\n\n"), ("log.parquet", None),
])
def test_empty_files(prepare: Prepare, tmp_path: Path, name: str, content: str | None) -> None:
    path = tmp_path / name
    if content is None:
        pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64}).write_parquet(path)
    else:
        _write(path, content)
    msg = _fails(prepare, path, DataError, str(path), "data.source.path")
    assert "is empty (0 bytes)" in msg or "has no data rows" in msg or "no interactions" in msg


def test_empty_item_file(prepare: Prepare, tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", _csv(LOG))
    items = _write(tmp_path / "items.csv", "item_id,genres\n")
    _fails(prepare, path, DataError, str(items), "has no data rows", "data.source.items_path",
           source={"items_path": str(items)})


# ----------------------------------------------------------------------------------------------------------
# ids
# ----------------------------------------------------------------------------------------------------------

BIG = str(2**62)
HUGE = "1234567890123456789012345678901234567890"  # 40 digits: beyond any integer type


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_huge_ids_are_opaque_and_exact(prepare: Prepare, tmp_path: Path, fmt: str) -> None:
    users = [HUGE, HUGE, HUGE, BIG, BIG, BIG]
    items = [HUGE, BIG, "-5", HUGE, BIG, "-5"]
    path = tmp_path / f"log.{fmt}"
    if fmt == "csv":
        _write(path, _csv(list(zip(users, items, range(6), strict=True))))
    elif fmt == "jsonl":  # unquoted integers: JSON has no size limit, Polars' reader does
        _write(path, "".join(f'{{"user_id": {u}, "item_id": {i}, "timestamp": {t}}}\n'
                             for t, (u, i) in enumerate(zip(users, items, strict=True))))
    else:
        pl.DataFrame({"user_id": pl.Series([2**64 - 1] * 3 + [2**62] * 3, dtype=pl.UInt64),
                      "item_id": pl.Series([2**64 - 1, 2**62, 7] * 2, dtype=pl.UInt64),
                      "timestamp": list(range(6))}).write_parquet(path)
        users = [str(2**64 - 1)] * 3 + [BIG] * 3
        items = [str(2**64 - 1), BIG, "7"] * 2
    p = prepare(path, split=ALL_TRAINING)
    assert sorted(p.data.user_ids) == sorted(set(users))
    assert sorted(p.data.item_vocab.ids) == sorted(set(items))  # every item is a training item here
    assert _user_items(p) == {u: [i for uu, i in zip(users, items, strict=True) if uu == u] for u in set(users)}


def test_leading_zeros_and_decimal_looking_ids_are_kept(prepare: Prepare, tmp_path: Path) -> None:
    rows = [("007", "1.50", 1), ("007", "1.5", 2), ("7", "01", 3), ("7", "1", 4)]
    path = _write(tmp_path / "log.csv", _csv(rows))
    p = prepare(path, split=ALL_TRAINING)
    assert _user_items(p) == {"007": ["1.50", "1.5"], "7": ["01", "1"]}


# ----------------------------------------------------------------------------------------------------------
# encodings and malformed text
# ----------------------------------------------------------------------------------------------------------


def test_non_utf8_bytes_name_file_line_offset_and_column(prepare: Prepare, tmp_path: Path) -> None:
    text = _csv([("a", "x", 1), ("a", "caf\xe9", 2), ("b", "y", 3)])
    path = _write(tmp_path / "log.csv", text.encode("latin-1"))
    offset = text.encode("latin-1").index(b"\xe9")
    _fails(prepare, path, DataError, str(path), "line 3 is not valid UTF-8", f"byte offset {offset}",
           "column 'item_id'", "iconv -f latin1 -t utf-8", "data.source.path")


def test_non_utf8_bytes_in_jsonl_and_in_the_item_file(prepare: Prepare, tmp_path: Path) -> None:
    jsonl = _write(tmp_path / "log.jsonl", '{"user_id": "a", "item_id": "x", "timestamp": 1}\n'
                   '{"user_id": "a", "item_id": "\xe9t\xe9", "timestamp": 2}\n'.encode("latin-1"))
    _fails(prepare, jsonl, DataError, str(jsonl), "line 2 is not valid UTF-8", "key 'item_id'")
    log = _write(tmp_path / "log.csv", _csv(LOG))
    items = _write(tmp_path / "items.csv", "item_id,title\nx,Am\xe9lie\ny,b\n".encode("latin-1"))
    _fails(prepare, log, DataError, str(items), "line 2 is not valid UTF-8", "column 'title'",
           "data.source.items_path", source={"items_path": str(items)})


def test_a_utf8_byte_order_mark_and_crlf_line_ends_are_fine(prepare: Prepare, tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", ("\ufeff" + _csv(LOG)).replace("\n", "\r\n").encode("utf-8"))
    p = prepare(path)
    assert p.data.user_ids == ("a", "b") and p.report["events_read"] == 6


def test_a_ragged_line_is_named(prepare: Prepare, tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", _csv(LOG) + "c,x,7,extra\n")
    _fails(prepare, path, DataError, str(path), "line 8 has 4 fields but the header has 3")


def test_a_malformed_json_line_is_named(prepare: Prepare, tmp_path: Path) -> None:
    path = _write(tmp_path / "log.jsonl", '{"user_id": "a", "item_id": "x", "timestamp": 1}\n'
                  '{"user_id": "a", "item_id": "y", "timestamp": 2\n')
    _fails(prepare, path, DataError, str(path), "line 2 is not valid JSON")


# ----------------------------------------------------------------------------------------------------------
# multi-valued attributes
# ----------------------------------------------------------------------------------------------------------

TAGS = ["a|b", " a | b ", "a||b", "a|b|", "|b", "", "|", None, "a|a", "b"]
SPLIT = [["a", "b"], ["a", "b"], ["a", "b"], ["a", "b"], ["b"], [], [], None, ["a", "a"], ["b"]]


def test_multi_valued_parsing_trims_and_drops_empty_labels(tmp_path: Path) -> None:
    """Split at the separator, strip each label, drop empty ones; '' and '|' give no label, null stays null."""
    path = tmp_path / "log.parquet"  # Parquet keeps "" and null apart
    pl.DataFrame({"user_id": ["u"] * 10, "item_id": [f"i{j}" for j in range(10)], "timestamp": list(range(10)),
                  "tags": TAGS}).write_parquet(path)
    raw = adapters.load(SourceConfig(adapter="table", path=str(path), multi_valued=("tags",)))
    assert raw.interactions["tags"].to_list() == SPLIT
    semi = path.with_name("semi.parquet")
    pl.DataFrame({"user_id": ["u"] * 3, "item_id": ["i", "j", "k"], "timestamp": [1, 2, 3],
                  "tags": ["a;;b", "a;;;;b;;", ";;"]}).write_parquet(semi)
    raw = adapters.load(SourceConfig(adapter="table", path=str(semi), multi_valued=("tags",),
                                     multi_value_separator=";;"))
    assert raw.interactions["tags"].to_list() == [["a", "b"], ["a", "b"], []]


def test_multi_valued_labels_encode_once_per_event(prepare: Prepare, tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": ["u"] * 10, "item_id": [f"i{j}" for j in range(10)], "timestamp": list(range(10)),
                  "tags": TAGS}).write_parquet(path)
    p = prepare(path, source={"multi_valued": ["tags"]},
                intents=[{"name": "tag", "kind": "multi_label", "column": "tags"}],
                split=ALL_TRAINING)
    vocab = p.data.label_vocabs["tag"]
    assert set(vocab.labels[2:]) == {"a", "b"}
    codes = p.data.categorical["tag"]  # (N, L): distinct labels of each event, 0-padded
    a, b = vocab.labels.index("a"), vocab.labels.index("b")
    want = [{a, b}, {a, b}, {a, b}, {a, b}, {b}, set(), set(), set(), {a}, {b}]
    assert [set(row[row > 0].tolist()) for row in codes] == want


def test_another_separator_than_the_configured_one_is_named(prepare: Prepare, tmp_path: Path) -> None:
    rows = [(*r, t) for r, t in zip(LOG, ['"a, b"', "a", '"b, c"', "c", '"a, c"', "b"], strict=True)]
    path = _write(tmp_path / "log.csv", _csv(rows, header=HEADER + ",tags"))
    _fails(prepare, path, ConfigError, str(path), "column 'tags'", "data.source.multi_value_separator '|'",
           "3 of 6 values contain ','", "set data.source.multi_value_separator: ','",
           source={"multi_valued": ["tags"]})
    p = prepare(path, source={"multi_valued": ["tags"], "multi_value_separator": ","},
                intents=[{"name": "tag", "kind": "multi_label", "column": "tags"}])
    assert set(p.data.label_vocabs["tag"].labels[2:]) <= {"a", "b", "c"}
