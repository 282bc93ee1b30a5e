"""The HTTP recommendation service: a FastAPI application over a :class:`~intentrec.serve.predictor.Predictor`.

Endpoints::

    POST /v1/recommend   raw events in -> ranked items, predicted intents and the intent attention out
    GET  /v1/metadata    model version, architecture, timed or not, catalogue size, intents and their labels,
                         the request attribute fields the model reads, a few valid item ids
    GET  /healthz        liveness (never needs the API key)
    GET  /docs, /openapi.json   interactive documentation (FastAPI defaults)

Usage::

    from intentrec.serve.http import ServiceSettings, create_app, run_server
    app = create_app("bundles/tiny", settings=ServiceSettings(api_key="s3cret"))   # an ASGI app (uvicorn, ...)
    run_server("bundles/tiny", port=8000)                                          # or serve it directly

Behaviour:

* the model is loaded once, at start-up (FastAPI lifespan), unless a ready :class:`Predictor` is passed in;
* inference runs in the server's thread pool (the endpoint is a plain ``def``), never on the event loop;
* unknown item ids are ignored and reported, never an error; a history without a known item gets the training
  popularity ranking (``fallback: "popularity"``);
* limits (:class:`ServiceSettings`): a body over ``max_body_bytes`` -> 413 before it is parsed (the declared
  ``Content-Length`` and the bytes actually received are both checked), more than ``max_events`` events -> 413,
  ``k`` over ``max_k`` or more than ``max_candidates`` candidates/excluded ids -> 422;
* an invalid body -> 422 in FastAPI's validation format (``detail[*].loc`` names the field), an invalid event
  for this model (e.g. a missing timestamp for a timed model) -> 422 with the predictor's message, a body that is
  not JSON (or nested deeper than the JSON parser allows) -> 400, an unexpected failure -> 500 with a generic
  message and an error id (the traceback goes to the server log only);
* error bodies are always valid, bounded JSON: the validation error's echo of the input is made JSON-safe
  (``NaN`` and ``Infinity`` as strings, lone surrogates backslash-escaped) and cut (long strings, long lists,
  deep nesting, at most 100 errors); ids with lone surrogates (no catalogue id has one, no response could
  encode one) and numbers too large for a float are refused with 422;
* with ``api_key`` set, every path but ``/healthz`` and the docs needs the ``X-API-Key`` header (401 otherwise,
  before the body is read), compared in constant time (:func:`hmac.compare_digest`); without a key the OpenAPI
  declares no security scheme.

Importing this module loads nothing; it needs the ``serve`` extra (fastapi, uvicorn).
"""

import dataclasses
import hmac
import json
import logging
import math
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from intentrec import __version__
from intentrec.errors import ConfigError, RequestError
from intentrec.features.live import LiveEvent
from intentrec.serve.predictor import MicroBatcher, Prediction, Predictor, PredictRequest, TorchScorer

__all__ = [
    "API_KEY_HEADER",
    "EventIn",
    "MetadataResponse",
    "RecommendRequest",
    "RecommendResponse",
    "ServiceSettings",
    "create_app",
    "run_server",
]

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
"""Request header carrying the API key (when :attr:`ServiceSettings.api_key` is set)."""

_MAX_ID_CHARS = 512
"""Longest accepted item / user id (anything longer cannot be a catalogue id)."""
_N_EXAMPLE_ITEMS = 5
_MAX_ECHO_DEPTH = 16
"""Nesting kept when a validation error echoes the input (deeper parts become ``"..."``)."""
_MAX_ECHO_CHARS = 1000
"""Characters kept of an echoed string (a 900 kB string over ``max_length`` is not sent back whole)."""
_MAX_ECHO_ITEMS = 100
"""Items kept of an echoed list or object."""
_ENV_BUNDLE = "INTENTREC_SERVE_BUNDLE"
_ENV_SETTINGS = "INTENTREC_SERVE_SETTINGS"

ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
ASGISend = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]


