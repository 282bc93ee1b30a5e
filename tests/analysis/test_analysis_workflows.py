"""``intentrec analyze`` and ``intentrec layout`` end to end on tiny trained runs of the bundled data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from intentrec import analysis_workflows as aw
from intentrec import workflows
from intentrec.analysis.report import REPORT_HTML, REPORT_MD
from intentrec.cli import app
from intentrec.config import load_config
from intentrec.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PLOTS = ("cluster_map", "silhouette", "cluster_sizes", "attention_by_cluster", "primary_intents",
         "primary_by_session", "transitions", "alignment", "alignment_by_cluster")


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def analysed(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, aw.AnalyzeSummary]:
    out = tmp_path_factory.mktemp("analysis") / "report"
    runner = CliRunner()
    res = runner.invoke(app, ["analyze", str(tiny_run), "--out", str(out), "--k", "4", "--k-max", "6",
                              "--n-init", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "primary intents:" in _flat(res.output) and "alignment with the next interaction" in _flat(res.output)
    return out, aw.analyze(tiny_run, out.parent / "again", k=4, k_max=6, n_init=2, progress=False, log=lambda _: None)


def test_analyze_writes_every_file_and_plot(analysed: tuple[Path, aw.AnalyzeSummary]) -> None:
    out, _ = analysed
    for name in (REPORT_HTML, REPORT_MD, "analysis.json", "users.parquet", "sessions.parquet"):
        assert (out / name).is_file(), name
    html = (out / REPORT_HTML).read_text(encoding="utf-8")
    md = (out / REPORT_MD).read_text(encoding="utf-8")
    for plot in PLOTS:
        assert (out / "plots" / f"{plot}.png").is_file(), plot
        assert f"plots/{plot}.png" in md
    assert html.count("data:image/png;base64,") == len(PLOTS)
    doc = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    assert doc["clusters"]["k"] == 4 and len(doc["profiles"]) == 4


def test_every_user_has_one_cluster_and_one_primary_intent(
    analysed: tuple[Path, aw.AnalyzeSummary], tiny_run: Path
) -> None:
    out, summary = analysed
    users = pl.read_parquet(out / "users.parquet")
    art = workflows.load_run(tiny_run)
    n_multi = int((np.diff(art.data.offsets) >= 2).sum())
    assert users.height == n_multi == summary.n_users
    assert users["user_id"].n_unique() == users.height
    assert users["cluster"].is_between(0, 3).all() and users["cluster"].null_count() == 0
    assert set(users["primary_intent"].unique()) <= {"genre", "recency"}
    att = np.stack([users["attention_genre"].to_numpy(), users["attention_recency"].to_numpy()], axis=1)
    assert np.allclose(att.sum(axis=1), 1.0, atol=1e-5)
    expected = np.where(att[:, 0] > att[:, 1], "genre", "recency")
    assert (users["primary_intent"].to_numpy() == expected).all()
    assert users["intent_embedding"].dtype == pl.Array(pl.Float32, art.cfg.model.d_proj)


def test_clustering_is_deterministic_with_a_seed(analysed: tuple[Path, aw.AnalyzeSummary]) -> None:
    out, summary = analysed
    first = pl.read_parquet(out / "users.parquet")
    again = pl.read_parquet(summary.out / "users.parquet")
    assert first["user_id"].to_list() == again["user_id"].to_list()
    assert first["cluster"].to_list() == again["cluster"].to_list()
    assert np.allclose(first["tsne_x"].to_numpy(), again["tsne_x"].to_numpy())


def test_analyze_rejects_a_bundle_and_bad_options(tiny_bundle: Path, tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a run directory"):
        aw.analyze(tiny_bundle, tmp_path / "a", progress=False, log=lambda _: None)
    with pytest.raises(ConfigError, match="tsne or pca"):
        aw.analyze(tiny_run, tmp_path / "b", map_method="umap", progress=False, log=lambda _: None)
    with pytest.raises(ConfigError, match="clusters"):
        aw.analyze(tiny_run, tmp_path / "c", k=5, max_users=3, k_max=2, progress=False, log=lambda _: None)


@pytest.fixture(scope="module")
def v1_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IntentRec V1: intent heads without attention fusion (no Z)."""
    tmp = tmp_path_factory.mktemp("v1")
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        "model.variant=V1", "train.epochs=1", "train.max_steps_per_epoch=2", f"data.cache_dir={tmp / 'cache'}",
    ])
    workflows.train(cfg, tmp / "run", progress=False, log=lambda _: None)
    return tmp / "run"


