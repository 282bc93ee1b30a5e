"""The HTTP service under hostile input (``intentrec.serve.http``): property tests generated from its OpenAPI spec
(schemathesis, in process through the ASGI app, no network), hand-written hostile bodies, and its safe defaults.

Every answer must be a 2xx or a 4xx with a JSON body and never a traceback, and the process RSS must stay bounded
across the hostile bodies. ``pytest tests/reliability/test_http_fuzz.py -s`` prints the fuzzing summary (examples
per operation, generation mode and API-key setting, and the statuses seen).
"""

from __future__ import annotations

import hmac
import inspect
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from typer.testing import CliRunner

from intentrec import cli
from intentrec.serve import http as service
from intentrec.serve.http import API_KEY_HEADER, ServiceSettings, create_app
from intentrec.serve.predictor import Predictor

API_KEY = "fuzz-key-0123456789"
T0 = 1_000_000_000.0
MAX_EXAMPLES = 100
"""Examples per operation, generation mode and key setting (12 runs in all): the file runs in well under a minute."""

OPERATIONS = [("GET", "/healthz"), ("GET", "/v1/metadata"), ("POST", "/v1/recommend")]
"""Every operation of the OpenAPI spec (checked by :func:`test_spec_lists_every_operation`)."""

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
"""Checks run on every generated call. ``positive_data_acceptance`` is left out on purpose: the schema cannot say
that a timed model needs a timestamp on every event, or which strings are ISO 8601 times, so a schema-valid body
may rightly get a 422 from the model."""

REJECTION_STATUSES = ["400", "401", "413", "415", "422"]
"""How the service may refuse invalid data (413: a generated body over ``max_body_bytes``)."""

SCHEMATHESIS_CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTION_STATUSES}}}
)
"""Explicit, so no ``schemathesis.toml`` found on disk changes the run."""

FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))

FUZZ_STATS: dict[str, Counter[str]] = {}
"""``"<key|open> <mode> <METHOD> <path>"`` -> counts of the statuses seen (printed when the module ends)."""

RSS_GROWTH_LIMIT_MB = 32.0
"""Largest RSS growth allowed over repeated rounds of every hostile body, after a warm-up round."""


# ----------------------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def predictor(tiny_bundle: Path) -> Predictor:
    return Predictor.from_path(tiny_bundle)


@pytest.fixture(scope="module")
def item_ids(predictor: Predictor) -> list[str]:
    return list(predictor.bundle.item_vocab.ids[:8])


@pytest.fixture(scope="module", autouse=True)
def _fuzz_summary() -> Iterator[None]:
    yield
    if FUZZ_STATS:
        print("\nschemathesis summary (operation: examples, statuses)")
        for op, counts in sorted(FUZZ_STATS.items()):
            print(f"  {op}: {sum(counts.values())} examples, {dict(sorted(counts.items()))}")


@pytest.fixture(scope="module")
def open_schema(predictor: Predictor) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(predictor), config=SCHEMATHESIS_CONFIG)


@pytest.fixture(scope="module")
def keyed_schema(predictor: Predictor) -> Any:
    app = create_app(predictor, settings=ServiceSettings(api_key=API_KEY))
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=SCHEMATHESIS_CONFIG)


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> Iterator[TestClient]:
    with TestClient(create_app(predictor), raise_server_exceptions=False) as c:
        yield c


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text[:500]


def _strict_json(text: str) -> Any:
    """The body parsed as strict JSON (NaN / Infinity are not JSON)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a response body")

    return json.loads(text, parse_constant=refuse)


def _rss_bytes() -> int:
    """This process' resident set size (psutil when installed, else ``/proc/self/statm``)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


# ----------------------------------------------------------------------------------------------------------
# Property tests from the OpenAPI spec


