"""ONNX export and the onnxruntime scorer: parity with TorchScorer, the bundle path, thread safety and errors.

Exports take seconds, so each model is exported once: the trained tiny run through ``workflows.export(...,
onnx=True)`` (which calls :func:`onnx_bytes` on the model ``load_run`` returns), every other architecture once in
its parametrised test.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from intentrec import workflows
from intentrec.errors import CheckpointError
from intentrec.features.live import LiveEvent
from intentrec.model import build_model, set_item_attribute_codes
from intentrec.serve.bundle import load_bundle
from intentrec.serve.onnx import ONNX_FILE, OnnxScorer, onnx_bytes
from intentrec.serve.predictor import Prediction, Predictor, PredictRequest, ScoreOutput, TorchScorer
from intentrec.structs import ModelOutput, SequenceBatch
from intentrec.testing import random_batch, random_spec, tiny_model_config

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOL = 1e-4
"""Largest absolute difference allowed between the onnxruntime and the PyTorch outputs."""

SHAPES: tuple[tuple[int, int, int | list[int] | None], ...] = (
    (1, 1, 0),  # one event
    (1, 7, 0),
    (5, 7, None),  # random left padding per row
    (1, 20, [13]),  # a padded single row
    (5, 20, [0, 19, 7, 3, 12]),
)
"""(B, n, left padding) of the parity batches."""


def max_diffs(got: ScoreOutput, want: ScoreOutput) -> dict[str, float]:
    """Largest absolute difference of every output (after checking that both have the same outputs and shapes)."""
    assert got.intent_probs.keys() == want.intent_probs.keys()
    assert (got.attention is None) == (want.attention is None)
    assert (got.embedding is None) == (want.embedding is None)
    assert (got.boosts is None) == (want.boosts is None)
    pairs = {"scores": (got.scores, want.scores)}
    if want.boosts is not None:
        pairs["boosts"] = (got.boosts, want.boosts)  # type: ignore[assignment]
    pairs.update({f"probs/{k}": (got.intent_probs[k], want.intent_probs[k]) for k in want.intent_probs})
    if want.attention is not None:
        pairs["attention"] = (got.attention, want.attention)  # type: ignore[assignment]
        pairs["embedding"] = (got.embedding, want.embedding)  # type: ignore[assignment]
    out = {}
    for name, (a, b) in pairs.items():
        assert a.dtype == np.float32 and a.shape == b.shape, name
        out[name] = float(np.abs(a.astype(np.float64) - b).max())
    return out


def parity(onnx_scorer: OnnxScorer, torch_scorer: TorchScorer, batches: list[SequenceBatch]) -> float:
    """The largest difference of any output over ``batches`` (asserted <= TOL per output)."""
    worst = 0.0
    for batch in batches:
        diffs = max_diffs(onnx_scorer(batch), torch_scorer(batch))
        assert max(diffs.values()) <= TOL, (tuple(batch.item_idx.shape), diffs)
        worst = max(worst, *diffs.values())
    return worst


# ----------------------------------------------------------------------------------------------------------
# the trained tiny run (IntentRec V3, timed MovieLens, multi-label genre + recency)
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_bundle(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of the tiny run, with ``model.onnx``."""
    return workflows.export(tiny_run, tmp_path_factory.mktemp("onnx-bundle") / "bundle", onnx=True)


def test_export_writes_model_onnx_with_metadata(onnx_bundle: Path) -> None:
    bundle = load_bundle(onnx_bundle)
    assert (onnx_bundle / ONNX_FILE).is_file()
    assert ONNX_FILE in bundle.manifest["files"]  # checksummed like the other files
    scorer = OnnxScorer.from_bundle(bundle, threads=1)
    assert scorer.head_names == bundle.head_names == ("genre", "recency")
    assert scorer.categorical_names == tuple(a.name for a in bundle.spec.inputs)
    assert scorer.has_attention
    assert scorer.output_names == ("item_scores", "intent_probs_0", "intent_probs_1", "intent_attention",
                                   "intent_embedding")