# ----------------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and options of the HTTP service.

    Raises:
        ConfigError: a limit is not a positive integer, or the API key is empty.
    """

    max_events: int = 1000
    """Most events one request may carry (more -> 413)."""
    max_body_bytes: int = 1 << 20
    """Largest request body in bytes (larger -> 413, before parsing)."""
    max_k: int = 1000
    """Largest ``k`` (larger -> 422)."""
    max_candidates: int = 10_000
    """Most ``candidates`` (and most ``exclude`` ids) one request may carry (more -> 422)."""
    api_key: str | None = None
    """When set, every endpoint but ``/healthz`` and the docs needs it in the ``X-API-Key`` header."""
    backend: str = "torch"
    """Scoring backend (``torch`` or ``onnx``) used when the app loads a bundle path; reported by the metadata."""
    max_batch: int = 32
    """Concurrent requests scored together in one forward pass (:class:`~intentrec.serve.predictor.MicroBatcher`);
    1 scores each request on its own."""

    def __post_init__(self) -> None:
        for name in ("max_events", "max_body_bytes", "max_k", "max_candidates", "max_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ServiceSettings.{name} must be a positive integer, got {value!r}")
        if self.api_key is not None and not self.api_key:
            raise ConfigError("ServiceSettings.api_key must not be empty (use None to disable the key check)")
        if self.backend not in ("torch", "onnx"):
            raise ConfigError(f"ServiceSettings.backend must be 'torch' or 'onnx', got {self.backend!r}")

    def __repr__(self) -> str:
        key = None if self.api_key is None else "***"
        return (f"ServiceSettings(max_events={self.max_events}, max_body_bytes={self.max_body_bytes}, "
                f"max_k={self.max_k}, max_candidates={self.max_candidates}, api_key={key}, backend={self.backend!r}, "
                f"max_batch={self.max_batch})")


# ----------------------------------------------------------------------------------------------------------
# Request and response bodies


def _coerce_id(value: Any) -> Any:
    """Integer ids (``{"item_id": 1}``) are accepted as their decimal string; anything else is validated as str.

    A string with a lone surrogate (``"\\ud800"`` in JSON) is refused: no catalogue id has one, and an unknown id
    is echoed in the response (``ignored_items``), which could not be encoded as UTF-8 (it used to be a 500).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the id is not valid Unicode (it has a lone surrogate)") from None
    return value


def _finite_float(value: int | float, what: str) -> float:
    """``float(value)``, refusing NaN, infinities and integers too large for a float (ValueError -> 422).

    ``float(10**400)`` raises OverflowError, which pydantic does not turn into a validation error (it was a 500).
    """
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{what} is too large for a float64 number") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {number}")
    return number


ItemId = Annotated[
    str,
    BeforeValidator(_coerce_id),
    Field(min_length=1, max_length=_MAX_ID_CHARS),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "A raw item id."}),
]
"""A raw item id: a string, or an integer taken as its decimal string."""

_Scalar = StrictStr | StrictInt | StrictFloat
AttributeValue = _Scalar | list[_Scalar] | None
"""An interaction attribute: a label, a list of labels, a number, or null (no value)."""


def _to_epoch_seconds(value: float | str) -> float:
    """Epoch seconds of a number or an ISO 8601 time (trailing ``Z`` allowed; naive = UTC)."""
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
        except (ValueError, OverflowError):
            raise ValueError(
                f"{value!r} is neither seconds since the epoch nor an ISO 8601 time (e.g. 2024-05-01T20:15:00Z)"
            ) from None
    return _finite_float(value, "the timestamp (seconds since the epoch)")