def test_spec_lists_every_operation(open_schema: Any, keyed_schema: Any) -> None:
    for schema in (open_schema, keyed_schema):
        found = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
        assert found == set(OPERATIONS)


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "key"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_operation(method: str, path: str, mode: GenerationMode, keyed: bool, open_schema: Any,
                        keyed_schema: Any) -> None:
    """Schema-generated requests (valid ones, and invalid ones in negative mode): no 5xx, answers conform to the
    schema, invalid data gets a 4xx; with a key configured, the same with the key, and 401 without it (but on
    ``/healthz``).

    (``as_strategy`` and ``@given`` rather than ``schema.parametrize()``: schemathesis' lazy fixture loader fails
    on pytest 9 with ``'Function' object has no attribute '_nodeid'``.)
    """
    operation = (keyed_schema if keyed else open_schema)[path][method]
    label = f"{'key' if keyed else 'open'} {mode.value} {method} {path}"
    headers = {API_KEY_HEADER: API_KEY} if keyed else None

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        FUZZ_STATS.setdefault(label, Counter())[str(response.status_code)] += 1
        _no_traceback(response.text)
        if keyed:
            anonymous = case.call(headers={API_KEY_HEADER: ""})  # an empty key is no key
            if path == "/healthz":
                assert anonymous.status_code == 200
            else:
                assert anonymous.status_code == 401, anonymous.text
                assert anonymous.json()["detail"].startswith("missing or invalid API key")

    try:
        fuzz()
    except Unsatisfiable:
        pytest.skip(f"{method} {path} has no input to make invalid")


# ----------------------------------------------------------------------------------------------------------
# Hand-written hostile bodies


@dataclass(frozen=True)
class Hostile:
    """A hostile request to ``POST /v1/recommend`` and the statuses it may get."""

    name: str
    body: bytes | Callable[[], Iterator[bytes]]
    """The raw body, or a factory of chunks (sent chunked, without Content-Length)."""
    expected: tuple[int, ...]
    content_type: str | None = "application/json"


def _j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _ev(item: Any = "1", **fields: Any) -> dict[str, Any]:
    return {"item_id": item, "timestamp": T0, **fields}


MB = 1 << 20
_WRONG_TYPES: list[tuple[str, Any]] = [
    # (where, a body with a wrong type there); every one must be a 422
    ("events=str", {"events": "1,2,3"}), ("events=int", {"events": 1}), ("events=object", {"events": {}}),
    ("events=null", {"events": None}), ("events[0]=str", {"events": ["1"]}), ("events[0]=list", {"events": [[]]}),
    ("item_id=list", {"events": [_ev(["a"])]}), ("item_id=object", {"events": [_ev({})]}),
    ("item_id=bool", {"events": [_ev(True)]}), ("item_id=float", {"events": [_ev(1.5)]}),
    ("item_id=null", {"events": [_ev(None)]}), ("item_id=empty", {"events": [_ev("")]}),
    ("timestamp=list", {"events": [{"item_id": "1", "timestamp": []}]}),
    ("timestamp=bool", {"events": [{"item_id": "1", "timestamp": True}]}),
    ("timestamp=object", {"events": [{"item_id": "1", "timestamp": {}}]}),
    ("timestamp=text", {"events": [{"item_id": "1", "timestamp": "yesterday"}]}),
    ("action=int", {"events": [_ev(action=1)]}), ("action=list", {"events": [_ev(action=["play"])]}),
    ("duration=str", {"events": [_ev(duration="long")]}), ("duration=bool", {"events": [_ev(duration=True)]}),
    ("attributes=list", {"events": [_ev(attributes=[])]}), ("attributes=str", {"events": [_ev(attributes="x")]}),
    ("attributes.value=object", {"events": [_ev(attributes={"a": {}})]}),
    ("attributes.value=nested list", {"events": [_ev(attributes={"a": [[1]]})]}),
    ("k=str", {"k": "10"}), ("k=float", {"k": 1.5}), ("k=bool", {"k": True}), ("k=null", {"k": None}),
    ("k=list", {"k": [10]}), ("exclude_seen=str", {"exclude_seen": "yes"}), ("exclude_seen=int", {"exclude_seen": 1}),
    ("candidates=str", {"candidates": "1"}), ("candidates=nested", {"candidates": [[]]}),
    ("candidates=object", {"candidates": {}}), ("exclude=null", {"exclude": None}),
    ("exclude=float", {"exclude": [1.5]}), ("user_id=int", {"user_id": 1}), ("user_id=list", {"user_id": []}),
    ("unknown field", {"surprise": 1}), ("event unknown field", {"events": [_ev(colour="red")]}),
]