def test_tiny_run_parity(tiny_run: Path, onnx_bundle: Path) -> None:
    art = workflows.load_run(tiny_run)
    bundle = load_bundle(onnx_bundle)
    onnx_scorer = OnnxScorer.from_bundle(bundle, threads=1)
    torch_scorer = TorchScorer(art.model)
    width = bundle.label_widths["genre"]  # the only multi-valued attribute: L is fixed in the graph
    batches = [
        random_batch(art.data.spec, B, n, seed=10 * B + n, pad_left=pad,
                     horizon_seconds=art.cfg.model.horizon_seconds, max_labels=width)
        for B, n, pad in SHAPES
    ]
    parity(onnx_scorer, torch_scorer, batches)


def _history(ids: tuple[str, ...], length: int, seed: int) -> list[LiveEvent]:
    rng = np.random.default_rng(seed)
    items = rng.choice(len(ids), size=length, replace=False)
    times = 1.5e9 + np.cumsum(rng.exponential(86400.0, size=length))  # increasing seconds
    return [LiveEvent(ids[int(i)], float(t)) for i, t in zip(items, times, strict=True)]


def assert_same_prediction(got: Prediction, want: Prediction) -> None:
    assert [i for i, _ in got.items] == [i for i, _ in want.items]
    np.testing.assert_allclose([s for _, s in got.items], [s for _, s in want.items], rtol=0, atol=TOL)
    assert got.intent_distributions.keys() == want.intent_distributions.keys()
    for name, p in want.intent_distributions.items():
        np.testing.assert_allclose(got.intent_distributions[name], p, rtol=0, atol=TOL)
    assert got.attention.keys() == want.attention.keys()
    np.testing.assert_allclose(list(got.attention.values()), list(want.attention.values()), rtol=0, atol=TOL)
    assert got.intent_embedding is not None and want.intent_embedding is not None
    np.testing.assert_allclose(got.intent_embedding, want.intent_embedding, rtol=0, atol=TOL)


def test_predictor_onnx_backend_matches_torch(onnx_bundle: Path) -> None:
    torch_predictor = Predictor.from_path(onnx_bundle)
    onnx_predictor = Predictor.from_path(onnx_bundle, backend="onnx")
    assert isinstance(onnx_predictor.scorer, OnnxScorer)
    ids = torch_predictor.bundle.item_vocab.ids
    histories = [_history(ids, length, seed) for seed, length in enumerate((1, 4, 13, 30))]  # 30 > max_len
    for events in histories:
        assert_same_prediction(onnx_predictor.predict(events, k=10), torch_predictor.predict(events, k=10))
    # batched: the histories are left-padded together
    requests = [PredictRequest(events=events, k=10) for events in histories]
    for got, want in zip(onnx_predictor.predict_many(requests), torch_predictor.predict_many(requests), strict=True):
        assert_same_prediction(got, want)


def test_scorer_is_thread_safe(onnx_bundle: Path) -> None:
    bundle = load_bundle(onnx_bundle)
    scorer = OnnxScorer.from_bundle(bundle)
    batches = [
        random_batch(bundle.spec, 4, n, seed=n, max_labels=bundle.label_widths["genre"]) for n in (3, 9, 15, 20)
    ] * 3
    expected = [scorer(b).scores for b in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda b: scorer(b).scores, batches))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_missing_model_onnx_is_a_clear_error(tiny_bundle: Path) -> None:
    assert not (tiny_bundle / ONNX_FILE).exists()
    with pytest.raises(CheckpointError, match="--format onnx"):
        OnnxScorer.from_bundle(load_bundle(tiny_bundle))
    with pytest.raises(CheckpointError, match="--format onnx"):
        Predictor.from_path(tiny_bundle, backend="onnx")


def test_unreadable_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot load the ONNX model"):
        OnnxScorer(b"not an onnx model")
    missing = tmp_path / "model.onnx"
    with pytest.raises(CheckpointError, match="cannot load the ONNX model"):
        OnnxScorer(missing)


# ----------------------------------------------------------------------------------------------------------
# every architecture on a small random spec
# ----------------------------------------------------------------------------------------------------------

