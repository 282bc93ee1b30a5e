"""The serving side of the data stage: what a live request needs to rebuild model inputs from raw events.

:func:`live_features` reads the source's item metadata once (at export time) and turns every attribute of the
prepared data into an :class:`~intentrec.structs.AttributeRule` plus item tables, so a bundle can encode
``(item_id, timestamp, action, ...)`` events exactly as ``prepare`` encoded the training events, without the
training data or Polars.

Item-level values (genres, format, item numeric features) are copied from the encoded events themselves (every
vocabulary item has training events and item attributes are constant per item), so they are bit-identical to
what the model was trained on; release dates and series come from the raw item table.
:func:`item_attribute_codes` builds the same item tables at training time, for ``model.output_attributes``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from intentrec.config import DataConfig
from intentrec.data import adapters
from intentrec.data.io import date_to_seconds
from intentrec.data.schema import ITEM_ID
from intentrec.errors import ConfigError
from intentrec.structs import AttributeRule, EncodedSequences, LiveFeatures, NumericRule

__all__ = ["item_attribute_codes", "live_features", "training_item_counts"]


def training_item_counts(data: EncodedSequences) -> np.ndarray:
    """(I,) int64 number of training events of each item (PAD and UNK rows are 0)."""
    lengths = np.diff(data.offsets)  # (U,)
    position = np.arange(data.item_idx.shape[0]) - np.repeat(data.offsets[:-1], lengths)  # (N,)
    train = position < np.repeat(data.split.train_len, lengths)  # (N,)
    counts = np.bincount(data.item_idx[train], minlength=data.spec.n_items).astype(np.int64)  # (I,)
    counts[:2] = 0
    return counts


def _latest_rows(data: EncodedSequences) -> np.ndarray:
    """(I,) row of each item's latest event (-1 for PAD/UNK)."""
    latest = np.full(data.spec.n_items, -1, dtype=np.int64)
    latest[data.item_idx] = np.arange(data.item_idx.shape[0])  # last write wins
    latest[:2] = -1
    return latest


