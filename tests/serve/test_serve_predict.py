"""Batch prediction: streamed in chunks, identical to one-by-one scoring, atomic output, clear input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from intentrec import workflows
from intentrec.cli import app
from intentrec.data.adapters import bundled_movielens_path
from intentrec.errors import DataError, RequestError, SchemaError
from intentrec.features.live import LiveEvent
from intentrec.serve.predictor import Predictor


@pytest.fixture(scope="module")
def events_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 users of the bundled ratings, shuffled rows, with MovieLens column names."""
    ratings = pl.read_csv(bundled_movielens_path() / "ratings.csv")
    users = ratings["userId"].unique().sort()[:40]
    sub = ratings.filter(pl.col("userId").is_in(users.implode())).sample(fraction=1.0, shuffle=True, seed=0)
    path = tmp_path_factory.mktemp("events") / "events.csv"
    sub.write_csv(path)
    return path


COLUMNS = {"user_id": "userId", "item_id": "movieId"}


def test_rows_equal_one_by_one_predictions(tiny_bundle: Path, events_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    summary = workflows.predict(tiny_bundle, events_csv, out, k=7, columns=COLUMNS, chunk_rows=97, progress=False,
                                log=lambda _: None)
    table = pl.read_parquet(out)
    raw = pl.read_csv(events_csv)
    assert summary.histories == table.height == raw["userId"].n_unique()
    assert summary.events == raw.height and summary.errors == 0
    assert table["user_id"].to_list() == sorted(table["user_id"].to_list())
    pred = Predictor.from_path(tiny_bundle)
    for user in table["user_id"].to_list()[:8]:
        rows = raw.filter(pl.col("userId") == int(user)).sort("timestamp", maintain_order=True)
        events = [LiveEvent(str(i), float(t)) for i, t in zip(rows["movieId"], rows["timestamp"], strict=True)]
        expected = pred.predict(events, k=7)
        got = table.filter(pl.col("user_id") == user).row(0, named=True)
        assert got["items"] == [i for i, _ in expected.items]
        np.testing.assert_allclose(got["scores"], [s for _, s in expected.items], atol=1e-4)
        assert got["n_events"] == rows.height and got["events_used"] == expected.events_used
        for name in ("genre", "recency"):
            assert len(got[f"{name}_labels"]) == min(5, len(pred.bundle.label_vocabs[name]) - 1)  # intent_top=5
            assert got[f"{name}_labels"][:3] == [lab for lab, _ in expected.intents[name]]
            assert got[f"{name}_attention"] == pytest.approx(expected.attention[name], abs=1e-6)
        assert len(got["intent_embedding"]) == pred.bundle.cfg.model.d_proj
    # the chunk size does not change anything (histories cut by a chunk boundary are carried over)
    whole = tmp_path / "whole.parquet"
    workflows.predict(tiny_bundle, events_csv, whole, k=7, columns=COLUMNS, chunk_rows=1_000_000, progress=False,
                      log=lambda _: None)
    assert pl.read_parquet(whole).drop("scores", "intent_embedding").equals(table.drop("scores", "intent_embedding"))


def test_parquet_and_jsonl_inputs_with_iso_times(tiny_bundle: Path, events_csv: Path, tmp_path: Path) -> None:
    raw = pl.read_csv(events_csv).rename({"userId": "user_id", "movieId": "item_id"})
    iso = raw.with_columns(pl.from_epoch("timestamp", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("timestamp"))
    raw.write_parquet(tmp_path / "e.parquet")
    iso.write_ndjson(tmp_path / "e.jsonl")
    a = workflows.predict(tiny_bundle, tmp_path / "e.parquet", tmp_path / "a.parquet", k=5, progress=False,
                          log=lambda _: None)
    b = workflows.predict(tiny_bundle, tmp_path / "e.jsonl", tmp_path / "b.parquet", k=5, progress=False,
                          log=lambda _: None)
    assert a.histories == b.histories > 0
    assert pl.read_parquet(a.out)["items"].to_list() == pl.read_parquet(b.out)["items"].to_list()


def test_input_errors_name_the_problem(tiny_bundle: Path, events_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"lacks user_id.*--column"):
        workflows.predict(tiny_bundle, events_csv, tmp_path / "x.parquet", progress=False, log=lambda _: None)
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\n1,1,1000\n1,2,yesterday\n")
    with pytest.raises(DataError, match=r"row 2 has timestamp 'yesterday'"):
        workflows.predict(tiny_bundle, bad, tmp_path / "x.parquet", progress=False, log=lambda _: None)
    with pytest.raises(DataError, match="not found"):
        workflows.predict(tiny_bundle, tmp_path / "nope.csv", tmp_path / "x.parquet", progress=False,
                          log=lambda _: None)
    assert not (tmp_path / "x.parquet").exists()


def test_bad_history_is_reported_and_the_rest_scored(
    tiny_bundle: Path, events_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Predictor.predict_many

    def flaky(self: Predictor, requests: list) -> list:  # type: ignore[type-arg]
        if any(r.user_id == "3" for r in requests):
            raise RequestError("event 0: attribute 'action' takes one label")
        return original(self, requests)

    monkeypatch.setattr(Predictor, "predict_many", flaky)
    summary = workflows.predict(tiny_bundle, events_csv, tmp_path / "p.parquet", k=3, columns=COLUMNS,
                                progress=False, log=lambda _: None)
    table = pl.read_parquet(summary.out)
    failed = table.filter(pl.col("error").is_not_null())
    assert summary.errors == 1 and failed["user_id"].to_list() == ["3"] and failed["items"].to_list() == [[]]
    assert table.filter(pl.col("error").is_null())["items"].list.len().min() == 3


def test_interrupted_run_leaves_no_output(
    tiny_bundle: Path, events_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = Predictor.predict_many

    def dies(self: Predictor, requests: list) -> list:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, requests)

    monkeypatch.setattr(Predictor, "predict_many", dies)
    with pytest.raises(KeyboardInterrupt):
        workflows.predict(tiny_bundle, events_csv, tmp_path / "p.parquet", columns=COLUMNS, chunk_rows=200,
                          progress=False, log=lambda _: None)
    assert list(tmp_path.iterdir()) == [] and [p for p in events_csv.parent.iterdir() if p.name != "events.csv"] == []


def test_cli_export_and_predict(tiny_run: Path, events_csv: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(tiny_run), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "bundle tiny-" in res.output and "intents: genre, recency" in res.output
    res = runner.invoke(app, ["predict", str(tmp_path / "b"), "--input", str(events_csv), "--out",
                              str(tmp_path / "p.parquet"), "--column", "user_id=userId", "--column",
                              "item_id=movieId", "--k", "4", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(tmp_path / "p.parquet")["items"].list.len().to_list() == [4] * 40
    res = runner.invoke(app, ["predict", str(tmp_path / "b"), "--input", str(events_csv), "--out",
                              str(tmp_path / "q.parquet"), "--column", "userId", "--no-progress"])
    assert res.exit_code == 2 and "canonical=yours" in " ".join(res.output.split())
    res = runner.invoke(app, ["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "not a finished training run" in " ".join(res.output.split())