ARCHITECTURES = [
    pytest.param("intentrec", {"variant": "V0"}, {"n_numeric": 0, "intents": (), "inputs": ()},
                 id="V0-items-only"),
    pytest.param("intentrec", {"variant": "V1"}, {"timed": False}, id="V1-untimed"),
    pytest.param("intentrec", {"variant": "V3", "item_head": "linear", "n_layers": 2}, {"timed": False},
                 id="V3-untimed-linear"),
    pytest.param("intentrec", {"variant": "V3", "item_head": "dot", "item_emb_dim": 32,
                               "output_attributes": ("genre", "action")}, {}, id="V3-dot-output-attributes"),
    pytest.param("intentrec", {"variant": "V3", "repeat_boost": True}, {}, id="V3-repeat-boost"),
    pytest.param("intentrec", {"variant": "V3", "item_head": "dot", "item_emb_dim": 32, "identity_init": True,
                               "input_block_norm": True, "short_stop_gradient": True}, {}, id="V3-input-block-norm"),
    pytest.param("intentrec", {"variant": "V3", "repeat_boost": True, "repeat_boost_attributes": ("country",)}, {},
                 id="V3-item-and-attribute-repeat-boost"),
    pytest.param("intentrec", {"variant": "V3", "request_gap": True, "repeat_boost": True}, {},
                 id="V3-request-gap"),
    pytest.param("sasrec", {}, {}, id="sasrec"),
    pytest.param("sasrec", {"request_gap": True}, {}, id="sasrec-request-gap"),
    pytest.param("gru", {"repeat_boost_attributes": ("country",)}, {}, id="gru-attribute-repeat-boost"),
    pytest.param("sasrec", {"repeat_boost": True, "item_head": "dot", "item_emb_dim": 32}, {},
                 id="sasrec-dot-repeat-boost"),
    pytest.param("bert4rec", {}, {}, id="bert4rec"),
    pytest.param("transact", {"transact_k": 3, "n_layers": 2}, {}, id="transact"),
    pytest.param("gru", {"n_layers": 2}, {}, id="gru"),
]


@pytest.mark.parametrize(("architecture", "model_overrides", "spec_options"), ARCHITECTURES)
def test_architecture_parity(architecture: str, model_overrides: dict, spec_options: dict) -> None:
    spec = random_spec(**spec_options)
    cfg = tiny_model_config(architecture=architecture, **model_overrides)
    torch.manual_seed(0)
    model = build_model(cfg, spec)
    gen = torch.Generator().manual_seed(0)  # each item's labels, for the output attributes / attribute boost
    single = set(cfg.repeat_boost_attributes)  # one label per item there
    set_item_attribute_codes(model, {
        a.name: torch.randint(0, a.n_classes, (spec.n_items,) if a.name in single else (spec.n_items, 3),
                              generator=gen).numpy()
        for a in spec.attributes
    })
    with torch.no_grad():  # larger weights than the 0.02 init, so that differences would show
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.eval()
    scorer = OnnxScorer(onnx_bytes(model, cfg, spec, {"genre": 3}), threads=1)
    assert not model.training
    batches = [
        random_batch(spec, B, n, seed=B + n, pad_left=pad, horizon_seconds=cfg.horizon_seconds, max_labels=3)
        for B, n, pad in SHAPES
    ]
    batches.append(random_batch(spec, 3, 40, seed=1, max_labels=3))  # longer than anything traced
    parity(scorer, TorchScorer(model), batches)


class _Cummin(nn.Module):
    """A model with an operator the exporter cannot translate (``cummin``)."""

    head_names: tuple[str, ...] = ()

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items, 4)

    def forward(self, batch: SequenceBatch) -> ModelOutput:
        hidden = self.embedding(batch.item_idx).cummin(dim=1).values  # (B, n, 4)
        return ModelOutput(item_hidden=hidden, intent_logits={}, intent_attention=None, intent_embedding=None)

    def score_items(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.embedding.weight.T  # (..., I)


def test_untranslatable_model_is_a_clear_error() -> None:
    spec = random_spec(n_numeric=0, intents=(), inputs=())
    cfg = tiny_model_config(architecture="sasrec")
    with pytest.raises(CheckpointError, match=r"cannot export the sasrec model to ONNX: .*cummin"):
        onnx_bytes(_Cummin(spec.n_items), cfg, spec, {})
