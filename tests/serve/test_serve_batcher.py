"""Micro-batching: concurrent requests are scored together, with the same answers as one by one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from intentrec.errors import ConfigError, RequestError
from intentrec.features.live import LiveEvent
from intentrec.serve.predictor import MicroBatcher, Predictor, PredictRequest


def _requests(pred: Predictor, n: int) -> list[PredictRequest]:
    ids = pred.bundle.item_vocab.ids
    rng = np.random.default_rng(0)
    return [PredictRequest([LiveEvent(ids[int(j)], 1.4e9 + 60.0 * t) for t, j in enumerate(rng.integers(0, 500, 1 + i % 9))],
                           k=5) for i in range(n)]


def test_concurrent_requests_are_batched_with_identical_answers(tiny_bundle: Path) -> None:
    pred = Predictor.from_path(tiny_bundle)
    requests = _requests(pred, 24)
    expected = [pred.predict_many([r])[0] for r in requests]
    gate = threading.Event()
    original = pred.predict_many

    def slow_first(reqs: list[PredictRequest]) -> list:  # type: ignore[type-arg]
        gate.wait(5)  # hold the first batch so the others queue up behind it
        return original(reqs)

    pred.predict_many = slow_first  # type: ignore[method-assign]
    batcher = MicroBatcher(pred, max_batch=8)
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(batcher.submit, r, 30) for r in requests]
        time.sleep(0.3)
        gate.set()
        got = [f.result(30) for f in futures]
    batcher.close()
    assert batcher.batches < len(requests)  # batched ...
    for a, b in zip(got, expected, strict=True):  # ... with the answers of one-by-one scoring
        assert [i for i, _ in a.items] == [i for i, _ in b.items]
        np.testing.assert_allclose([s for _, s in a.items], [s for _, s in b.items], atol=1e-4)


def test_a_bad_request_fails_alone(tiny_bundle: Path) -> None:
    pred = Predictor.from_path(tiny_bundle)
    good = _requests(pred, 6)
    bad = PredictRequest([LiveEvent(pred.bundle.item_vocab.ids[0], None)], k=5)  # timed model, no timestamp
    batcher = MicroBatcher(pred, max_batch=16)
    with ThreadPoolExecutor(7) as pool:
        futures = [pool.submit(batcher.submit, r, 30) for r in [*good[:3], bad, *good[3:]]]
        results = []
        for f in futures:
            try:
                results.append(f.result(30))
            except RequestError as err:
                results.append(err)
    batcher.close()
    assert isinstance(results[3], RequestError) and "timestamp" in str(results[3])
    assert all(len(r.items) == 5 for i, r in enumerate(results) if i != 3)  # type: ignore[union-attr]
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(good[0])
    with pytest.raises(ConfigError):
        MicroBatcher(pred, max_batch=0)
