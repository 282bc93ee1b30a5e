"""Every architecture trains and evaluates end to end through the same workflow (same data, split, metrics)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intentrec import workflows
from intentrec.config import load_config
from intentrec.errors import CheckpointError
from intentrec.features.live import LiveEvent

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "overrides",
    [["model.variant=V0"], ["model.variant=V1"], ["model.variant=V2"], ["model.architecture=sasrec"], ["model.architecture=bert4rec"],
     ["model.architecture=gru"], ["model.architecture=lstm"], ["model.architecture=transformer"],
     ["model.architecture=transact", "model.transact_window=30d"],
     ["model.heads=[recency]", "model.horizon=off"], ["model.repeat_boost=true"],
     ["model.architecture=gru", "model.repeat_boost=true", "train.sampled_softmax=16"], ["model.architecture=popularity"],
     ["model.architecture=recent_popularity"], ["model.architecture=item_knn"], ["model.architecture=session_knn"]],
    ids=lambda o: ",".join(o),
)
def test_architecture_end_to_end(tmp_path: Path, overrides: list[str]) -> None:
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        *overrides, "train.epochs=1", "train.max_steps_per_epoch=3", f"data.cache_dir={tmp_path / 'cache'}",
    ])
    outcome = workflows.train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    doc = outcome.test
    assert doc["model"] == cfg.model.label
    assert 0.0 <= doc["item"]["ndcg@10"] <= 1.0 and doc["n_targets"] > 0
    if cfg.model.is_heuristic:  # fitted, not trained; intents by the majority label; nothing to load
        assert doc["training"]["stop_reason"] == "fitted" and doc["intents"]
        assert (tmp_path / "run" / "per_target_test.npz").is_file()
        with pytest.raises(CheckpointError, match="no model to load"):
            workflows.load_run(tmp_path / "run")
        return
    has_heads = cfg.model.architecture not in {"sasrec", "bert4rec"} and cfg.model.variant != "V0"
    assert bool(doc["intents"]) == has_heads
    rec = workflows.recommend(tmp_path / "run", user_id="1", k=3)
    assert len(rec.items) == 3


@pytest.mark.parametrize("per_row", [False, True])
def test_sampled_softmax_training_is_seeded_and_evaluates_the_full_catalogue(tmp_path: Path, per_row: bool) -> None:
    def run(name: str) -> tuple[dict, list[str]]:
        cfg = load_config(REPO / "configs" / "tiny.yaml", [
            "train.sampled_softmax=64", "train.epochs=1", "train.max_steps_per_epoch=3",
            f"train.sampling_per_row={str(per_row).lower()}", f"data.cache_dir={tmp_path / 'cache'}",
        ])
        lines: list[str] = []
        outcome = workflows.train(cfg, tmp_path / name, progress=False, log=lines.append)
        return outcome.test, lines

    first, lines = run("a")
    again, _ = run("b")
    per = "per scored position" if per_row else "per step"
    assert any(f"sampled softmax, 64 negatives {per}" in line for line in lines)
    assert first["ranking"].startswith("full catalogue")
    assert first["item"] == again["item"]  # the negatives are drawn from a seeded generator


def _history_losses(run: Path) -> list[float]:
    import json

    return [json.loads(line)["loss/total"] for line in (run / "history.jsonl").read_text().splitlines()]


def test_dataloader_workers_and_compiled_training_follow_the_same_trajectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches built by worker processes are the same batches; a torch.compile'd forward (traced by dynamo; the
    eager backend keeps the test fast and compiler-free) gives the same losses as the plain model."""
    import torch

    def train(name: str, *overrides: str) -> list[float]:
        cfg = load_config(REPO / "configs" / "tiny.yaml", [
            *overrides, "train.epochs=2", "train.max_steps_per_epoch=2", "model.dropout=0",
            f"data.cache_dir={tmp_path / 'cache'}",
        ])
        workflows.train(cfg, tmp_path / name, progress=False, log=lambda _: None)
        return _history_losses(tmp_path / name)

    plain = train("plain")
    assert train("workers", "train.num_workers=1") == pytest.approx(plain, rel=1e-6)
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m, **kw: real_compile(m, backend="eager", dynamic=True))
    assert train("compiled", "train.compile=true") == pytest.approx(plain, rel=1e-5)


