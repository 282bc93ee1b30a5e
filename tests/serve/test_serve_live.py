"""Live requests are encoded exactly as ``prepare`` encoded the training events, and score exactly as the model did.

Each test rebuilds raw events from the prepared data (item ids, timestamps, interaction attributes), encodes them
with the bundle alone, and compares the model input with the training-side ``example_from_events``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intentrec import workflows
from intentrec.config import config_from_dict
from intentrec.errors import RequestError
from intentrec.features.dataset import example_from_events
from intentrec.features.live import LiveEvent
from intentrec.serve.predictor import Predictor, PredictRequest
from intentrec.structs import EncodedSequences
from intentrec.vocab import UNK_IDX


def _raw_events(data: EncodedSequences, pred: Predictor, u: int) -> list[LiveEvent]:
    """User ``u``'s events as a client would send them (interaction attributes decoded to raw labels)."""
    s = data.user_slice(u)
    events = []
    for r in range(s.start, s.stop):
        attrs: dict[str, object] = {}
        for rule in pred.bundle.live.rules:
            if rule.source == "event":
                codes = data.categorical[rule.name][r]
                voc = data.label_vocabs[rule.name]
                attrs[rule.field or ""] = ([voc.decode(int(c)) for c in codes if c] if rule.multi
                                           else voc.decode(int(codes)) if codes else None)
        for nrule in pred.bundle.live.numeric:
            if nrule.source == "event":
                attrs[nrule.name] = _RAW_NUMERIC[nrule.name][r]
        events.append(LiveEvent(data.item_vocab.decode(int(data.item_idx[r])), float(data.timestamps[r]), attrs))
    return events


_RAW_NUMERIC: dict[str, np.ndarray] = {}


def _check_parity(run: Path, bundle: Path, n_users: int = 40) -> int:
    art = workflows.load_run(run)
    pred = Predictor.from_path(bundle)
    data, max_len = art.data, art.cfg.model.max_len
    checked = 0
    for u in range(min(data.n_users, n_users)):
        s = data.user_slice(u)
        if (data.item_idx[s] == UNK_IDX).any():
            continue  # unknown items are dropped by the service, kept as UNK inputs in training windows
        p = s.stop - s.start
        expected = example_from_events(workflows._with_appended_slot(data, u), 0, max(0, p - max_len), p + 1,
                                       "last", "none")
        events = _raw_events(data, pred, u)
        got = pred.encode(events).example
        assert got is not None
        np.testing.assert_array_equal(got.item_idx, expected.item_idx)
        np.testing.assert_allclose(np.diff(got.timestamps), np.diff(expected.timestamps))
        assert set(got.categorical) == set(expected.categorical)
        for name, arr in expected.categorical.items():
            np.testing.assert_array_equal(got.categorical[name], arr, err_msg=f"user {u} attribute {name}")
        np.testing.assert_allclose(got.numeric, expected.numeric, atol=1e-6)
        rec = workflows.recommend(run, user_id=data.user_ids[u], k=10, art=art)
        live = pred.predict(events, k=10)
        assert [i for i, _ in live.items] == [i for i, _ in rec.items]
        np.testing.assert_allclose([x for _, x in live.items], [x for _, x in rec.items], atol=1e-4)
        assert live.attention == pytest.approx(rec.intent_attention, abs=1e-5)
        checked += 1
    assert checked >= 5
    return checked


def test_movielens_requests_match_training_inputs(tiny_run: Path, tiny_bundle: Path) -> None:
    _check_parity(tiny_run, tiny_bundle)


def test_simulator_requests_match_training_inputs(sim_run: Path, sim_bundle: Path) -> None:
    # repeat intent over show series, item-level genre/format and show id (an input), recency from release dates
    rules = {r.name: r.source for r in Predictor.from_path(sim_bundle).bundle.live.rules}
    assert rules == {"action": "repeat", "genre": "item", "format": "item", "recency": "recency", "show_id": "item"}
    _check_parity(sim_run, sim_bundle)