def test_a_model_without_fusion_gets_an_alignment_report(v1_run: Path, tmp_path: Path) -> None:
    summary = aw.analyze(v1_run, tmp_path / "v1", progress=False, log=lambda _: None)
    assert summary.k is None and summary.primary_shares == {}
    assert set(summary.alignment) == {"genre", "recency"}
    html = (tmp_path / "v1" / REPORT_HTML).read_text(encoding="utf-8")
    assert "IntentRec V2/V3" in html
    users = pl.read_parquet(tmp_path / "v1" / "users.parquet")
    assert "cluster" not in users.columns and users.height == summary.n_users


def _check_page(page: object, row_size: int, n_rows: int) -> list[int]:
    rows = page.rows  # type: ignore[attr-defined]
    assert 1 <= len(rows) <= n_rows
    items = [i for row in rows for i in row.items]
    assert len(items) == len(set(items)), "an item appears twice on the page"
    assert all(1 <= len(row.items) <= row_size for row in rows)
    return items


def test_layout_pages_for_a_run_user_and_a_bundle_history(tiny_run: Path, tiny_bundle: Path) -> None:
    src = aw.load_source(tiny_run)
    assert src.data is not None
    user = src.data.user_ids[0]
    page = aw.layout(src, user_id=user, n_rows=6, row_size=4)
    _check_page(page, 4, 6)
    probs = [row.spec.probability for row in page.rows if row.spec.kind != "top_picks"]
    assert probs == sorted(probs, reverse=True), "intent order sorts rows by predicted probability"
    fixed = aw.layout(src, user_id=user, n_rows=6, row_size=4, order="fixed")
    _check_page(fixed, 4, 6)
    items = [src.item_vocab.decode(int(i)) for i in src.data.item_idx[src.data.user_slice(0)][:5]]
    from_bundle = aw.layout(tiny_bundle, items=items, n_rows=5, row_size=3, at=float(src.data.timestamps.max()))
    from_run = aw.layout(src, items=items, n_rows=5, row_size=3)
    _check_page(from_bundle, 3, 5)
    assert [r.title for r in from_bundle.rows] == [r.title for r in from_run.rows]
    assert [r.items for r in from_bundle.rows] == [r.items for r in from_run.rows]
    with pytest.raises(ConfigError, match="needs a run directory"):
        aw.layout(tiny_bundle, items=items, order="fixed")


def test_layout_evaluation_on_the_bundled_data(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "layout.json"
    ev = aw.evaluate_layout(tiny_run, split="validation", n_rows=5, row_size=6, max_targets=150, out=out,
                            progress=False, log=lambda _: None)
    assert ev.n_targets == 150
    for rows in (ev.intent_rows, ev.fixed_rows):
        assert rows.shape == (150,) and rows.min() >= 1 and rows.max() <= 6
    assert ev.intent.mean_row == pytest.approx(rows_mean(ev.intent_rows))
    assert ev.mean_difference == pytest.approx(rows_mean(ev.intent_rows) - rows_mean(ev.fixed_rows))
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["split"] == "validation" and doc["n_targets"] == 150


def rows_mean(rows: np.ndarray) -> float:
    return float(np.asarray(rows, dtype=np.float64).mean())


def test_cli_layout_page_and_evaluation(tiny_run: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["layout", str(tiny_run), "--user", "1", "--rows", "4", "--row-size", "3"])
    assert res.exit_code == 0, res.output
    assert "Top picks for you" in res.output and "Home page for user 1" in res.output
    res = runner.invoke(app, ["layout", str(tiny_run), "--items", "1,2,3", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    ids = [i for row in doc["rows"] for i in row["item_ids"]]
    assert len(ids) == len(set(ids))
    res = runner.invoke(app, ["layout", str(tiny_run), "--evaluate", "--split", "validation", "--max-targets", "80",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    text = _flat(res.output)
    assert "Where the next engaged item sits" in text and "intent - fixed mean row" in text
    res = runner.invoke(app, ["layout", str(tiny_run), "--order", "sideways", "--user", "1"])
    assert res.exit_code != 0 and "intent|fixed" in _flat(res.output)
