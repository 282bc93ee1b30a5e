"""Errors at the boundary: they name the file, the column, the row and the config key to fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from intentrec.config import ColumnMap, DataConfig, SourceConfig
from intentrec.data import adapters, prepare
from intentrec.errors import ConfigError, DataError, SchemaError

WriteTable = Callable[..., Path]
TableConfig = Callable[..., DataConfig]

LOG = {"user_id": ["a", "a", "a", "b", "b", "b"], "item_id": ["x", "y", "z", "x", "y", "x"],
       "timestamp": [1, 2, 3, 4, 5, 6]}


def test_missing_column_names_column_file_and_key(write_table: WriteTable) -> None:
    path = write_table({"uid": ["a"], "item_id": ["x"], "timestamp": [1]})
    with pytest.raises(SchemaError) as info:
        adapters.load(SourceConfig(adapter="table", path=str(path)))
    msg = str(info.value)
    assert "'user_id'" in msg and str(path) in msg and "data.source.columns.user_id" in msg and "uid" in msg
    with pytest.raises(SchemaError, match=r"'when'.*data\.source\.columns\.timestamp"):
        adapters.load(SourceConfig(adapter="table", path=str(path), columns=ColumnMap(user_id="uid", timestamp="when")))


def test_item_file_missing_id_column(write_table: WriteTable) -> None:
    log = write_table(LOG)
    items = write_table({"movie": ["x"], "genre": ["a"]}, name="items.csv")
    with pytest.raises(SchemaError, match=r"items\.csv.*'item_id'.*data\.source\.item_columns_id"):
        adapters.load(SourceConfig(adapter="table", path=str(log), items_path=str(items)))


def test_unparsable_timestamp_names_row_and_value(write_table: WriteTable) -> None:
    path = write_table({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "z"], "timestamp": ["1", "2", "yesterday"]})
    with pytest.raises(DataError, match=r"'yesterday'.*row 3"):
        adapters.load(SourceConfig(adapter="table", path=str(path)))
    dated = write_table({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "z"],
                         "timestamp": ["2020-01-01", "2020-01-02 10:00", "yesterday"]}, name="dated.csv")
    with pytest.raises(DataError, match=r"dated\.csv.*'yesterday'.*row 3"):
        adapters.load(SourceConfig(adapter="table", path=str(dated), columns=ColumnMap(timestamp_unit="datetime")))


def test_datetime_unit_on_numbers_is_a_schema_error(write_table: WriteTable) -> None:
    path = write_table(LOG)
    with pytest.raises(SchemaError, match="timestamp_unit"):
        adapters.load(SourceConfig(adapter="table", path=str(path), columns=ColumnMap(timestamp_unit="datetime")))


def test_empty_missing_and_unsupported_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        adapters.load(SourceConfig(adapter="table", path=str(empty)))
    header_only = tmp_path / "header.csv"
    header_only.write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match="no data rows"):
        adapters.load(SourceConfig(adapter="table", path=str(header_only)))
    with pytest.raises(DataError, match=r"file not found: .*nope\.csv"):
        adapters.load(SourceConfig(adapter="table", path=str(tmp_path / "nope.csv")))
    odd = tmp_path / "log.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        adapters.load(SourceConfig(adapter="table", path=str(odd)))
    broken = tmp_path / "log.parquet"
    broken.write_text("not parquet")
    with pytest.raises(DataError, match=r"cannot read .*log\.parquet"):
        adapters.load(SourceConfig(adapter="table", path=str(broken)))
    with pytest.raises(ConfigError, match=r"data\.source\.path is required"):
        adapters.load(SourceConfig(adapter="table", path=None))


def test_unknown_intent_or_feature_column(write_table: WriteTable, table_config: TableConfig) -> None:
    path = write_table(LOG)
    cfg = table_config(path, intents=[{"name": "genre", "kind": "multi_label", "column": "genres"}])
    with pytest.raises(ConfigError) as info:
        prepare(cfg)
    assert "data.intents[0].column" in str(info.value) and "'genres'" in str(info.value)
    assert "item_id" in str(info.value)  # lists the available columns
    with pytest.raises(ConfigError, match=r"data\.features\.numeric\[0\]"):
        prepare(table_config(path, features={"numeric": ["price"]}))
    with pytest.raises(ConfigError, match=r"data\.features\.categorical\[0\]"):
        prepare(table_config(path, features={"categorical": ["colour"]}))


def test_recency_and_temporal_need_times(write_table: WriteTable, table_config: TableConfig) -> None:
    path = write_table({**LOG, "released": [0.0] * 6})
    untimed = {"timestamp": None}
    cfg = table_config(path, columns=untimed, intents=[{"name": "age", "kind": "recency", "column": "released"}],
                       split={"protocol": "leave-one-out"})
    with pytest.raises(ConfigError, match="untimed"):
        prepare(cfg)
    with pytest.raises(ConfigError, match=r"temporal.*untimed"):
        prepare(table_config(path, columns=untimed))


def test_categorical_intent_on_list_column(write_table: WriteTable, table_config: TableConfig) -> None:
    path = write_table({**LOG, "tags": ["a|b"] * 6})
    cfg = table_config(path, source={"multi_valued": ["tags"]},
                       intents=[{"name": "tag", "kind": "categorical", "column": "tags"}])
    with pytest.raises(ConfigError, match="multi_label"):
        prepare(cfg)


def test_nothing_left_after_cleaning(write_table: WriteTable, table_config: TableConfig) -> None:
    path = write_table(LOG)
    with pytest.raises(DataError, match="no events left"):
        prepare(table_config(path, clean={"min_events_per_user": 10}))
