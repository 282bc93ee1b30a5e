"""The HTTP service (``intentrec.serve.http``): round trips against the predictor, validation, limits, the API key,
error handling, concurrency, and one real uvicorn server on the loopback interface."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from intentrec.errors import ConfigError
from intentrec.features.live import LiveEvent
from intentrec.serve.http import API_KEY_HEADER, ServiceSettings, create_app
from intentrec.serve.predictor import Predictor

T0 = 1_000_000_000.0  # 2001-09-09T01:46:40Z


@pytest.fixture(scope="module")
def predictor(tiny_bundle: Path) -> Predictor:
    return Predictor.from_path(tiny_bundle)


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> Iterator[TestClient]:
    with TestClient(create_app(predictor)) as c:
        yield c


@pytest.fixture(scope="module")
def item_ids(predictor: Predictor) -> list[str]:
    return list(predictor.bundle.item_vocab.ids[:12])


def _events(ids: list[str]) -> list[dict[str, Any]]:
    return [{"item_id": x, "timestamp": T0 + 3600 * i} for i, x in enumerate(ids)]


def _live(ids: list[str]) -> list[LiveEvent]:
    return [LiveEvent(x, T0 + 3600 * i, {}) for i, x in enumerate(ids)]


def _error_fields(resp: httpx.Response) -> list[str]:
    """The last element of each validation error's ``loc`` (the field named)."""
    return [str(e["loc"][-1]) for e in resp.json()["detail"]]


# ----------------------------------------------------------------------------------------------------------


def test_healthz(client: TestClient, predictor: Predictor) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "model_version": predictor.bundle.model_version}


def test_metadata_describes_the_model(client: TestClient, predictor: Predictor) -> None:
    resp = client.get("/v1/metadata")
    assert resp.status_code == 200
    meta = resp.json()
    b = predictor.bundle
    assert meta["model_version"] == b.model_version
    assert (meta["architecture"], meta["variant"], meta["backend"]) == ("intentrec", "V3", "torch")
    assert meta["timed"] is True and meta["max_len"] == b.cfg.model.max_len
    assert meta["n_items"] == len(b.item_vocab) - 2
    assert set(meta["intents"]) == {"genre", "recency"}
    assert meta["intents"]["genre"]["multi_label"] is True
    assert "<pad>" not in meta["intents"]["genre"]["labels"] and "other" in meta["intents"]["genre"]["labels"]
    assert meta["event_fields"] == []  # MovieLens: every input attribute comes from the item tables
    assert meta["reads_request_time"] is False  # trained without model.request_gap
    assert len(meta["example_items"]) == 5
    resp = client.post("/v1/recommend", json={"events": _events(meta["example_items"]), "k": 3})
    assert resp.status_code == 200
    assert resp.json()["ignored_items"] == [] and resp.json()["events_used"] == 5


def test_openapi_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "IntentRec recommendation service"
    assert {"/v1/recommend", "/v1/metadata", "/healthz"} <= set(spec["paths"])
    assert spec["components"]["schemas"]["RecommendRequest"]["properties"]["k"]["maximum"] == 1000
    assert client.get("/docs").status_code == 200


def test_recommend_matches_predictor(client: TestClient, predictor: Predictor, item_ids: list[str]) -> None:
    resp = client.post("/v1/recommend", json={"events": _events(item_ids), "k": 15, "user_id": "u1"})
    assert resp.status_code == 200
    body = resp.json()
    expected = predictor.predict(_live(item_ids), k=15)
    assert [i["item_id"] for i in body["items"]] == [i for i, _ in expected.items]
    assert [i["score"] for i in body["items"]] == pytest.approx([s for _, s in expected.items], rel=1e-6)
    assert [i["name"] for i in body["items"]] == expected.item_names
    assert body["model_version"] == predictor.bundle.model_version
    assert body["user_id"] == "u1" and body["fallback"] is None
    assert body["events_used"] == expected.events_used and body["truncated"] == expected.truncated
    assert set(body["intents"]) == {"genre", "recency"}
    for name, intent in body["intents"].items():
        assert [x["label"] for x in intent["labels"]] == [lab for lab, _ in expected.intents[name]]
        assert [x["probability"] for x in intent["labels"]] == pytest.approx([p for _, p in expected.intents[name]])
        assert intent["attention"] == pytest.approx(expected.attention[name])
    assert body["attention"] == pytest.approx(expected.attention)
    assert sum(body["attention"].values()) == pytest.approx(1.0, abs=1e-4)


