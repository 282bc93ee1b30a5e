"""Config: validation errors name the key; YAML/TOML round trip; immutability; overrides; shipped configs load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from intentrec.config import ExperimentConfig, config_from_dict, load_config, parse_duration
from intentrec.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"model": {"varant": "V0"}}, "model.varant"),
        ({"train": {"lr": -1}}, "train"),
        ({"model": {"variant": "V9"}}, "model.variant"),
        ({"model": {"d_model": 30, "n_heads": 4}}, "divisible"),
        ({"model": {"horizon": "a fortnight"}}, "time span"),
        ({"data": {"split": {"protocol": "random"}}}, "data.split.protocol"),
        ({"data": {"intents": [{"name": "g", "kind": "multi_label"}]}}, "needs 'column'"),
        ({"data": {"intents": [{"name": "r", "kind": "recency", "column": "d", "buckets_days": [30, 7]}]}},
         "increasing"),
        ({"model": {"variant": "V3"}}, "needs at least one intent"),
        ({"train": {"monitor": "ndcg@7"}, "model": {"variant": "V0"}}, "needs 7 in eval.ks"),
        ({"train": {"monitor": "auc"}, "model": {"variant": "V0"}}, "unknown metric"),
        ({"model": {"variant": "V0", "heads": ["genre"]}}, "unknown intents"),
    ],
)
def test_invalid_values_are_rejected_naming_the_key(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict(raw)
    assert needle in str(info.value)


def test_configs_are_immutable() -> None:
    cfg = ExperimentConfig(model={"variant": "V0"})
    with pytest.raises(ValidationError):
        cfg.model.d_model = 3  # type: ignore[misc]


def test_yaml_and_toml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    y = tmp_path / "c.yaml"
    y.write_text(yaml.safe_dump(cfg.to_dict()))
    assert load_config(y) == cfg
    t = tmp_path / "c.toml"
    t.write_text('name = "t"\n[model]\nvariant = "V0"\nd_model = 32\nn_heads = 2\n[train]\nepochs = 3\n')
    toml_cfg = load_config(t)
    assert toml_cfg.model.d_model == 32 and toml_cfg.train.epochs == 3


def test_overrides_are_parsed_as_yaml_and_validated(tmp_path: Path) -> None:
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["train.epochs=7", "model.variant=V2", "eval.ks=[5,10]"])
    assert cfg.train.epochs == 7 and cfg.model.variant == "V2" and cfg.eval.ks == (5, 10)
    with pytest.raises(ConfigError, match=r"train\.epoch"):
        load_config(REPO / "configs" / "tiny.yaml", ["train.epoch=7"])
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        load_config(REPO / "configs" / "tiny.yaml", ["train.epochs"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(bad)
    other = tmp_path / "x.ini"
    other.write_text("[a]\n")
    with pytest.raises(ConfigError, match="unsupported"):
        load_config(other)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    load_config(path)


def test_packaged_quickstart_config_validates() -> None:
    load_config(REPO / "src" / "intentrec" / "resources" / "configs" / "quickstart.yaml")


def test_parse_duration() -> None:
    assert parse_duration("1 month") == 30 * 86400
    assert parse_duration("90min") == 5400
    assert parse_duration(None) is None
    with pytest.raises(ValueError):
        parse_duration(-3)


def test_bare_yaml_off_disables_the_short_term_window(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  variant: V0\n  horizon: off\n")
    assert load_config(path).model.horizon_seconds is None
    assert load_config(path, ["model.horizon=off"]).model.horizon_seconds is None