class EventIn(BaseModel):
    """One event of the user's history."""

    model_config = ConfigDict(extra="forbid")

    item_id: ItemId
    """The item's raw id, as in the training data (unknown ids are ignored and reported)."""
    timestamp: StrictFloat | StrictInt | StrictStr | None = Field(
        None, description="Seconds since the epoch or an ISO 8601 time (naive = UTC). Required for timed models."
    )
    action: StrictStr | None = Field(None, max_length=_MAX_ID_CHARS, description="Interaction type (e.g. 'play').")
    # finiteness is checked by _finite_duration: pydantic's allow_inf_nan=False raises OverflowError (a 500) on
    # an integer too large for a float
    duration: StrictFloat | StrictInt | None = Field(None, description="Interaction duration (a finite number).")
    attributes: dict[StrictStr, AttributeValue] = Field(
        default_factory=dict, description="More interaction columns by name (a label, a list of labels or a number)."
    )

    @field_validator("timestamp")
    @classmethod
    def _epoch(cls, value: float | int | str | None) -> float | None:
        return None if value is None else _to_epoch_seconds(value)

    @field_validator("duration")
    @classmethod
    def _finite_duration(cls, value: float | int | None) -> float | int | None:
        return None if value is None else _finite_float(value, "duration")

    @field_validator("attributes")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, v in value.items():
            for x in v if isinstance(v, list) else [v]:
                if isinstance(x, int | float) and not isinstance(x, bool):
                    _finite_float(x, f"attribute {key!r}")
        return value

    @model_validator(mode="after")
    def _no_duplicate_fields(self) -> Self:
        for name in ("action", "duration"):
            if getattr(self, name) is not None and name in self.attributes:
                raise ValueError(f"{name!r} is given both as a field and in 'attributes'; give it once")
        return self

    def to_live(self) -> LiveEvent:
        """The :class:`LiveEvent` the predictor reads (``action``/``duration`` join the attributes)."""
        attributes: dict[str, Any] = dict(self.attributes)
        if self.action is not None:
            attributes["action"] = self.action
        if self.duration is not None:
            attributes["duration"] = float(self.duration)
        ts = None if self.timestamp is None else float(self.timestamp)
        return LiveEvent(item_id=self.item_id, timestamp=ts, attributes=attributes)


class RecommendRequest(BaseModel):
    """Body of ``POST /v1/recommend`` (the app's own subclass adds its ``max_k``/``max_candidates`` limits)."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(
        default_factory=list,
        description="The user's events (any order for timed models, oldest first otherwise). Empty -> popularity.",
    )
    k: StrictInt = Field(10, ge=1, description="Number of items to return.")
    exclude_seen: StrictBool | None = Field(
        None, description="Drop items of the history from the ranking (null = the model's evaluation default)."
    )
    candidates: list[ItemId] | None = Field(None, description="Rank only these item ids (null = whole catalogue).")
    exclude: list[ItemId] = Field(default_factory=list, description="Item ids never to return.")
    user_id: StrictStr | None = Field(None, max_length=_MAX_ID_CHARS, description="Echoed in the response.")
    request_time: StrictFloat | StrictInt | StrictStr | None = Field(
        None, description="When the recommendations are asked for: seconds since the epoch or an ISO 8601 time "
        "(naive = UTC); null = now. Read by models trained with model.request_gap.",
    )

    @field_validator("request_time")
    @classmethod
    def _request_epoch(cls, value: float | int | str | None) -> float | None:
        return None if value is None else _to_epoch_seconds(value)

    def to_predict_request(self) -> PredictRequest:
        """The predictor's request."""
        return PredictRequest(
            events=[e.to_live() for e in self.events],
            k=self.k,
            exclude_seen=self.exclude_seen,
            candidates=None if self.candidates is None else list(self.candidates),
            exclude=list(self.exclude),
            user_id=self.user_id,
            request_time=None if self.request_time is None else float(self.request_time),
        )


def _limited_request_model(settings: ServiceSettings) -> type[RecommendRequest]:
    """:class:`RecommendRequest` with this service's ``max_k`` and ``max_candidates`` (shown in the OpenAPI)."""

    model: type[RecommendRequest] = create_model(
        "RecommendRequest",
        __base__=RecommendRequest,
        __module__=__name__,
        k=(StrictInt, Field(10, ge=1, le=settings.max_k, description="Number of items to return.")),
        candidates=(list[ItemId] | None, Field(
            None, max_length=settings.max_candidates, description="Rank only these item ids (null = whole catalogue)."
        )),
        exclude=(list[ItemId], Field(
            default_factory=list, max_length=settings.max_candidates, description="Item ids never to return."
        )),
    )
    return model