def _write_table_data(root: Path) -> dict[str, object]:
    """A log with an interaction-level action and price (event attributes) and item-level category and weight."""
    rng = np.random.default_rng(0)
    rows = ["user,item,ts,action,price"]
    actions = ["click", "view", "buy", "cart"]
    for u in range(60):
        t = 1_600_000_000 + u * 1000
        for _ in range(int(rng.integers(6, 15))):
            t += int(rng.integers(60, 90_000))
            price = "" if rng.random() < 0.1 else f"{rng.uniform(1, 500):.2f}"
            rows.append(f"u{u},i{int(rng.integers(0, 40))},{t},{actions[int(rng.integers(0, 4))]},{price}")
    (root / "log.csv").write_text("\n".join(rows) + "\n")
    items = ["item,category,weight"] + [f"i{j},c{j % 5},{j * 1.5}" for j in range(40)]
    (root / "items.csv").write_text("\n".join(items) + "\n")
    return {
        "name": "table",
        "data": {
            "source": {"adapter": "table", "path": str(root / "log.csv"), "items_path": str(root / "items.csv"),
                       "item_columns_id": "item",
                       "columns": {"user_id": "user", "item_id": "item", "timestamp": "ts", "action": "action"}},
            "intents": [{"name": "action", "kind": "categorical", "column": "action"},
                        {"name": "category", "kind": "categorical", "column": "category"}],
            "features": {"numeric": ["price", "weight"]},
            "split": {"protocol": "leave-one-out"},
            "cache_dir": str(root / "cache"),
        },
        "model": {"variant": "V3", "max_len": 8, "d_model": 16, "n_heads": 2, "item_emb_dim": 16, "cat_emb_dim": 4,
                  "d_proj": 8, "d_short": 8, "horizon": "1d"},
        "train": {"epochs": 1, "batch_size": 64, "warmup_steps": 1},
    }


def test_event_attributes_and_numeric_features(tmp_path: Path) -> None:
    cfg = config_from_dict(_write_table_data(tmp_path))
    run = tmp_path / "run"
    workflows.train(cfg, run, progress=False, log=lambda _: None)
    bundle = workflows.export(run, tmp_path / "bundle")
    pred = Predictor.from_path(bundle)
    assert {r.name: (r.source, r.field) for r in pred.bundle.live.rules} == {
        "action": ("event", "action"), "category": ("item", None)}
    assert {r.name: r.source for r in pred.bundle.live.numeric} == {"price": "event", "weight": "item"}
    # raw prices of every event, in prepared order (the service receives them unscaled)
    import polars as pl

    log = pl.read_csv(tmp_path / "log.csv").sort(["user", "ts"], maintain_order=True)
    art = workflows.load_run(run)
    assert log.height == art.data.item_idx.shape[0]
    _RAW_NUMERIC["price"] = np.array([float("nan") if v is None else v for v in log["price"].to_list()])
    try:
        _check_parity(run, bundle)
    finally:
        _RAW_NUMERIC.clear()
    with pytest.raises(RequestError, match="expected a number"):
        pred.predict([LiveEvent("i1", 1.7e9, {"price": "cheap"})])
    with pytest.raises(RequestError, match="one label"):
        pred.predict([LiveEvent("i1", 1.7e9, {"action": ["click", "buy"]})])


def test_request_rules(tiny_bundle: Path) -> None:
    pred = Predictor.from_path(tiny_bundle)
    ids = pred.bundle.item_vocab.ids
    t0 = 1.4e9
    events = [LiveEvent(ids[i], t0 + 60 * i) for i in range(5)]
    shuffled = [events[3], events[0], "nope", events[4], events[1], events[2]]
    shuffled = [LiveEvent("no-such-item", t0 + 10) if e == "nope" else e for e in shuffled]
    a, b = pred.predict(events, k=5), pred.predict(shuffled, k=5)
    assert a.items == b.items  # timed data: events are ordered by time, unknown items dropped
    assert b.ignored_items == ("no-such-item",) and a.ignored_items == ()
    long = [LiveEvent(ids[i % 50], t0 + 60 * i) for i in range(pred.max_len + 7)]
    out = pred.predict(long, k=3)
    assert out.events_used == pred.max_len and out.truncated == 7
    with pytest.raises(RequestError, match="timestamp"):
        pred.predict([LiveEvent(ids[0], None)])
    with pytest.raises(RequestError, match="k must be"):
        pred.predict(events, k=0)


def test_ranking_options(tiny_bundle: Path) -> None:
    pred = Predictor.from_path(tiny_bundle)
    ids = pred.bundle.item_vocab.ids
    events = [LiveEvent(ids[i], 1.4e9 + 60 * i) for i in range(5)]
    seen = set(ids[:5])
    assert seen.isdisjoint(i for i, _ in pred.predict(events, k=50, exclude_seen=True).items)
    kept = pred.predict(events, k=len(ids) + 10, exclude_seen=False)
    assert len(kept.items) == len(ids) and seen <= {i for i, _ in kept.items}
    scores = [s for _, s in kept.items]
    assert scores == sorted(scores, reverse=True)
    cands = [ids[7], ids[3], ids[40], "ghost"]
    out = pred.predict(events, k=10, candidates=cands, exclude_seen=True)
    assert {i for i, _ in out.items} == {ids[7], ids[40]} and out.unknown_candidates == ("ghost",)
    out = pred.predict(events, k=10, exclude=[i for i, _ in pred.predict(events, k=3).items])
    assert len(out.items) == 10 and not {i for i, _ in out.items} & {i for i, _ in pred.predict(events, k=3).items}


