"""Config: every invalid value or combination is rejected before any work starts, naming the dotted key.

One case per field of every section of :mod:`intentrec.config` (a meta-test keeps the table complete when a field
is added), plus inconsistent combinations, unknown keys, NaN/infinity and YAML booleans in number fields. Through
the CLI, ``intentrec train`` exits with code 2, prints the key, and creates no run directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from intentrec.cli import app
from intentrec.config import ExperimentConfig, config_from_dict, load_config
from intentrec.errors import ConfigError

INTENT = {"name": "genre", "kind": "categorical", "column": "genres"}
"""A valid intent; cases under ``data.intents[0]`` change one of its fields."""

# (dotted key as the message names it, the value set there): one invalid value for every field
FIELD_CASES: list[tuple[str, Any]] = [
    ("name", ["not", "text"]),
    # data.source and its column map
    ("data.source.adapter", "csv"),
    ("data.source.path", 5),
    ("data.source.name", ["Beauty"]),
    ("data.source.items_path", 3),
    ("data.source.item_columns_id", None),
    ("data.source.columns.user_id", ""),
    ("data.source.columns.item_id", "user_id"),  # the column user_id already names
    ("data.source.columns.timestamp", " "),
    ("data.source.columns.timestamp_unit", "minutes"),
    ("data.source.columns.action", "item_id"),
    ("data.source.columns.duration", ""),
    ("data.source.columns.session_id", "user_id"),
    ("data.source.multi_value_separator", ""),
    ("data.source.multi_valued", ["genres", "genres"]),
    ("data.source.date_columns", ["released", "released"]),
    # data.clean / sessions
    ("data.clean.dedupe", "maybe"),
    ("data.clean.k_core", -1),
    ("data.clean.min_events_per_user", -1),
    ("data.clean.max_events_per_user", 1),
    ("data.sessions.gap", "soon"),
    # data.intents[0]
    ("data.intents[0].name", "two words"),
    ("data.intents[0].kind", "ordinal"),
    ("data.intents[0].column", None),
    ("data.intents[0].buckets_days", [30, 7]),
    ("data.intents[0].series_column", "show"),
    ("data.intents[0].min_count", 0),
    ("data.intents[0].max_labels", 0),
    ("data.intents[0].as_feature", "sometimes"),
    # data.features / split / cache
    ("data.features.categorical", ["device", "device"]),
    ("data.features.numeric", ["price", "price"]),
    ("data.split.protocol", "random"),
    ("data.split.val_fraction", 0.6),
    ("data.split.test_fraction", 0.0),
    ("data.split.targets", "first"),
    ("data.split.seed", -1),
    ("data.cache_dir", 5),
    # model
    ("model.architecture", "bert5rec"),
    ("model.variant", "V9"),
    ("model.max_len", 0),
    ("model.d_model", 0),
    ("model.n_layers", 0),
    ("model.n_heads", 0),
    ("model.ffn_mult", 0),
    ("model.dropout", 1.0),
    ("model.feature_dropout", -0.1),
    ("model.item_emb_dim", 0),
    ("model.cat_emb_dim", -3),
    ("model.d_proj", 0),
    ("model.d_short", 0),
    ("model.short_heads", 0),
    ("model.short_stop_gradient", "partly"),
    ("model.horizon", "a fortnight"),
    ("model.short_window_events", 0),
    ("model.gap_buckets", 0),
    ("model.item_head", "softmax"),
    ("model.identity_init", "maybe"),
    ("model.zero_side_inputs", "sometimes"),
    ("model.input_block_norm", "yes please"),
    ("model.init", "kaiming"),
    ("model.heads", ["not-an-intent"]),
    ("model.output_attributes", ["genres", "genres"]),
    ("model.repeat_boost", "often"),
    ("model.repeat_boost_attributes", ["show_id", "show_id"]),
    ("model.request_gap", "soon"),
    ("model.transact_window", -1),
    ("model.transact_k", 0),
    ("model.mask_prob", 0.0),
    ("model.knn_neighbors", 0),
    ("model.knn_history", 0),
    ("model.recent_window", "off"),
    # train
    ("train.epochs", 0),
    ("train.batch_size", 0),
    ("train.lr", 0.0),
    ("train.weight_decay", -0.1),
    ("train.warmup_steps", -1),
    ("train.min_lr_ratio", 2.0),
    ("train.grad_clip", -1.0),
    ("train.patience", 0),
    ("train.monitor", "auc"),
    ("train.lambda_intent", -1.0),
    ("train.duration_weight", "both"),
    ("train.seed", -1),
    ("train.device", "tpu"),
    ("train.amp", "fast"),
    ("train.num_threads", 0),
    ("train.max_steps_per_epoch", 0),
    ("train.eval_every", 0),
    ("train.max_minutes", 0.0),
    ("train.num_workers", -1),
    ("train.compile", "yes please"),
    ("train.sampled_softmax", -5),
    ("train.sampling_alpha", -1.0),
    ("train.sampling_per_row", "maybe"),
    ("train.ema_decay", 1.0),
    ("train.dist_timeout_minutes", 0.0),
    # eval
    ("eval.exclude_seen", "sometimes"),
    ("eval.ks", [0, 10]),
    ("eval.batch_size", 0),
    ("eval.intent_topk", 0),
]

# (dotted key named, raw config): combinations, unknown keys, non-finite numbers and YAML booleans
COMBINATION_CASES: list[tuple[str, dict[str, Any]]] = [
    ("data.clean.min_events_per_user", {"data": {"clean": {"min_events_per_user": 5, "max_events_per_user": 3}}}),
    ("data.split.targets", {"data": {"split": {"protocol": "temporal", "targets": "last"}}}),
    ("data.features.categorical", {"data": {"features": {"categorical": ["a"], "numeric": ["a"]}}}),
    ("data.source.multi_valued", {"data": {"source": {"multi_valued": ["d"], "date_columns": ["d"]}}}),
    ("data.intents", {"data": {"intents": [INTENT, INTENT]}}),
    ("data.intents[0].column", {"data": {"intents": [{"name": "rep", "kind": "repeat", "column": "show"}]}}),
    ("data.intents[0].column", {"data": {"intents": [{"name": "g", "kind": "multi_label"}]}}),
    ("data.intents[0].buckets_days", {"data": {"intents": [{"name": "age", "kind": "recency", "column": "r",
                                                             "buckets_days": [30, 7]}]}}),
    ("model.d_model", {"model": {"d_model": 30, "n_heads": 4}}),
    ("model.d_short", {"model": {"d_short": 30, "short_heads": 4}}),
    ("model.variant", {"model": {"variant": "V3"}}),  # V1-V3 need an intent
    ("model.output_attributes", {"model": {"output_attributes": ["genres"]}}),  # neither an intent nor a feature
    ("model.repeat_boost", {"model": {"architecture": "bert4rec", "repeat_boost": True}}),  # bidirectional
    ("model.repeat_boost_attributes", {"model": {"repeat_boost_attributes": ["genres"]}}),  # not an attribute
    ("model.request_gap", {"model": {"architecture": "bert4rec", "request_gap": True}}),  # bidirectional
    ("train.sampling_per_row", {"train": {"sampling_per_row": True}}),  # needs a sampled softmax
    ("train.monitor", {"train": {"monitor": "ndcg@7"}}),  # 7 not in eval.ks
    ("model.varant", {"model": {"varant": "V0"}}),  # unknown keys, at every level
    ("trian", {"trian": {}}),
    ("data.source.colums", {"data": {"source": {"colums": {}}}}),
    ("data.intents[0].colour", {"data": {"intents": [{**INTENT, "colour": "x"}]}}),
    ("train.lr", {"train": {"lr": math.nan}}),  # NaN and infinity are never settings
    ("train.max_minutes", {"train": {"max_minutes": math.inf}}),
    ("model.horizon", {"model": {"horizon": math.nan}}),
    ("data.intents[0].buckets_days", {"data": {"intents": [{"name": "age", "kind": "recency", "column": "r",
                                                             "buckets_days": [7, math.inf]}]}}),
    ("train.epochs", {"train": {"epochs": True}}),  # YAML `yes` is not a number
    ("data.clean.k_core", {"data": {"clean": {"k_core": False}}}),
]


def _raw(key: str, value: Any) -> dict[str, Any]:
    """A config that is valid except for ``key`` (``data.intents[0].x`` edits a valid intent)."""
    raw: dict[str, Any] = {"model": {"variant": "V0"}}
    if key.startswith("data.intents[0]."):
        raw["data"] = {"intents": [{**INTENT, key.rsplit(".", 1)[1]: value}]}
        return raw
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


def _all_fields(model: type[BaseModel] = ExperimentConfig, prefix: str = "") -> set[str]:
    """Every leaf field of the config tree as the messages name it (``data.intents[0].kind``)."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        args = getattr(field.annotation, "__args__", ()) or (field.annotation,)
        sub = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if sub:
            out |= _all_fields(sub[0], f"{key}[0]." if name == "intents" else f"{key}.")
        else:
            out.add(key)
    return out