class ItemOut(BaseModel):
    """One ranked item."""

    item_id: str
    score: float = Field(description="The model's logit (the training event count for the popularity fallback).")
    name: str = Field(description="Display name (the title when the data has one, else the id).")
    boost: float | None = Field(
        default=None,
        description="The part of the score that the history adds through the repeat boosts (the title, or an episode "
                    "of the same show, was watched before); null for models without them.",
    )


class LabelOut(BaseModel):
    """One predicted label of an intent."""

    label: str
    probability: float


class IntentOut(BaseModel):
    """An intent head's prediction for the next event."""

    labels: list[LabelOut] = Field(description="Most likely labels, best first.")
    attention: float | None = Field(description="Attention weight of the head (null for models without fusion).")


class RecommendResponse(BaseModel):
    """Body of a ``POST /v1/recommend`` answer."""

    model_version: str
    items: list[ItemOut] = Field(description="Ranked items, best first (at most k).")
    intents: dict[str, IntentOut] = Field(description="intent -> its predicted labels (empty for the fallback).")
    attention: dict[str, float] = Field(description="intent -> attention weight of its head (the 'why').")
    fallback: Literal["popularity"] | None = Field(description="'popularity' when no event had a known item.")
    ignored_items: list[str] = Field(description="History item ids unknown to the model (dropped).")
    unknown_candidates: list[str] = Field(description="Candidate ids unknown to the model (not ranked).")
    events_used: int = Field(description="Events of the history the model read (at most max_len).")
    truncated: int = Field(description="Known events older than the model's input length (not read).")
    user_id: str | None


class IntentInfo(BaseModel):
    """An intent head and its label vocabulary."""

    multi_label: bool
    labels: list[str] = Field(description="Class names (including 'other', without padding).")


class LimitsInfo(BaseModel):
    """The service's request limits."""

    max_events: int
    max_body_bytes: int
    max_k: int
    max_candidates: int


class MetadataResponse(BaseModel):
    """Body of ``GET /v1/metadata``."""

    model_version: str
    architecture: str
    variant: str
    backend: str
    dataset: str
    timed: bool = Field(description="Whether events need timestamps (the model was trained on real times).")
    max_len: int = Field(description="Events of the history the model reads (the latest ones).")
    n_items: int = Field(description="Catalogue size (known, rankable items).")
    exclude_seen_default: bool = Field(description="What exclude_seen=null means for this model.")
    intents: dict[str, IntentInfo]
    event_fields: list[str] = Field(description="Event attribute fields the model reads from requests.")
    reads_request_time: bool = Field(description="Whether the model reads when it is asked (model.request_gap): "
                                                 "then request_time (default: now) moves the results.")
    example_items: list[str] = Field(description="A few valid item ids (the most popular).")
    limits: LimitsInfo


class ErrorResponse(BaseModel):
    """Body of an error answer other than a validation error (400, 401, 413, 422 from the model, 503)."""

    detail: str


