"""Adapters on the real shared datasets (skipped when absent) and on small synthetic files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from intentrec.config import ColumnMap, SourceConfig
from intentrec.data import adapters
from intentrec.data.adapters import TRIVAGO_CONTEXT_ACTIONS, TRIVAGO_ITEM_ACTIONS
from intentrec.errors import ConfigError, DataError

WriteTable = Callable[..., Path]


def _epoch(y: int, m: int = 1, d: int = 1) -> float:
    return datetime(y, m, d, tzinfo=UTC).timestamp()


# ----------------------------------------------------------------------------------------------------------
# movielens
# ----------------------------------------------------------------------------------------------------------


def _check_ml_latest_small(raw: adapters.RawData) -> None:
    frame, items = raw.interactions, raw.items
    assert items is not None
    assert frame.height == 100_004
    assert frame["user_id"].n_unique() == 671
    assert frame["item_id"].n_unique() == 9_066
    assert raw.timed and raw.exclude_seen_default
    assert frame.schema["user_id"] == pl.String and frame.schema["timestamp"] == pl.Float64
    assert frame["duration"].to_list()[:5] == frame["rating"].to_list()[:5]
    assert items.height == 9_125
    toy = items.filter(pl.col("item_id") == "1").row(0, named=True)
    assert toy["genres"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert toy["year"] == 1995
    assert toy["release_date"] == _epoch(1995)
    no_genre = items.filter(pl.col("genres").list.len() == 0)
    assert no_genre.height > 0  # "(no genres listed)" -> []
    assert "(no genres listed)" not in items["genres"].explode().drop_nulls().unique().to_list()
    assert items["year"].null_count() / items.height < 0.01


def test_movielens_real_folder(shared_data: Path) -> None:
    raw = adapters.load(SourceConfig(adapter="movielens", path=str(shared_data / "movielens-latest-small")))
    _check_ml_latest_small(raw)


def test_movielens_bundled_needs_no_shared_folder() -> None:
    raw = adapters.load(SourceConfig(adapter="movielens", path=None))
    _check_ml_latest_small(raw)
    assert "bundled" in raw.dataset


def test_movielens_100k_format(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t10\t4\t881250949\n1\t20\t3\t881250950\n2\t10\t5\t881250960\n")
    flags_a = "|".join(["0", "1", "0"] + ["0"] * 16)  # Action
    flags_b = "|".join(["1"] + ["0"] * 18)  # unknown only -> []
    (tmp_path / "u.item").write_bytes(
        f"10|Toy Story (1995)|01-Jan-1995||http://x|{flags_a}\n"
        f"20|Amélie (2001)|||http://y|{flags_b}\n".encode("latin-1")
    )
    raw = adapters.load(SourceConfig(adapter="movielens", path=str(tmp_path)))
    assert raw.interactions.height == 3
    items = {r["item_id"]: r for r in raw.items.iter_rows(named=True)}  # type: ignore[union-attr]
    assert items["10"]["genres"] == ["Action"] and items["10"]["release_date"] == _epoch(1995)
    assert items["20"]["title"] == "Amélie (2001)" and items["20"]["genres"] == []
    assert items["20"]["release_date"] == _epoch(2001)  # no release date: 1 January of the title year


def test_movielens_1m_format(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::5::3::978300760\n1::6::4::978300761\n2::5::5::978300762\n")
    (tmp_path / "movies.dat").write_bytes(
        "5::Star Wars: Episode IV (1977)::Action|Sci-Fi\n6::Café (1999)::(no genres listed)\n".encode("latin-1")
    )
    raw = adapters.load(SourceConfig(adapter="movielens", path=str(tmp_path)))
    assert raw.interactions["item_id"].to_list() == ["5", "6", "5"]
    items = {r["item_id"]: r for r in raw.items.iter_rows(named=True)}  # type: ignore[union-attr]
    assert items["5"]["title"] == "Star Wars: Episode IV (1977)"
    assert items["5"]["genres"] == ["Action", "Sci-Fi"] and items["5"]["year"] == 1977
    assert items["6"]["genres"] == [] and items["6"]["title"] == "Café (1999)"


def test_movielens_not_a_movielens_folder(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match="not a MovieLens folder"):
        adapters.load(SourceConfig(adapter="movielens", path=str(tmp_path)))
    with pytest.raises(DataError, match="not a folder"):
        adapters.load(SourceConfig(adapter="movielens", path=str(tmp_path / "other.csv")))


# ----------------------------------------------------------------------------------------------------------
# s3rec
# ----------------------------------------------------------------------------------------------------------


def test_s3rec_beauty(shared_data: Path) -> None:
    raw = adapters.load(SourceConfig(adapter="s3rec", path=str(shared_data / "amazon-yelp-lastfm-s3rec"), name="Beauty"))
    frame = raw.interactions
    assert frame.height == 198_502
    assert frame["user_id"].n_unique() == 22_363
    assert frame["item_id"].n_unique() == 12_101
    assert raw.timed is False and raw.exclude_seen_default is True
    # untimed: timestamp is the order index within the user
    check = frame.select((pl.col("timestamp") == pl.int_range(pl.len()).over("user_id")).all()).item()
    assert check
    first = frame.filter(pl.col("user_id") == "1")["item_id"].to_list()
    assert first == ["1", "2", "3", "4", "5"]
    items = raw.items
    assert items is not None and items.schema["category"] == pl.List(pl.String)
    assert items.filter(pl.col("item_id") == "4")["category"].to_list() == [["1", "2", "3"]]
    assert items.select((pl.col("category").list.n_unique() == pl.col("category").list.len()).all()).item()


def test_s3rec_lastfm_defaults(shared_data: Path) -> None:
    raw = adapters.load(SourceConfig(adapter="s3rec", path=str(shared_data / "amazon-yelp-lastfm-s3rec"), name="LastFM"))
    assert raw.exclude_seen_default is False and raw.timed is False
    assert raw.interactions["user_id"].n_unique() == 1_090
    assert raw.interactions.height == 52_551


def test_s3rec_synthetic_and_errors(tmp_path: Path) -> None:
    (tmp_path / "Toy.txt").write_text("u1 a b c\nu2  b   a\n")
    (tmp_path / "Toy_item2attributes.json").write_text('{"a": [1, 2, 1], "b": [3], "c": []}')
    raw = adapters.load(SourceConfig(adapter="s3rec", path=str(tmp_path), name="Toy"))
    assert raw.interactions.select("user_id", "item_id", "timestamp").rows() == [
        ("u1", "a", 0.0), ("u1", "b", 1.0), ("u1", "c", 2.0), ("u2", "b", 0.0), ("u2", "a", 1.0)
    ]
    cats = dict(raw.items.select("item_id", "category").rows())  # type: ignore[union-attr]
    assert cats == {"a": ["1", "2"], "b": ["3"], "c": []}
    with pytest.raises(ConfigError, match=r"data\.source\.name.*Toy"):
        adapters.load(SourceConfig(adapter="s3rec", path=str(tmp_path)))
    with pytest.raises(DataError, match=r"Nope\.txt not found"):
        adapters.load(SourceConfig(adapter="s3rec", path=str(tmp_path), name="Nope"))


# ----------------------------------------------------------------------------------------------------------
# trivago
# ----------------------------------------------------------------------------------------------------------


def test_trivago_real(shared_data: Path) -> None:
    path = shared_data / "trivago-rsc19-100k" / "trivago_val_100k.parquet.snappy"
    raw = adapters.load(SourceConfig(adapter="trivago", path=str(path)))
    frame = raw.interactions
    assert set(frame["action"].unique().to_list()) <= set(TRIVAGO_ITEM_ACTIONS)
    kinds = set(frame["action"].unique().to_list()) | set(frame["context_action"].unique().to_list())
    assert kinds - {"none"} == set(TRIVAGO_ITEM_ACTIONS) | set(TRIVAGO_CONTEXT_ACTIONS)  # all 10 action types
    assert frame.height == 100_003 - raw.report["trivago_context_rows_folded"]
    assert raw.report["trivago_context_rows_folded"] == 5303 + 3060 + 2948 + 1080
    assert {"device", "platform", "city", "step", "session_id"} <= set(frame.columns)
    assert raw.timed and raw.exclude_seen_default is False
    ordered = frame.sort(["user_id", "timestamp", "step"], maintain_order=True)
    assert ordered["_row"].to_list() == frame["_row"].to_list()


def test_trivago_context_action(write_table: WriteTable) -> None:
    path = write_table(
        {
            "user_id": ["u"] * 7,
            "session_id": ["s1"] * 5 + ["s2"] * 2,
            "timestamp": [1, 2, 3, 4, 5, 10, 11],
            "step": [1, 2, 3, 4, 5, 1, 2],
            "action_type": [
                "filter selection", "interaction item image", "clickout item", "search for poi",
                "interaction item info", "clickout item", "change of sort order",
            ],
            "reference": ["Sort by Price", "7", "8", "Eiffel", "7", "9", "price"],
            "platform": ["FR"] * 7, "city": ["Paris"] * 7, "device": ["mobile"] * 7,
        },
        name="log.csv",
    )
    raw = adapters.load(SourceConfig(adapter="trivago", path=str(path)))
    rows = raw.interactions.select("item_id", "action", "context_action").rows()
    assert rows == [
        ("7", "interaction item image", "filter selection"),
        ("8", "clickout item", "filter selection"),
        ("7", "interaction item info", "search for poi"),
        ("9", "clickout item", "none"),  # context never crosses sessions
    ]
    assert raw.report["trivago_context_rows_folded"] == 3


# ----------------------------------------------------------------------------------------------------------
# table
# ----------------------------------------------------------------------------------------------------------


def test_table_column_map_units_items(write_table: WriteTable) -> None:
    log = write_table(
        {
            "member": ["007", "007", "b"],
            "thing": ["x", "y", "x"],
            "when_ms": [1_000, 2_500, 3_000],
            "watch": [10.0, float("nan"), -1.0],
            "kind": ["play", "play", "browse"],
            "tags": ["a|b", "", "c"],
        },
        name="log.parquet",
    )
    items = write_table({"sku": ["x", "y", "y"], "genres": ["Drama| Comedy", "Action", "dup"],
                         "released": ["2020-01-01", "bad date", "2021-01-01"]}, name="items.csv")
    source = SourceConfig(
        adapter="table", path=str(log), items_path=str(items), item_columns_id="sku",
        columns=ColumnMap(user_id="member", item_id="thing", timestamp="when_ms", timestamp_unit="ms",
                          duration="watch", action="kind"),
        multi_valued=("genres", "tags"), date_columns=("released",),
    )
    raw = adapters.load(source)
    frame = raw.interactions
    assert frame["user_id"].to_list() == ["007", "007", "b"]  # leading zeros kept
    assert frame["timestamp"].to_list() == [1.0, 2.5, 3.0]
    assert frame["duration"].to_list() == [10.0, None, None]
    assert raw.report["duration_invalid_set_null"] == 2
    assert frame["tags"].to_list() == [["a", "b"], [], ["c"]]
    assert frame["action"].to_list() == ["play", "play", "browse"]
    assert raw.items is not None and raw.items.height == 2 and raw.report["item_rows_duplicate"] == 1
    got = dict(raw.items.select("item_id", "genres").rows())
    assert got == {"x": ["Drama", "Comedy"], "y": ["Action"]}
    released = dict(raw.items.select("item_id", "released").rows())
    assert released == {"x": _epoch(2020), "y": None}
    assert raw.report["dates_unparsable_released"] == 1


def test_table_datetime_strings_and_untimed(write_table: WriteTable) -> None:
    log = write_table({"user_id": ["a", "a", "b"], "item_id": [1, 2, 3],
                       "ts": ["2020-01-01T00:00:00Z", "2020-01-01 01:00:00", "2020-01-02T02:00:00+02:00"]})
    raw = adapters.load(SourceConfig(adapter="table", path=str(log),
                                     columns=ColumnMap(timestamp="ts", timestamp_unit="datetime")))
    assert raw.interactions["timestamp"].to_list() == [_epoch(2020), _epoch(2020) + 3600, _epoch(2020, 1, 2)]
    assert raw.interactions["item_id"].to_list() == ["1", "2", "3"]
    untimed = adapters.load(SourceConfig(adapter="table", path=str(log), columns=ColumnMap(timestamp=None)))
    assert untimed.timed is False
    assert untimed.interactions["timestamp"].to_list() == [0.0, 1.0, 0.0]
    assert "ts" in untimed.interactions.columns  # unmapped columns are kept


def test_table_jsonl_and_tsv(write_table: WriteTable) -> None:
    cols = {"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": [1, 2]}
    for name in ("log.jsonl", "log.tsv"):
        raw = adapters.load(SourceConfig(adapter="table", path=str(write_table(cols, name=name))))
        assert raw.interactions.select("user_id", "item_id", "timestamp").rows() == [("a", "x", 1.0), ("b", "y", 2.0)]


def test_table_null_keys_dropped_and_counted(write_table: WriteTable) -> None:
    log = write_table({"user_id": ["a", None, "b"], "item_id": ["x", "y", None], "timestamp": [1, 2, None]})
    raw = adapters.load(SourceConfig(adapter="table", path=str(log)))
    assert raw.interactions.height == 1
    assert raw.report == {"rows_missing_user_id": 1, "rows_missing_item_id": 1}