HOSTILE: list[Hostile] = [
    # nesting: past the JSON parser's depth -> 400; just under it -> 422 with a bounded echo
    Hostile("nested 10000 deep (arrays)", b'{"events": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", (400,)),
    Hostile("nested 10000 deep (objects)",
            b'{"events": [{"item_id": "1", "attributes": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}]}", (400,)),
    Hostile("nested 900 deep (arrays)", b'{"events": ' + b"[" * 900 + b"]" * 900 + b"}", (422,)),
    # size: over max_body_bytes -> 413 before parsing; over a list limit -> 413 / 422
    Hostile("array of 1e6 candidates (2 MB)", b'{"candidates": [' + b"1," * 999_999 + b"1]}", (413,)),
    Hostile("array of 1e6 events (body over the limit)", b'{"events": [' + b"{}," * 999_999 + b"{}]}", (413,)),
    Hostile("1001 events (over max_events)", _j({"events": [_ev(str(i)) for i in range(1001)]}), (413,)),
    Hostile("10001 candidates (over max_candidates)", _j({"candidates": ["1"] * 10_001}), (422,)),
    Hostile("2 MB string", b'{"user_id": "' + b"a" * (2 * MB) + b'"}', (413,)),
    Hostile("900 kB string (under the body limit)", b'{"user_id": "' + b"a" * (900 << 10) + b'"}', (422,)),
    Hostile("2 MB chunked, no Content-Length",
            lambda: iter([b'{"user_id": "'] + [b"a" * (64 << 10)] * 32 + [b'"}']), (413,)),
    # numbers
    Hostile("k = -1", _j({"k": -1}), (422,)),
    Hostile("k = 0", _j({"k": 0}), (422,)),
    Hostile("k = 10**18", _j({"k": 10**18}), (422,)),
    Hostile("k = 10**400", _j({"k": 10**400}), (422,)),
    Hostile("k with 5000 digits (over Python's int limit)", b'{"k": ' + b"9" * 5000 + b"}", (400,)),
    Hostile("k = NaN", b'{"k": NaN}', (422,)),
    Hostile("timestamp = Infinity", b'{"events": [{"item_id": "1", "timestamp": Infinity}]}', (422,)),
    Hostile("timestamp = 1e400 (parsed as inf)", b'{"events": [{"item_id": "1", "timestamp": 1e400}]}', (422,)),
    Hostile("timestamp = 10**400", _j({"events": [{"item_id": "1", "timestamp": 10**400}]}), (422,)),
    Hostile("duration = NaN", b'{"events": [{"item_id": "1", "timestamp": 1, "duration": NaN}]}', (422,)),
    Hostile("duration = 10**400", _j({"events": [_ev(duration=10**400)]}), (422,)),
    Hostile("attribute = -Infinity", b'{"events": [{"item_id": "1", "timestamp": 1, "attributes": {"x": -Infinity}}]}',
            (422,)),
    Hostile("attribute = 10**400", _j({"events": [_ev(attributes={"x": [1, 10**400]})]}), (422,)),
    Hostile("candidates = [NaN]", b'{"candidates": [NaN]}', (422,)),
    # unicode
    Hostile("lone surrogate in item_id", b'{"events": [{"item_id": "\\ud800", "timestamp": 1}]}', (422,)),
    Hostile("lone surrogate in candidates", b'{"candidates": ["a\\udfff"]}', (422,)),
    Hostile("lone surrogate in exclude", b'{"exclude": ["\\udc00"]}', (422,)),
    Hostile("lone surrogate in user_id", b'{"user_id": "\\ud800"}', (422,)),
    Hostile("lone surrogate in action", b'{"events": [{"item_id": "1", "timestamp": 1, "action": "\\ud800"}]}', (422,)),
    Hostile("lone surrogate in timestamp", b'{"events": [{"item_id": "1", "timestamp": "\\ud800"}]}', (422,)),
    Hostile("lone surrogate in k", b'{"k": "\\ud800"}', (422,)),
    Hostile("lone surrogate as a field name", b'{"\\ud800": 1}', (422,)),
    Hostile("invalid UTF-8 bytes", b'{"user_id": "\xff\xfe\xfd"}', (400,)),
    Hostile("raw NUL byte in a string", b'{"user_id": "a\x00b"}', (400, 422)),
    Hostile("NUL escape in an unknown field", b'{"a\\u0000": 1}', (422,)),
    # the body as a whole
    Hostile("empty body", b"", (422,)),
    Hostile("JSON null", b"null", (422,)),
    Hostile("JSON array", b"[]", (422,)),
    Hostile("JSON string", b'"events"', (422,)),
    Hostile("truncated JSON", b'{"events": [', (400, 422)),
    Hostile("trailing garbage", b'{"events": []} x', (400, 422)),
    Hostile("text/plain body", _j({"events": []}), (415, 422), "text/plain"),
    Hostile("form body", b"events=1&k=2", (415, 422), "application/x-www-form-urlencoded"),
    Hostile("multipart body", b"--x\r\nContent-Disposition: form-data; name=k\r\n\r\n3\r\n--x--\r\n", (415, 422),
            "multipart/form-data; boundary=x"),
    Hostile("XML body", b"<events/>", (415, 422), "application/xml"),
    Hostile("no content type", _j({"events": []}), (415, 422), None),
    *[Hostile(f"wrong type: {where}", _j(doc), (422,)) for where, doc in _WRONG_TYPES],
]


def _send(client: TestClient, case: Hostile) -> Any:
    headers = {} if case.content_type is None else {"content-type": case.content_type}
    content = case.body if isinstance(case.body, bytes) else case.body()
    return client.post("/v1/recommend", content=content, headers=headers)


@pytest.mark.parametrize("case", HOSTILE, ids=[h.name for h in HOSTILE])
def test_hostile_body_is_a_4xx_with_a_json_error(client: TestClient, case: Hostile) -> None:
    resp = _send(client, case)
    assert resp.status_code in case.expected, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json")
    body = _strict_json(resp.text)
    assert body["detail"], body
    _no_traceback(resp.text)
    assert len(resp.content) < 64 << 10, "an error answer echoes at most a bounded part of the input"


@pytest.mark.parametrize(
    ("name", "body", "check"),
    [
        ("right-to-left and zero-width ids", {"events": [_ev("\u202eabc\u200b"), _ev("\u200d\ufeff")]},
         lambda b: b["ignored_items"] == ["\u202eabc\u200b", "\u200d\ufeff"] and b["fallback"] == "popularity"),
        ("NUL escape in user_id", {"user_id": "a\u0000b"}, lambda b: b["user_id"] == "a\u0000b"),
        ("emoji and combining marks", {"user_id": "\U0001f600e\u0301", "events": [_ev("\U0001f600")]},
         lambda b: b["user_id"] == "\U0001f600e\u0301" and b["ignored_items"] == ["\U0001f600"]),
        ("duplicate keys (the last wins)", b'{"k": 3, "events": [], "k": 5}', lambda b: len(b["items"]) == 5),
        ("UTF-8 byte order mark", b'\xef\xbb\xbf{"k": 2}', lambda b: len(b["items"]) == 2),
        ("timestamp = 1e308", {"events": [_ev(timestamp=1e308)]}, lambda b: b["events_used"] == 1),
        ("timestamp = year 1", {"events": [_ev(timestamp="0001-01-01T00:00:00-14:00")]}, lambda b: b["items"]),
    ],
)
def test_hostile_but_valid_bodies_are_answered(
    client: TestClient, name: str, body: dict[str, Any] | bytes, check: Callable[[dict[str, Any]], bool]
) -> None:
    raw = body if isinstance(body, bytes) else _j(body)
    resp = client.post("/v1/recommend", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 200, resp.text[:300]
    assert check(_strict_json(resp.text))


def test_hostile_bodies_do_not_grow_memory(client: TestClient) -> None:
    """Every hostile body, a warm-up round and then 4 more: the RSS grows by less than RSS_GROWTH_LIMIT_MB."""
    for case in HOSTILE:  # warm-up: first-use allocations (parser buffers, pydantic caches) happen here
        assert _send(client, case).status_code < 500
    before = _rss_bytes()
    for _ in range(4):
        for case in HOSTILE:
            assert _send(client, case).status_code < 500
    after = _rss_bytes()
    growth_mb = (after - before) / MB
    print(f"\nRSS over 4 rounds of {len(HOSTILE)} hostile bodies (after a warm-up round): {before / MB:.1f} -> "
          f"{after / MB:.1f} MB ({growth_mb:+.1f} MB)")
    assert growth_mb < RSS_GROWTH_LIMIT_MB


# ----------------------------------------------------------------------------------------------------------
# Safe defaults


def test_serve_binds_to_loopback_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_run_server = service.run_server
    runner = CliRunner()
    help_text = runner.invoke(cli.app, ["serve", "--help"], terminal_width=200).output
    assert "127.0.0.1" in help_text
    assert inspect.signature(service.run_server).parameters["host"].default == "127.0.0.1"
    seen: dict[str, Any] = {}
    monkeypatch.setattr(service, "run_server", lambda *a, **kw: seen.update(kw))
    result = runner.invoke(cli.app, ["serve", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["settings"].api_key is None

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(uvicorn=kw))
    real_run_server(tmp_path)  # the library entry point, too
    assert seen["uvicorn"]["host"] == "127.0.0.1"


def test_default_limits_and_no_debug(predictor: Predictor) -> None:
    settings_ = ServiceSettings()
    assert settings_.max_body_bytes == 1 << 20 and settings_.api_key is None
    assert (settings_.max_events, settings_.max_k, settings_.max_candidates) == (1000, 1000, 10_000)
    assert create_app(predictor).debug is False


def test_api_key_is_compared_in_constant_time(predictor: Predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    source = inspect.getsource(service.create_app)
    assert "hmac.compare_digest(" in source
    assert "== expected_key" not in source and "expected_key ==" not in source
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with TestClient(create_app(predictor, settings=ServiceSettings(api_key=API_KEY))) as c:
        for wrong in ["", API_KEY[:-1], API_KEY + "x", API_KEY[:-1] + "X", "\u00e9" * len(API_KEY)]:
            headers = {API_KEY_HEADER: wrong.encode("latin-1")}
            assert c.get("/v1/metadata", headers=headers).status_code == 401
        assert c.get("/v1/metadata", headers={API_KEY_HEADER: API_KEY}).status_code == 200
    assert (API_KEY.encode(), API_KEY.encode()) in calls
    assert len(calls) >= 5  # every presented key went through compare_digest


def test_api_key_is_checked_before_the_body_is_read(predictor: Predictor) -> None:
    """Without the key: 401 whatever the body (malformed, over the limit) or the path; /healthz and docs are open."""
    settings_ = ServiceSettings(api_key=API_KEY, max_body_bytes=1000)
    with TestClient(create_app(predictor, settings=settings_)) as c:
        json_ct = {"content-type": "application/json"}
        for body in [b"\x00", b'{"events": [', b"x" * 5000, b'{"k": NaN}']:
            resp = c.post("/v1/recommend", content=body, headers=json_ct)
            assert resp.status_code == 401 and resp.json()["detail"].startswith("missing or invalid API key")
        assert c.get("/no/such/path").status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/openapi.json").status_code == 200
        assert c.get("/docs").status_code == 200
        keyed = {**json_ct, API_KEY_HEADER: API_KEY}
        assert c.post("/v1/recommend", content=b"x" * 5000, headers=keyed).status_code == 413
        assert c.post("/v1/recommend", content=b'{"events": [', headers=keyed).status_code in (400, 422)
        assert c.post("/v1/recommend", content=b'{"k": 2}', headers=keyed).status_code == 200


def test_unexpected_error_outside_recommend_is_a_bare_500(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app-wide handler (the /v1/recommend path has its own test in tests/serve): no details, an error id."""

    def boom(*args: Any) -> Any:
        raise RuntimeError("secret internals /srv/model")

    monkeypatch.setattr(service, "_metadata", boom)
    with TestClient(create_app(predictor), raise_server_exceptions=False) as c:
        resp = c.get("/v1/metadata")
    assert resp.status_code == 500
    assert "secret" not in resp.text and "RuntimeError" not in resp.text
    _no_traceback(resp.text)
    assert resp.json()["detail"].startswith("internal server error") and resp.json()["error_id"]