def test_unknown_items_are_ignored_and_reported(client: TestClient, item_ids: list[str]) -> None:
    events = _events([item_ids[0], "no-such-item", item_ids[1], "nope"])
    body = client.post("/v1/recommend", json={"events": events, "k": 5}).json()
    assert body["ignored_items"] == ["no-such-item", "nope"]
    assert body["events_used"] == 2 and body["fallback"] is None and len(body["items"]) == 5


@pytest.mark.parametrize("events", [[], [{"item_id": "unknown-1", "timestamp": T0}]])
def test_empty_or_unknown_history_falls_back_to_popularity(
    client: TestClient, predictor: Predictor, events: list[dict[str, Any]]
) -> None:
    body = client.post("/v1/recommend", json={"events": events, "k": 5}).json()
    assert body["fallback"] == "popularity" and body["events_used"] == 0
    meta = client.get("/v1/metadata").json()
    assert [i["item_id"] for i in body["items"]] == meta["example_items"]
    assert body["intents"] == {} and body["attention"] == {}


def test_exclude_seen_and_exclude(client: TestClient, item_ids: list[str]) -> None:
    history, others = item_ids[:5], item_ids[5:10]
    base = {"events": _events(history), "k": 10, "candidates": history + others}
    kept = client.post("/v1/recommend", json={**base, "exclude_seen": False}).json()
    dropped = client.post("/v1/recommend", json={**base, "exclude_seen": True}).json()
    assert {i["item_id"] for i in kept["items"]} == set(history + others)
    assert {i["item_id"] for i in dropped["items"]} == set(others)
    top = kept["items"][0]["item_id"]
    body = client.post("/v1/recommend", json={**base, "exclude_seen": False, "exclude": [top]}).json()
    assert [i["item_id"] for i in body["items"]] == [i["item_id"] for i in kept["items"][1:]]


def test_candidates_restrict_the_ranking(client: TestClient, predictor: Predictor, item_ids: list[str]) -> None:
    candidates = [*item_ids[5:9], "missing-a", "missing-a"]
    body = client.post("/v1/recommend", json={
        "events": _events(item_ids[:3]), "k": 10, "candidates": candidates,
    }).json()
    assert {i["item_id"] for i in body["items"]} == set(item_ids[5:9])
    assert body["unknown_candidates"] == ["missing-a"]
    expected = predictor.predict(_live(item_ids[:3]), k=10, candidates=candidates)
    assert [i["item_id"] for i in body["items"]] == [i for i, _ in expected.items]


def test_integer_item_ids_are_coerced(client: TestClient, item_ids: list[str]) -> None:
    numeric = [x for x in item_ids if x.isdigit()][:3]
    as_int = [{"item_id": int(x), "timestamp": T0 + i} for i, x in enumerate(numeric)]
    as_str = [{"item_id": x, "timestamp": T0 + i} for i, x in enumerate(numeric)]
    a = client.post("/v1/recommend", json={"events": as_int, "candidates": [int(numeric[0]), 7]}).json()
    b = client.post("/v1/recommend", json={"events": as_str, "candidates": [numeric[0], "7"]}).json()
    assert a["items"] == b["items"] and a["ignored_items"] == []


def test_iso_timestamps_equal_epoch_seconds(client: TestClient, item_ids: list[str]) -> None:
    epoch = _events(item_ids[:6])
    iso = [{"item_id": e["item_id"],
            "timestamp": datetime.fromtimestamp(e["timestamp"], UTC).isoformat().replace("+00:00", "Z")}
           for e in epoch]
    naive = [{"item_id": e["item_id"], "timestamp": datetime.fromtimestamp(e["timestamp"], UTC)
              .replace(tzinfo=None).isoformat()} for e in epoch]
    results = [client.post("/v1/recommend", json={"events": ev, "k": 10}).json() for ev in (epoch, iso, naive)]
    assert results[0]["items"] == results[1]["items"] == results[2]["items"]
    assert results[0]["intents"] == results[1]["intents"]