def test_empty_history_falls_back_to_popularity(tiny_bundle: Path) -> None:
    pred = Predictor.from_path(tiny_bundle)
    for events in ([], [LiveEvent("no-such-item", 1.4e9)]):
        out = pred.predict(events, k=5)
        assert out.fallback == "popularity" and out.intents == {} and out.attention == {}
        pop = pred.bundle.live.popularity
        best = np.argsort(-pop, kind="stable")[:5]
        assert [s for _, s in out.items] == [float(pop[i]) for i in best]


def test_predict_many_equals_one_by_one(tiny_bundle: Path) -> None:
    pred = Predictor.from_path(tiny_bundle, batch_size=4)
    ids = pred.bundle.item_vocab.ids
    rng = np.random.default_rng(1)
    requests = [
        PredictRequest([LiveEvent(ids[int(j)], 1.4e9 + 3600 * t) for t, j in enumerate(rng.integers(0, 300, n))], k=5)
        for n in (1, 9, 0, 3, 20, 2, 15)
    ]
    together = pred.predict_many(requests)
    for req, got in zip(requests, together, strict=True):
        alone = pred.predict(req.events, k=5)
        assert [i for i, _ in got.items] == [i for i, _ in alone.items]
        np.testing.assert_allclose([s for _, s in got.items], [s for _, s in alone.items], atol=1e-4)
        for name, labels in alone.intents.items():
            np.testing.assert_allclose([p for _, p in got.intents[name]], [p for _, p in labels], atol=1e-5)


def test_boost_share_of_each_score_is_explained_by_the_history(sim_run: Path, sim_bundle: Path) -> None:
    """The simulator config has both repeat boosts: each returned item carries the part of its score that the
    history adds, exactly zero for items that share neither the title nor the show with the history, and the same
    from the torch and ONNX backends, the HTTP answer and ``intentrec explain``."""
    from fastapi.testclient import TestClient

    from intentrec import analysis_workflows
    from intentrec.serve.http import create_app

    pred = Predictor.from_path(sim_bundle)
    vocab = pred.bundle.item_vocab
    shows = [i for i in vocab.ids if i.startswith("s") and i.endswith("e01") and vocab.encode(i[:-3] + "e02") >= 2]
    assert shows, "the tiny simulator has shows with two known episodes"
    first = shows[0]
    nxt = first[:-3] + "e02"
    history = [LiveEvent(first, 1_706_000_000.0, {})]
    others = [i for i in vocab.ids if i[:6] != first[:6]][:20]
    got = pred.predict(history, k=30, candidates=[first, nxt, *others], exclude_seen=False)
    boosts = dict(zip([i for i, _ in got.items], got.item_boosts or [], strict=True))
    assert set(boosts) == {first, nxt, *others}
    assert all(boosts[i] == 0.0 for i in others)  # nothing in the history reaches them
    assert boosts[nxt] != 0.0  # an episode of the watched show
    assert boosts[first] != boosts[nxt]  # the watched title also gets the item-level boost

    heads = dict(got.items)
    plain = pred.predict(history, k=30, candidates=others, exclude_seen=False)
    assert dict(plain.items) == pytest.approx({i: heads[i] for i in others}, abs=1e-5)

    onnx_bundle = workflows.export(sim_run, sim_bundle.parent / "onnx-boost-bundle", onnx=True)
    onnx = Predictor.from_path(onnx_bundle, backend="onnx").predict(history, k=30, candidates=[first, nxt, *others],
                                                                    exclude_seen=False)
    assert dict(zip([i for i, _ in onnx.items], onnx.item_boosts or [], strict=True)) == pytest.approx(boosts, abs=1e-4)

    client = TestClient(create_app(pred))
    body = client.post("/v1/recommend", json={"events": [{"item_id": first, "timestamp": 1_706_000_000}], "k": 30,
                                               "candidates": [first, nxt, *others], "exclude_seen": False}).json()
    assert {it["item_id"]: it["boost"] for it in body["items"]} == pytest.approx(boosts, abs=1e-5)

    why = analysis_workflows.explain(sim_bundle, items=[first], at=1_706_000_060.0, k=5, exclude_seen=False)
    views = {v.item_id: v for v in why.items}
    assert all(v.boost is not None for v in views.values()) and "boost" in why.to_json()["items"][0]