def test_every_field_has_an_invalid_value_case() -> None:
    keys = [k for k, _ in FIELD_CASES]
    assert len(keys) == len(set(keys))
    assert set(keys) == _all_fields()


@pytest.mark.parametrize(("key", "value"), FIELD_CASES, ids=[k for k, _ in FIELD_CASES])
def test_an_invalid_value_is_rejected_naming_its_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(_raw(key, value), origin="bad.yaml")
    msg = str(info.value)
    assert msg.startswith("invalid configuration in bad.yaml:")
    assert f"'{key}'" in msg, msg


@pytest.mark.parametrize(("key", "raw"), COMBINATION_CASES, ids=[k for k, _ in COMBINATION_CASES])
def test_an_invalid_combination_is_rejected_naming_its_key(key: str, raw: dict[str, Any]) -> None:
    raw = {**raw, "model": {"variant": "V0", **raw.get("model", {})}}
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, origin="bad.yaml")
    assert f"'{key}'" in str(info.value), str(info.value)


def test_yaml_nan_infinity_and_booleans_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model: {variant: V0}\ntrain:\n  lr: .nan\n  grad_clip: .inf\n  epochs: yes\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    for key in ("'train.lr'", "'train.grad_clip'", "'train.epochs'"):  # every bad key, not only the first
        assert key in msg, msg