def test_output_attributes_train_with_each_items_labels_and_refuse_interaction_labels(tmp_path: Path) -> None:
    import numpy as np

    from intentrec.data.live import live_features
    from intentrec.errors import ConfigError

    def cfg(*overrides: str):  # type: ignore[no-untyped-def]
        return load_config(REPO / "configs" / "tiny.yaml", [
            *overrides, "train.epochs=1", "train.max_steps_per_epoch=3", f"data.cache_dir={tmp_path / 'cache'}",
        ])

    workflows.train(cfg("model.output_attributes=[genre]"), tmp_path / "run", progress=False, log=lambda _: None)
    art = workflows.load_run(tmp_path / "run")  # the labels come back with the weights
    table = art.model.item_attributes
    assert table is not None and table.names == ("genre",)
    live = live_features(art.cfg.data, art.data, {})
    np.testing.assert_array_equal(table.codes(0).numpy(), live.item_codes["genre"])  # the serving item table
    assert int((table.codes(0)[2:] > 0).any(dim=1).sum()) > 0.9 * (art.data.spec.n_items - 2)

    # recency depends on the interaction time, not on the item alone: refused before a run directory appears
    with pytest.raises(ConfigError, match="'recency' is not an item attribute"):
        workflows.train(cfg("model.output_attributes=[recency]"), tmp_path / "bad", progress=False,
                        log=lambda _: None)
    assert not (tmp_path / "bad").exists()


def test_attribute_repeat_boost_trains_saves_its_labels_and_ranks_like_the_onnx_bundle(tmp_path: Path) -> None:
    from intentrec.model.layers import AttributeRepeatBoost

    cfg = load_config(REPO / "configs" / "streaming_sim.yaml", [
        "data.source.name=tiny", "data.features.categorical=[show_id]", "model.repeat_boost_attributes=[show_id]",
        "model.repeat_boost=true", "train.epochs=1", "train.max_steps_per_epoch=3",
        f"data.cache_dir={tmp_path / 'cache'}",
    ])
    outcome = workflows.train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    assert 0.0 <= outcome.test["item"]["ndcg@10"] <= 1.0
    art = workflows.load_run(tmp_path / "run")  # the labels come back with the weights
    (boost,) = [m for m in art.model.modules() if isinstance(m, AttributeRepeatBoost)]
    codes = boost.codes(0)
    assert codes.shape == (art.data.spec.n_items,) and int((codes[2:] >= 2).sum()) > 0.9 * (art.data.spec.n_items - 2)
    # episodes of one show share a label; a movie is its own show
    by_show: dict[int, set[str]] = {}
    for j, item in enumerate(art.data.item_vocab.ids):  # "s00820e01": episode 1 of show s00820; "m00571": a movie
        by_show.setdefault(int(codes[j + 2]), set()).add(item[:6])
    assert all(len(prefixes) == 1 for prefixes in by_show.values())
    assert any(sum(1 for item in art.data.item_vocab.ids if int(codes[art.data.item_vocab.encode(item)]) == label) > 1
               for label in by_show)  # some label is shared by several episodes
    rec = workflows.recommend(tmp_path / "run", user_id=str(art.data.user_ids[0]), k=5)
    assert len(rec.items) == 5
    bundle = workflows.export(tmp_path / "run", tmp_path / "bundle", onnx=True)
    assert (bundle / "model.onnx").is_file()


