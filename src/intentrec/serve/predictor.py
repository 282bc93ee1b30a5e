"""Inference on a bundle: raw events in, ranked items + predicted intents + the intent attention out.

:class:`Predictor` is what the HTTP service, batch prediction and the latency benchmark share. The scoring backend
is pluggable: :class:`TorchScorer` (the PyTorch model) or ``intentrec.serve.onnx.OnnxScorer`` (onnxruntime);
both map a :class:`~intentrec.structs.SequenceBatch` to a :class:`ScoreOutput`.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from intentrec.errors import ConfigError, RequestError
from intentrec.features.collate import CollateSettings, Example, collate
from intentrec.features.live import EncodedRequest, LiveEvent, encode_live_events
from intentrec.model import score_position_parts
from intentrec.serve.bundle import Bundle, load_bundle
from intentrec.structs import SequenceBatch

__all__ = [
    "MicroBatcher",
    "PredictRequest",
    "Prediction",
    "Predictor",
    "ScoreOutput",
    "Scorer",
    "TorchScorer",
]


@dataclass(frozen=True)
class ScoreOutput:
    """What a scorer returns for a batch of B histories (the prediction after each history's last event)."""

    scores: np.ndarray
    """(B, I) float32 item logits (PAD and UNK columns very negative)."""
    intent_probs: dict[str, np.ndarray]
    """intent -> (B, d_i) float32 probabilities of the next event's label (column 0, PAD, is ~0)."""
    attention: np.ndarray | None
    """(B, M) float32 attention weight of each intent head (PAPER Eq. 2), None for models without fusion."""
    embedding: np.ndarray | None
    """(B, d_proj) float32 intent embedding Z, None for models without fusion."""
    boosts: np.ndarray | None = None
    """(B, I) float32 share of ``scores`` that the repeat boosts add (``model.repeat_boost``,
    ``model.repeat_boost_attributes``), None for models without them."""


class Scorer(Protocol):
    """A scoring backend."""

    def __call__(self, batch: SequenceBatch) -> ScoreOutput:
        """Score the position after each row's last event."""
        ...


class TorchScorer:
    """The PyTorch model as a scoring backend (CPU, inference mode)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self.head_names = tuple(getattr(model, "head_names", ()))

    @torch.inference_mode()
    def __call__(self, batch: SequenceBatch) -> ScoreOutput:
        """Score a batch (see :class:`Scorer`)."""
        out = self.model(batch)
        rows = torch.arange(batch.batch_size, device=batch.item_idx.device)  # (B,) left padding: last column = latest
        head, boost = score_position_parts(self.model, out, batch, rows, -1)  # (B, I), (B, I) | None
        scores = (head if boost is None else head + boost).float()  # (B, I)
        probs = {name: torch.softmax(out.intent_logits[name][:, -1].float(), dim=-1).numpy()  # (B, d_i)
                 for name in self.head_names if name in out.intent_logits}
        attention = None if out.intent_attention is None else out.intent_attention[:, -1].float().numpy()  # (B, M)
        embedding = None if out.intent_embedding is None else out.intent_embedding[:, -1].float().numpy()  # (B, d)
        boosts = None if boost is None else boost.float().numpy()  # (B, I)
        return ScoreOutput(scores.numpy(), probs, attention, embedding, boosts)


@dataclass(frozen=True)
class PredictRequest:
    """One history to score, with ranking options."""

    events: Sequence[LiveEvent]
    """The user's events (see :class:`~intentrec.features.live.LiveEvent`)."""
    k: int = 10
    """Number of items to return."""
    exclude_seen: bool | None = None
    """Drop items of the history from the ranking (None = the model's evaluation default)."""
    candidates: Sequence[str] | None = None
    """Rank only these item ids (None = the whole catalogue)."""
    exclude: Sequence[str] = ()
    """Item ids never to return."""
    user_id: str | None = None
    """Carried through to the prediction."""
    request_time: float | None = None
    """When the recommendations are asked for, in seconds since the epoch (None = now); read by models trained
    with ``model.request_gap`` (a visit minutes after the last event continues a session, one days later starts
    a new one)."""


@dataclass(frozen=True)
class Prediction:
    """Ranked items and predicted intents for one history."""

    items: list[tuple[str, float]]
    """(item id, score) best first; the score is the model's logit (popularity count for the fallback)."""
    item_names: list[str]
    """Display names of ``items`` (titles when the data has them, else the ids)."""
    intents: dict[str, list[tuple[str, float]]]
    """intent -> its most likely labels with probabilities, best first (empty for the fallback)."""
    attention: dict[str, float]
    """intent -> attention weight of its head (the "why"; empty for models without fusion and the fallback)."""
    intent_embedding: list[float] | None
    """The intent embedding Z at the last event (None without fusion or for the fallback)."""
    fallback: str | None
    """``"popularity"`` when no event had a known item and the ranking is the training popularity; else None."""
    ignored_items: tuple[str, ...]
    """History item ids unknown to the model (dropped)."""
    unknown_candidates: tuple[str, ...]
    """Candidate ids unknown to the model (cannot be ranked)."""
    events_used: int
    """Events of the history the model read (at most ``max_len``)."""
    truncated: int
    """Known events older than the model's input length, not read."""
    user_id: str | None = None
    """The request's user id, if any."""
    intent_distributions: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """intent -> (d_i,) full probability vector over the label vocabulary (batch prediction keeps it)."""
    item_boosts: list[float] | None = None
    """The share of each item's score that the repeat boosts add (the history's part: "you watched this title /
    an episode of this show"), aligned with ``items``; None for models without them and for the fallback."""


class Predictor:
    """Ranks items and predicts intents for raw event histories with a loaded bundle.

    Args:
        bundle: a loaded bundle (or use :meth:`from_path`).
        scorer: the scoring backend (default: :class:`TorchScorer` over ``bundle.model``).
        intent_top: labels returned per intent head.
        batch_size: histories scored together by :meth:`predict_many`.

    Thread safety: scoring holds no state between calls, so concurrent calls are safe.
    """

    def __init__(
        self, bundle: Bundle, *, scorer: Scorer | None = None, intent_top: int = 3, batch_size: int = 256
    ) -> None:
        self.bundle = bundle
        self.scorer: Scorer = scorer or TorchScorer(bundle.model)
        self.intent_top = intent_top
        self.batch_size = batch_size
        self.head_names = bundle.head_names
        self.max_len = bundle.cfg.model.max_len
        settings = CollateSettings.build(bundle.cfg.model, bundle.spec, bundle.label_widths)
        self._collate: Callable[[list[Example]], SequenceBatch] = functools.partial(collate, settings=settings)
        ev = bundle.cfg.eval.exclude_seen
        self.exclude_seen_default = bundle.spec.exclude_seen_default if ev is None else ev
        self._popularity = bundle.live.popularity.astype(np.float32)  # (I,)
        self._popularity[:2] = -np.inf

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], *, backend: str = "torch", **kwargs: object) -> Predictor:
        """Load a bundle and build a predictor with the ``torch`` or ``onnx`` backend."""
        bundle = load_bundle(path)
        scorer: Scorer | None = None
        if backend == "onnx":
            from intentrec.serve.onnx import OnnxScorer  # optional dependency, imported on demand

            scorer = OnnxScorer.from_bundle(bundle)
        elif backend != "torch":
            raise ConfigError(f"unknown backend {backend!r}: use 'torch' or 'onnx'")
        return cls(bundle, scorer=scorer, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------------------------------

    def encode(self, events: Sequence[LiveEvent], request_time: float | None = None) -> EncodedRequest:
        """Encode raw events as model input (see :func:`~intentrec.features.live.encode_live_events`)."""
        b = self.bundle
        return encode_live_events(events, b.live, b.spec, b.item_vocab, b.label_vocabs, self.max_len, request_time)

    def predict(self, events: Sequence[LiveEvent], **options: object) -> Prediction:
        """Rank items for one history; ``options`` are the fields of :class:`PredictRequest`."""
        return self.predict_many([PredictRequest(events=events, **options)])[0]  # type: ignore[arg-type]

    def predict_many(self, requests: Sequence[PredictRequest]) -> list[Prediction]:
        """Rank items for many histories, scoring them in length-sorted batches.

        Raises:
            RequestError: an invalid request (the message names the event and field); nothing is scored then.
        """
        for r in requests:
            if r.k < 1:
                raise RequestError(f"k must be >= 1, got {r.k}")
        encoded = [self.encode(r.events, r.request_time) for r in requests]
        order = sorted((i for i, e in enumerate(encoded) if e.example is not None),
                       key=lambda i: encoded[i].example.item_idx.shape[0])  # type: ignore[union-attr]
        results: list[Prediction | None] = [None] * len(requests)
        for s in range(0, len(order), self.batch_size):
            chunk = order[s : s + self.batch_size]
            out = self.scorer(self._collate([encoded[i].example for i in chunk]))  # type: ignore[misc]
            for row, i in enumerate(chunk):
                results[i] = self._finish(requests[i], encoded[i], out, row)
        for i, e in enumerate(encoded):
            if e.example is None:
                results[i] = self._finish(requests[i], e, None, 0)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------------------------------------------

    def _finish(self, req: PredictRequest, enc: EncodedRequest, out: ScoreOutput | None, row: int) -> Prediction:
        b = self.bundle
        vocab = b.item_vocab
        scores = self._popularity.copy() if out is None else out.scores[row].astype(np.float32, copy=True)  # (I,)
        scores[:2] = -np.inf
        unknown_candidates: tuple[str, ...] = ()
        if req.candidates is not None:
            idx = [vocab.encode(c) for c in req.candidates]
            unknown_candidates = tuple(dict.fromkeys(c for c, i in zip(req.candidates, idx, strict=True) if i < 2))
            keep = np.zeros_like(scores, dtype=bool)
            keep[[i for i in idx if i >= 2]] = True
            scores[~keep] = -np.inf
        exclude_seen = self.exclude_seen_default if req.exclude_seen is None else req.exclude_seen
        if exclude_seen and enc.item_idx.size:
            scores[enc.item_idx] = -np.inf
        if req.exclude:
            scores[[i for i in (vocab.encode(x) for x in req.exclude) if i >= 2]] = -np.inf
        n_finite = int(np.isfinite(scores).sum())
        k = min(req.k, n_finite)
        if k:
            top = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
            top = top[np.argsort(-scores[top], kind="stable")][:k]
        else:
            top = np.zeros(0, dtype=np.int64)
        intents: dict[str, list[tuple[str, float]]] = {}
        distributions: dict[str, np.ndarray] = {}
        attention: dict[str, float] = {}
        embedding: list[float] | None = None
        if out is not None:
            for name, probs in out.intent_probs.items():
                p = probs[row]  # (d_i,)
                labels = b.label_vocabs[name]
                best = np.argsort(-p[1:], kind="stable")[: self.intent_top] + 1  # never the PAD class
                intents[name] = [(labels.decode(int(j)), float(p[j])) for j in best]
                distributions[name] = p
            if out.attention is not None:
                attention = {n: float(w) for n, w in zip(self.head_names, out.attention[row].tolist(), strict=True)}
            if out.embedding is not None:
                embedding = out.embedding[row].tolist()
        return Prediction(
            items=[(vocab.decode(int(i)), float(scores[i])) for i in top],
            item_names=[b.item_name(int(i)) for i in top],
            intents=intents,
            attention=attention,
            intent_embedding=embedding,
            fallback="popularity" if out is None else None,
            ignored_items=enc.ignored_items,
            unknown_candidates=unknown_candidates,
            events_used=0 if enc.example is None else int(enc.example.item_idx.shape[0]),
            truncated=enc.truncated,
            user_id=req.user_id,
            intent_distributions=distributions,
            item_boosts=None if out is None or out.boosts is None else [float(out.boosts[row, i]) for i in top],
        )


class MicroBatcher:
    """Dynamic batching for concurrent callers: requests that arrive while a batch is being scored are scored
    together in the next :meth:`Predictor.predict_many` call.

    One worker thread takes the first waiting request and every other request already queued (up to
    ``max_batch``), without waiting for more, so a lone request pays no extra latency while a burst of C
    concurrent requests costs about one batched forward pass instead of C competing ones (which on a CPU also
    fight over the same cores). A bad request in a batch fails alone: the batch is then scored one by one.

    Args:
        predictor: the predictor to call.
        max_batch: most requests scored together.
    """

    def __init__(self, predictor: Predictor, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
        self.predictor = predictor
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[PredictRequest, Future[Prediction]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0
        """Forward passes run so far (for monitoring and tests)."""

    def submit(self, request: PredictRequest, timeout: float | None = None) -> Prediction:
        """Score one request (blocks until its batch is done).

        Raises:
            RequestError: the request is invalid.
            RuntimeError: the batcher is closed.
        """
        future: Future[Prediction] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="intentrec-batcher", daemon=True)
                self._thread.start()
            self._queue.put((request, future))
        return future.result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after the queued requests are served."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._score(batch)
            if stop:
                return

    def _score(self, batch: list[tuple[PredictRequest, Future[Prediction]]]) -> None:
        live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
        if not live:
            return
        self.batches += 1
        try:
            results = self.predictor.predict_many([r for r, _ in live])
        except RequestError:
            for r, f in live:  # one bad request must not fail the others
                try:
                    f.set_result(self.predictor.predict_many([r])[0])
                except Exception as err:  # handed to its caller
                    f.set_exception(err)
            return
        except Exception as err:  # handed to every caller of the batch
            for _, f in live:
                f.set_exception(err)
            return
        for (_, f), result in zip(live, results, strict=True):
            f.set_result(result)
