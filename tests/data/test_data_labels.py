"""Intent labels and input attributes: recency buckets, repeat labels, multi-label layout, features."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from intentrec.config import DataConfig
from intentrec.data import prepare
from intentrec.data.encode import MAX_LABELS_PER_EVENT
from intentrec.data.labels import recency_labels

WriteTable = Callable[..., Path]
TableConfig = Callable[..., DataConfig]
DAY = 86400.0
LOO = {"protocol": "leave-one-out"}


def test_recency_label_names() -> None:
    assert recency_labels((7.0, 30.0, 365.0)) == ["<=7d", "7d-30d", "30d-365d", ">365d"]
    assert recency_labels((0.5, 2)) == ["<=0.5d", "0.5d-2d", ">2d"]


def test_recency_buckets_hand_checked(write_table: WriteTable, table_config: TableConfig) -> None:
    ages = [0, 7, 7.5, 30, 31, 365, 400, None, -1]  # days; an age equal to an edge falls in the lower bucket
    release = 1_000_000.0
    path = write_table({
        "user_id": [f"u{j}" for j in range(len(ages))],  # one event per user: the order stays as written
        "item_id": [f"i{j}" for j in range(len(ages))],
        "timestamp": [release + (a if a is not None else 50) * DAY for a in ages],
        "released": [release if a is not None else None for a in ages],
    })
    data = prepare(table_config(path, split=LOO,
                                intents=[{"name": "age", "kind": "recency", "column": "released"}]))
    vocab = data.label_vocabs["age"]
    assert vocab.labels == ("<pad>", "other", "<=7d", "7d-30d", "30d-365d", ">365d")
    got = [vocab.decode(int(x)) for x in data.categorical["age"]]
    expected = ["<=7d", "<=7d", "7d-30d", "7d-30d", "30d-365d", "30d-365d", ">365d", "other", "<=7d"]
    assert got == expected
    assert data.categorical["age"].tolist() == [2, 2, 3, 3, 4, 4, 5, 1, 2]
    spec = data.spec.attribute("age")
    assert spec.is_intent and spec.is_input and not spec.multi_valued and spec.n_classes == 6


def test_repeat_label_brute_force(write_table: WriteTable, table_config: TableConfig) -> None:
    rng = np.random.default_rng(3)
    n = 300
    users = [f"u{x}" for x in rng.integers(0, 12, n)]
    items = [f"i{x}" for x in rng.integers(0, 25, n)]
    times = rng.permutation(n).astype(float)
    log = write_table({"user_id": users, "item_id": items, "timestamp": times})
    series = {f"i{j}": (f"s{j % 5}" if j % 3 else None) for j in range(25)}
    item_file = write_table({"item_id": list(series), "show": list(series.values())}, name="items.csv")
    cfg = table_config(log, split=LOO, clean={"min_events_per_user": 1, "dedupe": False},
                       source={"items_path": str(item_file)},
                       intents=[{"name": "rep", "kind": "repeat"},
                                {"name": "rep_show", "kind": "repeat", "series_column": "show"}])
    data = prepare(cfg)
    order = sorted(range(n), key=lambda j: (users[j], times[j], j))
    exp_item, exp_show = [], []
    seen_item: dict[str, set[str]] = {}
    seen_show: dict[str, set[str]] = {}
    for j in order:
        u, i = users[j], items[j]
        key = series[i] or f"item:{i}"
        exp_item.append("repeat" if i in seen_item.setdefault(u, set()) else "new")
        exp_show.append("repeat" if key in seen_show.setdefault(u, set()) else "new")
        seen_item[u].add(i)
        seen_show[u].add(key)
    for name, expected in (("rep", exp_item), ("rep_show", exp_show)):
        vocab = data.label_vocabs[name]
        assert vocab.labels == ("<pad>", "other", "new", "repeat")
        assert [vocab.decode(int(x)) for x in data.categorical[name]] == expected


def test_multi_label_layout(write_table: WriteTable, table_config: TableConfig) -> None:
    many = "|".join(f"g{j:02d}" for j in range(20))
    tags = ["a|b", "b", "", "b|a|c|rare", many, "a|a|b"]
    path = write_table({"user_id": ["u"] * 6, "item_id": [f"i{j}" for j in range(6)],
                        "timestamp": list(range(6)), "tags": tags})
    cfg = table_config(path, split={"protocol": "user", "val_fraction": 0.01, "test_fraction": 0.01},
                       source={"multi_valued": ["tags"]},
                       intents=[{"name": "tag", "kind": "multi_label", "column": "tags", "min_count": 2}])
    data = prepare(cfg)
    vocab = data.label_vocabs["tag"]
    assert vocab.labels == ("<pad>", "other", "b", "a")  # b: 4 events, a: 3 events; c, rare, gNN: 1 -> other
    values = data.categorical["tag"]
    assert values.dtype == np.int64 and values.ndim == 2
    assert values.shape[1] == 3  # the most labels any event has after folding: b, a, other
    b, a, other = 2, 3, 1
    assert values.tolist() == [
        [b, a, 0],
        [b, 0, 0],
        [0, 0, 0],  # no labels: all zero, no target
        [b, a, other],  # other last, once
        [other, 0, 0],
        [b, a, 0],  # duplicates within an event collapse
    ]
    assert data.spec.attribute("tag").multi_valued


def test_multi_label_cap(write_table: WriteTable, table_config: TableConfig) -> None:
    many = "|".join(f"g{j:02d}" for j in range(20))
    path = write_table({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [0, 1], "tags": [many, many]})
    cfg = table_config(path, split={"protocol": "user", "val_fraction": 0.01, "test_fraction": 0.01},
                       source={"multi_valued": ["tags"]},
                       intents=[{"name": "tag", "kind": "multi_label", "column": "tags"}])
    values = prepare(cfg).categorical["tag"]
    assert values.shape == (2, MAX_LABELS_PER_EVENT)
    assert values[0].tolist() == list(range(2, 2 + MAX_LABELS_PER_EVENT))  # most frequent (then by name) first


def test_categorical_features_and_intent_flags(write_table: WriteTable, table_config: TableConfig) -> None:
    path = write_table({"user_id": ["u"] * 4 + ["v"] * 4, "item_id": list("abcdabcd"), "timestamp": list(range(8)),
                        "kind": ["play", "play", "browse", None, "play", "search", "play", "play"],
                        "device": ["tv", "tv", "web", "web", "tv", "tv", "phone", "tv"]})
    cfg = table_config(path, split=LOO, columns={"action": "kind"},
                       intents=[{"name": "act", "kind": "categorical", "column": "action", "as_feature": False}],
                       features={"categorical": ["device"]})
    data = prepare(cfg)
    assert [a.name for a in data.spec.attributes] == ["act", "device"]
    act, device = data.spec.attribute("act"), data.spec.attribute("device")
    assert act.is_intent and not act.is_input
    assert device.is_input and not device.is_intent
    assert data.categorical["act"].shape == (8,)
    decoded = [data.label_vocabs["act"].decode(int(x)) for x in data.categorical["act"]]
    # leave-one-out trains on each user's first 2 events: play x3, search x1; browse only later -> other
    assert decoded == ["play", "play", "other", "<pad>", "play", "search", "play", "play"]


@pytest.mark.parametrize("as_feature", [True, False])
def test_as_feature_flag(write_table: WriteTable, table_config: TableConfig, as_feature: bool) -> None:
    path = write_table({"user_id": ["u"] * 3, "item_id": list("abc"), "timestamp": [1, 2, 3]})
    cfg = table_config(path, split=LOO, intents=[{"name": "rep", "kind": "repeat", "as_feature": as_feature}])
    assert prepare(cfg).spec.attribute("rep").is_input is as_feature