def item_attribute_codes(data: EncodedSequences, names: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
    """Each item's labels of the categorical attributes ``names``, read from the encoded events
    (``model.output_attributes``, ``model.repeat_boost_attributes``).

    Args:
        data: the prepared sequences.
        names: attributes of ``data.spec`` whose value must be the same on every event of an item.

    Returns:
        name -> (I,) or (I, L) int64 labels of every item (rows of PAD, UNK and items without events are 0).

    Raises:
        ConfigError: a name is not a categorical attribute of the data, or its value differs between two events
            of one item (an interaction-level label such as recency or an action type is not an item attribute).
    """
    latest = _latest_rows(data)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in data.categorical:
            raise ConfigError(
                f"model.output_attributes / repeat_boost_attributes name {name!r}, which is not a categorical "
                f"attribute of the data; "
                f"available: {sorted(data.categorical)}"
            )
        codes = data.categorical[name]  # (N,) or (N, L)
        table = _item_table(codes, latest)  # (I,) or (I, L)
        differs = table[data.item_idx] != codes  # (N,) or (N, L)
        if differs.ndim > 1:
            differs = differs.any(axis=1)
        differs &= data.item_idx >= 2  # UNK events (items unseen in training) carry whatever they had
        if differs.any():
            row = int(np.flatnonzero(differs)[0])
            raise ConfigError(
                f"model.output_attributes / repeat_boost_attributes: {name!r} is not an item attribute: "
                f"{int(differs.sum()):,} events carry "
                f"another value than the latest event of the same item (first at event row {row}, item index "
                f"{int(data.item_idx[row])}); use attributes that are constant per item (a genre, a category), "
                "not interaction-level labels such as recency or an action type"
            )
        out[name] = table
    return out


def _item_table(codes: np.ndarray, latest: np.ndarray) -> np.ndarray:
    """(I,) or (I, L) int64 value of each item: the value on its latest event (0 for PAD, UNK, items without one)."""
    known = latest >= 0  # (I,)
    table = np.zeros((latest.shape[0], *codes.shape[1:]), dtype=np.int64)  # (I,) or (I, L)
    table[known] = codes[latest[known]]
    return table


def _item_values(items: pl.DataFrame, ids: tuple[str, ...], expr: pl.Expr) -> pl.Series:
    """``expr`` over the item table aligned with the vocabulary ids (null where an item has no metadata row)."""
    table = items.select(pl.col(ITEM_ID).cast(pl.String), expr.alias("_v")).unique(
        ITEM_ID, keep="first", maintain_order=True
    )
    vocab = pl.DataFrame({ITEM_ID: list(ids)}, schema={ITEM_ID: pl.String})
    return vocab.join(table, on=ITEM_ID, how="left", maintain_order="left")["_v"]


def live_features(
    cfg: DataConfig, data: EncodedSequences, numeric_stats: dict[str, tuple[float, float]] | dict[str, list[float]]
) -> LiveFeatures:
    """Serving rules and item tables for the prepared ``data`` of ``cfg``.

    Args:
        cfg: the ``data`` section the model was trained with.
        data: the prepared sequences (vocabularies fitted on training events).
        numeric_stats: column -> (min, max) of the training values (``Prepared.stats["numeric_min_max"]``).

    Returns:
        The :class:`~intentrec.structs.LiveFeatures` of the data.

    Raises:
        ConfigError: an attribute's column is in neither the interaction nor the item table (the data changed).
    """
    raw = adapters.load(cfg.source)
    event_cols = set(raw.interactions.columns)
    items = raw.items
    item_cols = set(items.columns) if items is not None else set()
    n_items = data.spec.n_items
    latest = _latest_rows(data)
    known = latest >= 0  # (I,)

    def level(column: str, key: str) -> Literal["item", "event"]:
        if column in event_cols:  # interaction columns win (as in attach_item_columns)
            return "event"
        if column in item_cols:
            return "item"
        raise ConfigError(f"{key} = {column!r} is no longer a column of the data; retrain the model")

    intents = {i.name: i for i in cfg.intents}
    rules: list[AttributeRule] = []
    item_codes: dict[str, np.ndarray] = {}
    item_release: dict[str, np.ndarray] = {}
    item_series: dict[str, np.ndarray] = {}
    for attr in data.spec.attributes:
        codes = data.categorical[attr.name]
        width = int(codes.shape[1]) if attr.multi_valued else 0
        intent = intents.get(attr.name)
        key = f"data.intents[{attr.name}]" if intent is not None else f"data.features.categorical[{attr.name}]"
        if intent is not None and intent.kind == "repeat":
            series = intent.series_column
            field = series if series is not None and level(series, key) == "event" else None
            groups = np.arange(n_items, dtype=np.int64) + n_items  # (I,) every item its own group
            if series is not None and field is None and items is not None:
                values = _item_values(items, data.item_vocab.ids, pl.col(series).cast(pl.String))
                group_of: dict[str, int] = {}
                for j, value in enumerate(values.to_list()):
                    if value is not None:
                        groups[j + 2] = group_of.setdefault(value, len(group_of))  # series ids < n_items
            item_series[attr.name] = groups
            rules.append(AttributeRule(attr.name, "repeat", field, attr.multi_valued, width))
        elif intent is not None and intent.kind == "recency":
            column = intent.column or ""
            field = column if level(column, key) == "event" else None
            if field is None and items is not None:
                expr = date_to_seconds(pl.col(column), items.schema[column])
                values = _item_values(items, data.item_vocab.ids, expr).cast(pl.Float64)
                release = np.full(n_items, np.nan, dtype=np.float64)  # (I,)
                release[2:] = values.fill_null(np.nan).to_numpy()
                item_release[attr.name] = release
            rules.append(AttributeRule(attr.name, "recency", field, False, 0, tuple(intent.buckets_days)))
        else:
            column = intent.column if intent is not None else attr.name
            if column is None:  # guarded by IntentConfig validation
                raise ConfigError(f"{key}: attribute {attr.name!r} has no column")
            src = level(column, key)
            if src == "item":
                item_codes[attr.name] = _item_table(codes, latest)  # (I,) or (I, L)
            rules.append(AttributeRule(attr.name, src, column if src == "event" else None, attr.multi_valued, width))

    numeric_rules: list[NumericRule] = []
    item_numeric = np.zeros((n_items, len(data.spec.numeric)), dtype=np.float32)  # (I, F)
    for f, column in enumerate(data.spec.numeric):
        lo, hi = (float(v) for v in numeric_stats.get(column, (0.0, 0.0)))
        src = level(column, f"data.features.numeric[{f}]")
        if src == "item":
            item_numeric[known, f] = data.numeric[latest[known], f]
        numeric_rules.append(NumericRule(column, src, lo, hi))
    return LiveFeatures(
        rules=tuple(rules),
        numeric=tuple(numeric_rules),
        item_codes=item_codes,
        item_release=item_release,
        item_series=item_series,
        item_numeric=item_numeric,
        popularity=training_item_counts(data),
    )