def test_the_shipped_configs_still_validate() -> None:
    repo = Path(__file__).resolve().parents[2]
    for path in [*sorted((repo / "configs").glob("*.yaml")), *sorted((repo / "benchmarks").glob("*.yaml"))]:
        if "model" in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}):
            load_config(path)


# ----------------------------------------------------------------------------------------------------------
# through the CLI: rejected before any work starts
# ----------------------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize(("key", "raw"), [
    ("data.split.targets", {"data": {"split": {"protocol": "temporal", "targets": "last"}}}),
    ("data.clean.min_events_per_user", {"data": {"clean": {"min_events_per_user": 9, "max_events_per_user": 4}}}),
    ("model.d_model", {"model": {"variant": "V0", "d_model": 30, "n_heads": 4}}),
    ("train.lr", {"train": {"lr": -1}}),
    ("eval.batch_size", {"eval": {"batch_size": 0}}),
    ("data.source.columns.item_id", {"data": {"source": {"adapter": "table", "path": "x.csv",
                                                         "columns": {"user_id": "id", "item_id": "id"}}}}),
])
def test_train_rejects_a_bad_config_before_creating_the_run(tmp_path: Path, key: str, raw: dict[str, Any]) -> None:
    raw = {**raw, "model": {"variant": "V0", **raw.get("model", {})}}
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert key in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_bad_override_is_rejected_before_creating_the_run(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"variant": "V0"}}), encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(out), "--set", "train.seed=-3"])
    assert result.exit_code == 2 and "train.seed" in result.output
    assert not out.exists()


def test_a_config_that_does_not_fit_the_data_creates_no_run(tmp_path: Path) -> None:
    """Valid on its own, wrong for the data (a missing input file): the error comes before the run directory."""
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": {"adapter": "table", "path": str(tmp_path / "missing.csv")}},
                                   "model": {"variant": "V0"}}), encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "missing.csv" in " ".join(result.output.split())
    assert not out.exists()


def _yaml_keys(doc: Any, prefix: str = "") -> set[str]:
    """Leaf keys of a parsed YAML mapping, dotted (list items as ``[0]``; the first item stands for all)."""
    if isinstance(doc, dict):
        keys: set[str] = set()
        for name, value in doc.items():
            if isinstance(value, dict) and value:
                keys |= _yaml_keys(value, f"{prefix}{name}.")
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                keys |= _yaml_keys(value[0], f"{prefix}{name}[0].")
            else:
                keys.add(f"{prefix}{name}")
        return keys
    return set()


def test_base_yaml_lists_every_key() -> None:
    """configs/base.yaml documents every key with its default (README "Configuration"); it must not fall behind."""
    base = Path(__file__).resolve().parents[2] / "configs" / "base.yaml"
    listed = _yaml_keys(yaml.safe_load(base.read_text(encoding="utf-8")))
    missing = sorted(k for k in _all_fields() if k not in listed and not k.startswith("data.intents[0]."))
    assert not missing, f"configs/base.yaml does not list {missing}"