def test_event_order_is_by_timestamp(client: TestClient, item_ids: list[str]) -> None:
    events = _events(item_ids[:6])
    a = client.post("/v1/recommend", json={"events": events}).json()
    b = client.post("/v1/recommend", json={"events": events[::-1]}).json()
    assert a["items"] == b["items"]


def test_missing_timestamp_for_timed_model_is_422(client: TestClient, item_ids: list[str]) -> None:
    resp = client.post("/v1/recommend", json={"events": [{"item_id": item_ids[0]}]})
    assert resp.status_code == 422
    assert "timestamp" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": [{"timestamp": T0}]}, "item_id"),
        ({"events": [{"item_id": ["a"], "timestamp": T0}]}, "item_id"),
        ({"events": [{"item_id": "1", "timestamp": "yesterday"}]}, "timestamp"),
        ({"events": [{"item_id": "1", "timestamp": True}]}, "timestamp"),
        ({"events": [{"item_id": "1", "timestamp": T0, "duration": "long"}]}, "duration"),
        ({"events": [{"item_id": "1", "timestamp": T0, "colour": "red"}]}, "colour"),
        ({"events": "1,2,3"}, "events"),
        ({"events": [], "k": 0}, "k"),
        ({"events": [], "k": 1001}, "k"),
        ({"events": [], "k": "ten"}, "k"),
        ({"events": [], "k": True}, "k"),
        ({"events": [], "exclude_seen": "yes"}, "exclude_seen"),
        ({"events": [], "candidates": "1"}, "candidates"),
        ({"events": [], "surprise": 1}, "surprise"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    resp = client.post("/v1/recommend", json=body)
    assert resp.status_code == 422, resp.text
    assert field in _error_fields(resp) or field in str(resp.json()["detail"])


def test_malformed_json_is_422(client: TestClient) -> None:
    resp = client.post("/v1/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422


def test_action_duration_and_attributes_reach_the_predictor(
    client: TestClient, predictor: Predictor, item_ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    real = predictor.predict_many

    def spy(requests: Any) -> Any:
        seen.extend(requests)
        return real(requests)

    monkeypatch.setattr(predictor, "predict_many", spy)
    event = {"item_id": item_ids[0], "timestamp": T0, "action": "play", "duration": 12.5, "attributes": {"device": "tv"}}
    assert client.post("/v1/recommend", json={"events": [event], "user_id": "u"}).status_code == 200
    (req,) = seen
    assert req.events == [LiveEvent(item_ids[0], T0, {"device": "tv", "action": "play", "duration": 12.5})]
    assert req.user_id == "u" and req.k == 10 and req.exclude_seen is None
    clash = {**event, "attributes": {"action": "pause"}}
    assert client.post("/v1/recommend", json={"events": [clash]}).status_code == 422


def test_limits(predictor: Predictor, item_ids: list[str]) -> None:
    settings = ServiceSettings(max_events=4, max_body_bytes=2000, max_k=20, max_candidates=3)
    with TestClient(create_app(predictor, settings=settings)) as c:
        assert c.post("/v1/recommend", json={"events": _events(item_ids[:4])}).status_code == 200
        resp = c.post("/v1/recommend", json={"events": _events(item_ids[:5])})
        assert resp.status_code == 413 and "max_events" in resp.json()["detail"] and "4" in resp.json()["detail"]
        resp = c.post("/v1/recommend", json={"events": [], "k": 21})
        assert resp.status_code == 422 and _error_fields(resp) == ["k"]
        resp = c.post("/v1/recommend", json={"events": [], "candidates": item_ids[:4]})
        assert resp.status_code == 422 and _error_fields(resp) == ["candidates"]
        big = {"events": [], "user_id": "x" * 500, "exclude": ["y" * 500] * 3}  # > 2000 bytes
        resp = c.post("/v1/recommend", json=big)
        assert resp.status_code == 413 and "max_body_bytes" in resp.json()["detail"]
        # no Content-Length (chunked): the bytes received are counted
        chunks = [b'{"events": [], "exclude": ["', b"z" * 1500, b'", "', b"z" * 1500, b'"]}']
        resp = c.post("/v1/recommend", content=iter(chunks), headers={"content-type": "application/json"})
        assert resp.status_code == 413
        small = [b'{"events": [], ', b'"k": 3}']
        resp = c.post("/v1/recommend", content=iter(small), headers={"content-type": "application/json"})
        assert resp.status_code == 200 and len(resp.json()["items"]) == 3


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_k"):
        ServiceSettings(max_k=0)
    with pytest.raises(ConfigError, match="api_key"):
        ServiceSettings(api_key="")
    assert "s3cret" not in repr(ServiceSettings(api_key="s3cret"))


def test_api_key(predictor: Predictor, item_ids: list[str]) -> None:
    with TestClient(create_app(predictor, settings=ServiceSettings(api_key="s3cret"))) as c:
        body = {"events": _events(item_ids[:2])}
        assert c.post("/v1/recommend", json=body).status_code == 401
        assert c.post("/v1/recommend", json=body, headers={API_KEY_HEADER: "wrong"}).status_code == 401
        assert c.post("/v1/recommend", json=body, headers={API_KEY_HEADER: "s3cret\u00e9".encode("latin-1")}).status_code == 401
        assert c.get("/v1/metadata").status_code == 401
        resp = c.post("/v1/recommend", json=body, headers={API_KEY_HEADER: "s3cret"})
        assert resp.status_code == 200 and resp.json()["items"]
        assert c.get("/v1/metadata", headers={API_KEY_HEADER: "s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_unexpected_error_is_500_without_details(
    client: TestClient, predictor: Predictor, item_ids: list[str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(requests: Any) -> Any:
        raise Exception("secret internals /srv/model")

    monkeypatch.setattr(predictor, "predict_many", boom)
    with caplog.at_level("ERROR", logger="intentrec.serve.http"):
        resp = client.post("/v1/recommend", json={"events": _events(item_ids[:2])})
    assert resp.status_code == 500
    assert "Traceback" not in resp.text and "secret" not in resp.text
    assert resp.json()["detail"].startswith("internal server error") and resp.json()["error_id"]
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)


def test_concurrent_requests(client: TestClient, item_ids: list[str]) -> None:
    bodies = [{"events": _events(item_ids[: 2 + i % 4]), "k": 8} for i in range(32)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda b: client.post("/v1/recommend", json=b), bodies))
    assert all(r.status_code == 200 for r in responses)
    by_input: dict[int, Any] = {}
    for i, r in enumerate(responses):  # micro-batching may change scores in the last float bits only
        first = by_input.setdefault(i % 4, r.json())
        got = r.json()
        assert [x["item_id"] for x in got["items"]] == [x["item_id"] for x in first["items"]]
        assert [x["score"] for x in got["items"]] == pytest.approx([x["score"] for x in first["items"]], abs=1e-5)
        assert got["attention"] == pytest.approx(first["attention"], abs=1e-6)
    assert len({str(v["items"]) for v in by_input.values()}) > 1


def test_bundle_path_is_loaded_at_startup(tiny_bundle: Path, predictor: Predictor) -> None:
    app = create_app(tiny_bundle)
    assert TestClient(app).get("/healthz").status_code == 503  # no lifespan yet: nothing loaded
    with TestClient(app) as c:
        assert c.get("/healthz").json()["model_version"] == predictor.bundle.model_version


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_on_loopback(predictor: Predictor, item_ids: list[str]) -> None:
    port = _free_port()
    config = uvicorn.Config(create_app(predictor), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        assert server.started, "uvicorn did not start within 20 s"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/healthz").json()["status"] == "ok"
            resp = http.post("/v1/recommend", json={"events": _events(item_ids[:3]), "k": 4})
            assert resp.status_code == 200 and len(resp.json()["items"]) == 4
            resp = http.post("/v1/recommend", content=b"x" * (2 << 20), headers={"content-type": "application/json"})
            assert resp.status_code == 413
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert not thread.is_alive()