def test_request_gap_trains_and_the_request_time_moves_the_ranking_alike_everywhere(tmp_path: Path) -> None:
    """model.request_gap end to end: trained, the request time given to recommend, the torch and ONNX predictors
    and the HTTP body changes the ranking, the same way in all of them."""
    from intentrec.serve.http import RecommendRequest
    from intentrec.serve.predictor import Predictor

    cfg = load_config(REPO / "configs" / "streaming_sim.yaml", [
        "data.source.name=tiny", "model.request_gap=true", "train.epochs=1", "train.max_steps_per_epoch=5",
        f"data.cache_dir={tmp_path / 'cache'}",
    ])
    workflows.train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    art = workflows.load_run(tmp_path / "run")
    u = next(u for u in range(art.data.n_users) if (art.data.item_idx[art.data.user_slice(u)] >= 2).all())
    user = str(art.data.user_ids[u])  # a user whose every item is known (the service drops unknown ones)
    s = art.data.user_slice(u)
    last = float(art.data.timestamps[s][-1])
    soon, later = last + 120.0, last + 30 * 86400.0
    rec_soon = workflows.recommend(tmp_path / "run", user_id=user, k=20, art=art, request_time=soon)
    rec_later = workflows.recommend(tmp_path / "run", user_id=user, k=20, art=art, request_time=later)
    assert [x for _, x in rec_soon.items] != pytest.approx([x for _, x in rec_later.items], abs=1e-6)

    bundle = workflows.export(tmp_path / "run", tmp_path / "bundle", onnx=True)
    events = [LiveEvent(art.data.item_vocab.decode(int(i)), float(t), {})
              for i, t in zip(art.data.item_idx[s], art.data.timestamps[s], strict=True)]
    for backend in ("torch", "onnx"):
        pred = Predictor.from_path(bundle, backend=backend)
        for when, rec in ((soon, rec_soon), (later, rec_later)):
            got = pred.predict(events, k=20, request_time=when)
            assert [i for i, _ in got.items] == [i for i, _ in rec.items], backend
            np.testing.assert_allclose([x for _, x in got.items], [x for _, x in rec.items], atol=1e-4)
    body = RecommendRequest.model_validate({"events": [{"item_id": e.item_id, "timestamp": e.timestamp}
                                                       for e in events], "k": 20, "request_time": soon})
    assert body.to_predict_request().request_time == soon
    from fastapi.testclient import TestClient

    from intentrec.serve.http import create_app

    with TestClient(create_app(Predictor.from_path(bundle))) as client:  # the service says it reads the time
        assert client.get("/v1/metadata").json()["reads_request_time"] is True
    import polars as pl  # batch predictions take one request time for every history

    pl.DataFrame({"user_id": [user] * len(events), "item_id": [e.item_id for e in events],
                  "timestamp": [e.timestamp for e in events]}).write_parquet(tmp_path / "events.parquet")
    for when, rec in ((soon, rec_soon), (later, rec_later)):
        workflows.predict(bundle, tmp_path / "events.parquet", tmp_path / "p.parquet", k=20, progress=False,
                          log=lambda _: None, request_time=when)
        assert pl.read_parquet(tmp_path / "p.parquet")["items"][0].to_list() == [i for i, _ in rec.items]


def test_cold_item_targets_are_reported_as_misses_beside_the_ranked_metrics(tmp_path: Path) -> None:
    """Published leave-one-out numbers count a target whose item never occurs in training as a miss; metrics.json
    carries that view next to ours (which excludes and counts them)."""
    import json

    from intentrec.data.pipeline import prepare

    cfg = load_config(REPO / "configs" / "tiny.yaml", ["model.architecture=popularity",
                                                       f"data.cache_dir={tmp_path / 'cache'}"])
    outcome = workflows.train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    cold = prepare(cfg.data).split.cold_targets["test"]
    assert cold > 0  # the tiny data has test targets whose item occurs only after training
    missed = doc["item_cold_as_miss"]
    assert missed["n_targets"] == doc["n_targets"] + cold
    for key, value in doc["item"].items():
        assert missed[key] == pytest.approx(value * doc["n_targets"] / missed["n_targets"], rel=1e-12)
    assert outcome.test["item_cold_as_miss"]["ndcg@10"] < doc["item"]["ndcg@10"]