class ValidationIssue(BaseModel):
    """One validation error (FastAPI's format): ``loc`` names the field."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class UnprocessableResponse(BaseModel):
    """Body of a 422 answer: FastAPI's list of validation errors, or the model's message for an invalid event."""

    detail: list[ValidationIssue] | str


class InternalErrorResponse(BaseModel):
    """Body of a 500 answer: a generic message and the id under which the service log has the details."""

    detail: str
    error_id: str


class HealthResponse(BaseModel):
    """Body of ``GET /healthz``."""

    status: str
    model_version: str


# ----------------------------------------------------------------------------------------------------------
# Mapping predictions and metadata


def _prediction_to_response(pred: Prediction, model_version: str) -> RecommendResponse:
    """The JSON body of one prediction."""
    return RecommendResponse(
        model_version=model_version,
        items=[
            ItemOut(item_id=i, score=s, name=n, boost=None if pred.item_boosts is None else pred.item_boosts[j])
            for j, ((i, s), n) in enumerate(zip(pred.items, pred.item_names, strict=True))
        ],
        intents={
            name: IntentOut(
                labels=[LabelOut(label=lab, probability=p) for lab, p in labels],
                attention=pred.attention.get(name),
            )
            for name, labels in pred.intents.items()
        },
        attention=dict(pred.attention),
        fallback="popularity" if pred.fallback == "popularity" else None,
        ignored_items=list(pred.ignored_items),
        unknown_candidates=list(pred.unknown_candidates),
        events_used=pred.events_used,
        truncated=pred.truncated,
        user_id=pred.user_id,
    )


def _event_fields(predictor: Predictor) -> list[str]:
    """Request attribute names the model reads (interaction-level inputs), in rule order."""
    b = predictor.bundle
    inputs = {a.name for a in b.spec.inputs}
    fields: list[str] = []
    for rule in b.live.rules:
        if rule.name not in inputs or rule.field is None:
            continue
        if rule.source == "event" or rule.source == "repeat" or (
            rule.source == "recency" and rule.name not in b.live.item_release
        ):
            fields.append(rule.field)
    fields += [r.name for r in b.live.numeric if r.source == "event"]
    return list(dict.fromkeys(fields))


def _backend_name(predictor: Predictor, configured: str) -> str:
    if isinstance(predictor.scorer, TorchScorer):
        return "torch"
    return "onnx" if "onnx" in type(predictor.scorer).__name__.lower() else configured


def _metadata(predictor: Predictor, settings: ServiceSettings) -> MetadataResponse:
    b = predictor.bundle
    popularity = np.asarray(b.live.popularity)[2:]  # (I - 2,) training counts of the known items
    top = np.argsort(-popularity, kind="stable")[:_N_EXAMPLE_ITEMS] + 2
    intents = {}
    for name in predictor.head_names:
        multi = next((a.multi_valued for a in b.spec.attributes if a.name == name), False)
        intents[name] = IntentInfo(multi_label=multi, labels=list(b.label_vocabs[name].labels[1:]))
    return MetadataResponse(
        model_version=b.model_version,
        architecture=b.cfg.model.architecture,
        variant=b.cfg.model.variant,
        backend=_backend_name(predictor, settings.backend),
        dataset=b.spec.dataset,
        timed=b.spec.timed,
        max_len=predictor.max_len,
        n_items=len(b.item_vocab) - 2,
        exclude_seen_default=bool(predictor.exclude_seen_default),
        intents=intents,
        event_fields=_event_fields(predictor),
        reads_request_time=bool(b.cfg.model.request_gap),
        example_items=[b.item_vocab.decode(int(i)) for i in top],
        limits=LimitsInfo(
            max_events=settings.max_events,
            max_body_bytes=settings.max_body_bytes,
            max_k=settings.max_k,
            max_candidates=settings.max_candidates,
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# API key and body size limit (ASGI middleware: both answer before the body is parsed)


async def _reject(send: ASGISend, code: int, message: str) -> None:
    """Answer ``code`` with ``{"detail": message}`` and close the connection (the body may be left unread)."""
    body = json.dumps({"detail": message}).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": code,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})


_KEY_MISSING = f"missing or invalid API key: send it in the {API_KEY_HEADER} header"


class _ApiKeyMiddleware:
    """Refuses requests without the API key (401) before anything reads or parses their body.

    The route dependency alone is not enough: FastAPI parses a JSON body before it solves the dependencies, so
    malformed JSON from a client without the key got a 422 (with the parser's details) instead of 401. Paths in
    ``public`` (the health check and the docs) need no key; every other path does, unknown ones included.
    """

    def __init__(self, app: ASGIApp, expected_key: bytes, public: frozenset[str]) -> None:
        self.app = app
        self.expected_key = expected_key
        self.public = public

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http" or scope.get("path") in self.public:
            await self.app(scope, receive, send)
            return
        header = API_KEY_HEADER.lower().encode("latin-1")
        given = next((v for k, v in scope.get("headers", ()) if k.lower() == header), b"")
        # the raw header bytes, compared in constant time (an empty or absent key never matches)
        if not hmac.compare_digest(given, self.expected_key):
            await _reject(send, status.HTTP_401_UNAUTHORIZED, _KEY_MISSING)
            return
        await self.app(scope, receive, send)


class _BodyLimitMiddleware:
    """Rejects HTTP bodies over ``max_bytes`` with 413 before the application reads them.

    A declared ``Content-Length`` over the limit is refused at once; otherwise the body is received here (at most
    ``max_bytes`` of it, so a chunked or lying client cannot exceed it either) and replayed to the application.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> str:
        return (f"request body too large: {size} bytes; the limit is {self.max_bytes} bytes (max_body_bytes). "
                "Send fewer or shorter events.")

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
        if declared:
            try:
                length = int(declared[0])
            except ValueError:
                await _reject(send, status.HTTP_400_BAD_REQUEST, "invalid Content-Length header")
                return
            if length > self.max_bytes:
                await _reject(send, status.HTTP_413_CONTENT_TOO_LARGE, self._too_large(str(length)))
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the client is gone, nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _reject(send, status.HTTP_413_CONTENT_TOO_LARGE, self._too_large(f"more than {self.max_bytes}"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> ASGIMessage:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)


# ----------------------------------------------------------------------------------------------------------
# The application


def _error_id() -> str:
    return uuid.uuid4().hex[:12]


def _json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` (already through ``jsonable_encoder``) made encodable as strict JSON in UTF-8, and bounded.

    Non-finite floats (``NaN`` is valid Python JSON input) become their names, lone surrogates are
    backslash-escaped; strings, lists and nesting are cut at :data:`_MAX_ECHO_CHARS`, :data:`_MAX_ECHO_ITEMS`
    and :data:`_MAX_ECHO_DEPTH` (the cut part becomes ``"..."``), so an error answer stays small.
    """
    if isinstance(value, str):
        text = value if len(value) <= _MAX_ECHO_CHARS else value[:_MAX_ECHO_CHARS] + "..."
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list | tuple):
        if depth >= _MAX_ECHO_DEPTH:
            return "..."
        if isinstance(value, dict):
            kept = dict(list(value.items())[:_MAX_ECHO_ITEMS])
            out = {_json_safe(str(k)): _json_safe(v, depth + 1) for k, v in kept.items()}
            return out if len(value) <= _MAX_ECHO_ITEMS else {**out, "...": "..."}
        items = [_json_safe(v, depth + 1) for v in list(value)[:_MAX_ECHO_ITEMS]]
        return items if len(value) <= _MAX_ECHO_ITEMS else [*items, "..."]
    return value


def _validation_error(err: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body, made JSON-safe and bounded (:func:`_json_safe` on each error, the first
    :data:`_MAX_ECHO_ITEMS` errors): FastAPI's default handler fails (a 500) when the echoed input holds a NaN or a
    lone surrogate, which Python's JSON parser accepts but a JSON response cannot carry."""
    errors = list(err.errors())[:_MAX_ECHO_ITEMS]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                        content={"detail": [_json_safe(jsonable_encoder(e)) for e in errors]})


def _internal_error(err: BaseException, where: str) -> JSONResponse:
    """Log an unexpected failure (with its traceback) and answer 500 without any detail of it."""
    ref = _error_id()
    logger.error("unexpected error in %s (error id %s)", where, ref, exc_info=err)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={"detail": "internal server error; the service log has the details", "error_id": ref},
    )


def create_app(predictor_or_bundle_path: Predictor | str | os.PathLike[str], *,
               settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI application of the recommendation service.

    Args:
        predictor_or_bundle_path: a ready :class:`Predictor` (used as is), or a bundle directory, loaded once at
            start-up (the app's lifespan) with the ``settings.backend`` scorer.
        settings: limits and options (default :class:`ServiceSettings`).

    Returns:
        The application (serve it with any ASGI server, or :func:`run_server`). With a bundle path, requests are
        answered only once the lifespan has started (``with TestClient(app)`` in tests); before that they get 503.
    """
    cfg = settings or ServiceSettings()
    given = predictor_or_bundle_path if isinstance(predictor_or_bundle_path, Predictor) else None
    bundle_path = None if given is not None else Path(predictor_or_bundle_path)  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = app.state.predictor is None and bundle_path is not None
        if loaded:
            logger.info("loading bundle %s (backend %s)", bundle_path, cfg.backend)
            app.state.predictor = await run_in_threadpool(Predictor.from_path, bundle_path, backend=cfg.backend)
            logger.info("serving model %s", app.state.predictor.bundle.model_version)
        try:
            yield
        finally:
            batcher: MicroBatcher | None = app.state.batcher
            if batcher is not None:
                app.state.batcher = None
                await run_in_threadpool(batcher.close)
            if loaded:
                app.state.predictor = None  # release the model; a restart of the lifespan loads it again

    app = FastAPI(
        title="IntentRec recommendation service",
        version=__version__,
        description=(
            "Intent-aware sequential recommendations (IntentRec). Send a user's recent events to "
            "`POST /v1/recommend` to get the next items, the predicted intents of the next event and the "
            "attention of each intent head. `GET /v1/metadata` describes the model and lists valid item ids."
        ),
        lifespan=lifespan,
    )
    app.state.predictor = given
    app.state.settings = cfg
    app.state.batcher = None
    batcher_lock = threading.Lock()

    def score(predictor: Predictor, req: PredictRequest) -> Prediction:
        """One request, through the app's micro-batcher (created on first use for the loaded predictor)."""
        if cfg.max_batch == 1:
            return predictor.predict_many([req])[0]
        with batcher_lock:
            batcher: MicroBatcher | None = app.state.batcher
            if batcher is None or batcher.predictor is not predictor:
                if batcher is not None:
                    batcher.close()
                batcher = app.state.batcher = MicroBatcher(predictor, max_batch=cfg.max_batch)
        return batcher.submit(req)
    app.add_middleware(_BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)

    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The service's API key.")
    expected_key = None if cfg.api_key is None else cfg.api_key.encode("utf-8")

    if expected_key is not None:  # added last, so it runs first: no body is read or parsed without the key
        public = frozenset(u for u in ("/healthz", app.openapi_url, app.docs_url, app.redoc_url,
                                       app.swagger_ui_oauth2_redirect_url) if u)
        app.add_middleware(_ApiKeyMiddleware, expected_key=expected_key, public=public)

    def require_key(key: Annotated[str | None, Depends(key_header)]) -> None:
        """The route-level check (declares the security scheme in the OpenAPI; the middleware checked first)."""
        if expected_key is None:
            return
        # headers arrive latin-1 decoded: compare the raw bytes (compare_digest on str rejects non-ASCII)
        given_key = b"" if key is None else key.encode("latin-1", errors="replace")
        if key is None or not hmac.compare_digest(given_key, expected_key):
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=_KEY_MISSING)

    # without a key, no route depends on it, so the OpenAPI does not declare a security scheme it does not enforce
    auth = [] if expected_key is None else [Depends(require_key)]
    unauthorized: dict[int | str, dict[str, Any]] = (
        {} if expected_key is None else {401: {"model": ErrorResponse, "description": "Missing or invalid API key."}}
    )

    def get_predictor(request: Request) -> Predictor:
        predictor: Predictor | None = request.app.state.predictor
        if predictor is None:
            raise HTTPException(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, detail="the model is not loaded yet")
        return predictor

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        return _internal_error(err, f"{request.method} {request.url.path}")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return _validation_error(err)

    Body = _limited_request_model(cfg)

    @app.get("/healthz", response_model=HealthResponse, tags=["service"], summary="Liveness check")
    def healthz(predictor: Annotated[Predictor, Depends(get_predictor)]) -> HealthResponse:
        """``ok`` and the model version once the model is loaded (never needs the API key)."""
        return HealthResponse(status="ok", model_version=predictor.bundle.model_version)

    @app.get("/v1/metadata", response_model=MetadataResponse, tags=["model"], summary="Describe the model",
             dependencies=auth, responses={**unauthorized})
    def metadata(predictor: Annotated[Predictor, Depends(get_predictor)]) -> MetadataResponse:
        """Model version, architecture, whether timestamps are needed, intents and labels, valid item ids."""
        return _metadata(predictor, cfg)

    @app.post(
        "/v1/recommend",
        response_model=RecommendResponse,
        tags=["model"],
        summary="Recommend the next items",
        dependencies=auth,
        responses={
            400: {"model": ErrorResponse, "description": "The body is not JSON, or an invalid Content-Length."},
            **unauthorized,
            413: {"model": ErrorResponse, "description": "Body or event list over the service's limits."},
            422: {"model": UnprocessableResponse,
                  "description": "Invalid body (FastAPI's validation format) or an event invalid for this model."},
            500: {"model": InternalErrorResponse, "description": "Unexpected error (details in the service log)."},
        },
    )
    def recommend(body: Body, predictor: Annotated[Predictor, Depends(get_predictor)]) -> Any:  # type: ignore[valid-type]
        """Rank items for a user's recent events and predict the intents of their next event.

        Runs in the server's thread pool (a plain ``def``), so inference never blocks the event loop.
        """
        req: RecommendRequest = body
        if len(req.events) > cfg.max_events:
            raise HTTPException(
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                detail=(f"too many events: {len(req.events)}; the limit is {cfg.max_events} (max_events). "
                        f"Send the latest {cfg.max_events} events at most (the model reads {predictor.max_len})."),
            )
        try:
            pred = score(predictor, req.to_predict_request())
        except RequestError as err:
            raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=_json_safe(str(err))) from None
        except Exception as err:
            return _internal_error(err, "POST /v1/recommend")
        return _prediction_to_response(pred, predictor.bundle.model_version)

    return app


# ----------------------------------------------------------------------------------------------------------
# Serving


def app_from_env() -> FastAPI:
    """Application factory for multi-worker uvicorn (each worker builds its own app and loads the bundle).

    Reads the bundle directory from ``INTENTREC_SERVE_BUNDLE`` and the settings (JSON of
    :class:`ServiceSettings`' fields) from ``INTENTREC_SERVE_SETTINGS``, both set by :func:`run_server`.
    """
    bundle = os.environ.get(_ENV_BUNDLE)
    if not bundle:
        raise ConfigError(f"{_ENV_BUNDLE} is not set; start the service with `intentrec serve` or run_server()")
    doc = json.loads(os.environ.get(_ENV_SETTINGS, "{}"))
    return create_app(bundle, settings=ServiceSettings(**doc))


def run_server(
    bundle_dir: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    settings: ServiceSettings | None = None,
    backend: str = "torch",
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve a bundle over HTTP with uvicorn until interrupted (blocks).

    Args:
        bundle_dir: the bundle directory.
        host: interface to bind; the default serves this machine only (use ``0.0.0.0`` deliberately, and then
            set an API key).
        port: TCP port.
        settings: limits and the API key (default :class:`ServiceSettings`); ``backend`` overrides its backend.
        backend: scoring backend, ``torch`` or ``onnx``.
        workers: uvicorn worker processes (each loads the model; settings travel to them in environment
            variables, the API key included).
        log_level: uvicorn's log level.

    Raises:
        ConfigError: an invalid backend, workers < 1, or a missing bundle (before the server starts).
    """
    import uvicorn  # imported on demand: no import-time cost for library users

    cfg = dataclasses.replace(settings or ServiceSettings(), backend=backend)
    root = Path(bundle_dir)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory; pass a bundle written by `intentrec export`")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if host not in ("127.0.0.1", "localhost", "::1") and cfg.api_key is None:
        logger.warning("serving on %s without an API key: anyone who can reach the port can query the model", host)
    if workers == 1:
        uvicorn.run(create_app(root, settings=cfg), host=host, port=port, log_level=log_level)
        return
    os.environ[_ENV_BUNDLE] = str(root.resolve())
    os.environ[_ENV_SETTINGS] = json.dumps(dataclasses.asdict(cfg))
    uvicorn.run("intentrec.serve.http:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level)
