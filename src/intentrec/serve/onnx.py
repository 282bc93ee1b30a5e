"""ONNX export of the scorer and the onnxruntime scoring backend (needs the ``serve`` extra).

What is exported is :class:`ScorerModule`: the model in eval mode plus the read-out that
:class:`~intentrec.serve.predictor.TorchScorer` does in PyTorch (the prediction after each row's last event), so
:class:`OnnxScorer` returns what ``TorchScorer`` returns for the same :class:`~intentrec.structs.SequenceBatch`
(to float32 rounding). :func:`onnx_bytes` writes it (``intentrec export --format onnx`` stores it in the bundle as
``model.onnx``); :meth:`OnnxScorer.from_bundle` reads it back (``Predictor.from_path(path, backend="onnx")``).

Graph inputs; ``B`` and ``n`` are dynamic, rows left-padded as :func:`~intentrec.features.collate.collate`
makes them::

    item_idx       (B, n)            int64    item indices, 0 = padding
    valid          (B, n)            bool     True at real events
    numeric        (B, n, F)         float32  numeric features (F fixed; F = 0 gives an empty last axis)
    time_hours     (B, n)            float32  hours since the row's first event (the event order when untimed)
    gap_bucket     (B, n)            int64    log-bucket of the gap to the previous event
    next_gap_bucket (B, n)           int64    log-bucket of the time to the request (``model.request_gap``)
    position       (B, n)            int64    position counted from the row's first real event
    window_start   (B, n)            int64    column of the short-term window start pos_k
    attribute_<j>  (B, n) | (B, n, L) int64   the j-th categorical input of ``spec.inputs`` (L fixed: the
                                              label width of that attribute at export)

Graph outputs, in this order::

    item_scores       (B, I)       float32  item logits after the last event (PAD and UNK very negative)
    item_boost        (B, I)       float32  the repeat boosts' share of item_scores  (models with a boost only)
    intent_probs_<j>  (B, d_j)     float32  softmax of the j-th intent head's logits (``head_names`` order)
    intent_attention  (B, M)       float32  attention weight of each intent head   (IntentRec V2/V3 only)
    intent_embedding  (B, d_proj)  float32  intent embedding Z                      (IntentRec V2/V3 only)

The model's metadata (``metadata_props``) records the head names, the attribute behind each ``attribute_<j>``,
whether the fusion and boost outputs are present and the architecture, so the file alone is enough to score with. Every
input is declared even when a model does not read it (SASRec reads only items and positions); the scorer feeds
exactly the inputs the graph declares.

Exporter: the TorchDynamo-based ``torch.onnx.export(..., dynamo=True)`` (the default of recent torch; it traces
with ``torch.export`` and translates with onnxscript's torchlib). It handles every architecture of
:func:`~intentrec.model.build_model` (IntentRec V0-V3, SASRec, BERT4Rec, Transformer, TransAct, GRU, LSTM) with
two translations added here (:func:`_translation_table`): ``aten.cummax`` (TransAct's running max-pool; torchlib
has none) and ``aten.remainder.Scalar`` with a symbolic divisor (the GRU/LSTM re-alignment ``% n``). The legacy
TorchScript exporter is not used: it is deprecated and cannot export TransAct (``unfold`` with a dynamic length).

Limitations:

* scoring only, eval mode: no training graph, no losses; BERT4Rec is exported in its eval form (the appended
  [MASK] slot), TransAct without its training-time random window mask;
* the label width L of each multi-valued attribute and the number F of numeric features are fixed at export;
* TransAct's exported running max is exact for sequences up to :data:`CUMMAX_MAX_LEN` events;
* weights are embedded in the file, so a model must serialize under protobuf's 2 GiB limit;
* export takes seconds (tracing and decomposition), and it redirects stdout while it runs (to silence the
  exporter); a model the exporter cannot translate raises :class:`~intentrec.errors.CheckpointError` naming the
  architecture and the failing operator.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from intentrec.config import ExperimentConfig, ModelConfig
from intentrec.errors import CheckpointError
from intentrec.features.collate import CollateSettings, Example, collate
from intentrec.model import score_position_parts
from intentrec.serve.bundle import ONNX_FILE, Bundle
from intentrec.serve.predictor import ScoreOutput
from intentrec.structs import DataSpec, SequenceBatch

__all__ = ["BASE_INPUTS", "CUMMAX_MAX_LEN", "ONNX_FILE", "OnnxScorer", "ScorerModule", "example_batch", "onnx_bytes"]

BASE_INPUTS: tuple[str, ...] = (
    "item_idx", "valid", "numeric", "time_hours", "gap_bucket", "next_gap_bucket", "position", "window_start",
)
"""Graph inputs every export declares first (then one ``attribute_<j>`` per categorical input attribute)."""

_META_HEADS = "intentrec.head_names"
_META_CATEGORICAL = "intentrec.categorical"
_META_FUSION = "intentrec.has_fusion"
_META_ARCH = "intentrec.architecture"
_META_BOOST = "intentrec.has_boost"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour codes (the exporter's messages contain some)."""

_EXAMPLE_LENGTHS = (7, 4, 2)
"""Lengths of the example histories the export traces with (B = 3, n = 7: distinct and >= 2, so neither axis is
specialised to a constant; one row is left-padded)."""


# ----------------------------------------------------------------------------------------------------------
# the exported module
# ----------------------------------------------------------------------------------------------------------


class ScorerModule(nn.Module):
    """A model as a function of flat tensors: the graph that is exported (see the module docstring).

    Args:
        model: a model with ``forward(batch) -> ModelOutput`` and ``score_items`` (kept in eval mode).
        head_names: the intent heads whose probabilities are returned, in output order.
        categorical_names: the categorical input attributes, in the order of the trailing forward arguments.
        has_fusion: whether the model returns intent attention and Z (IntentRec V2/V3); they are then the last
            two outputs.
        has_boost: whether the model has repeat boosts; their share of the scores is then the second output.
    """

    def __init__(
        self, model: nn.Module, head_names: Sequence[str], categorical_names: Sequence[str], has_fusion: bool,
        has_boost: bool = False,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.head_names = tuple(head_names)
        self.categorical_names = tuple(categorical_names)
        self.has_fusion = has_fusion
        self.has_boost = has_boost

    def forward(
        self,
        item_idx: torch.Tensor,
        valid: torch.Tensor,
        numeric: torch.Tensor,
        time_hours: torch.Tensor,
        gap_bucket: torch.Tensor,
        next_gap_bucket: torch.Tensor,
        position: torch.Tensor,
        window_start: torch.Tensor,
        *categorical: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Score the position after each row's last event.

        Args:
            item_idx, valid, numeric, time_hours, gap_bucket, next_gap_bucket, position, window_start: the fields of
                :class:`~intentrec.structs.SequenceBatch` of the same names, (B, n) or (B, n, F).
            categorical: one (B, n) or (B, n, L) long tensor per name of ``categorical_names``.

        Returns:
            ``(scores (B, I), [boost (B, I)], *probs (B, d_i) per head, [attention (B, M), embedding (B, d_proj)])``.
        """
        B = item_idx.shape[0]
        zeros_long = torch.zeros_like(item_idx)  # (B, n) the targets: never read by a model in eval mode
        batch = SequenceBatch(
            item_idx=item_idx,
            valid=valid,
            categorical=dict(zip(self.categorical_names, categorical, strict=True)),
            numeric=numeric,
            time_hours=time_hours,
            gap_bucket=gap_bucket,
            next_gap_bucket=next_gap_bucket,
            position=position,
            window_start=window_start,
            target_item=zeros_long,
            target_intents={},
            target_weight=torch.zeros_like(time_hours),
            user_row=torch.full((B,), -1, dtype=torch.long),
        )
        out = self.model(batch)
        rows = torch.arange(B, device=item_idx.device)  # (B,) left padding: the last column is the latest event
        head, boost = score_position_parts(self.model, out, batch, rows, -1)  # (B, I), (B, I) | None
        outputs = [(head if boost is None else head + boost).float()]  # [(B, I)]
        if self.has_boost:
            assert boost is not None  # has_boost checked at export
            outputs.append(boost.float())  # (B, I)
        for name in self.head_names:
            outputs.append(torch.softmax(out.intent_logits[name][:, -1].float(), dim=-1))  # (B, d_i)
        if self.has_fusion:
            assert out.intent_attention is not None and out.intent_embedding is not None  # has_fusion checked
            outputs.append(out.intent_attention[:, -1].float())  # (B, M)
            outputs.append(out.intent_embedding[:, -1].float())  # (B, d_proj)
        return tuple(outputs)


def _has_fusion(model: nn.Module, batch: SequenceBatch) -> tuple[bool, tuple[str, ...], bool]:
    """Whether the model returns fusion outputs, which heads it returns logits for, and whether it has repeat
    boosts (one eager pass)."""
    with torch.inference_mode():
        out = model(batch)
    heads = tuple(h for h in getattr(model, "head_names", ()) if h in out.intent_logits)
    has_boost = out.history_boost is not None or bool(out.attribute_boosts)
    return out.intent_attention is not None and out.intent_embedding is not None, heads, has_boost


def _model_config(cfg: ExperimentConfig | ModelConfig) -> ModelConfig:
    return cfg.model if isinstance(cfg, ExperimentConfig) else cfg


def example_batch(
    cfg: ExperimentConfig | ModelConfig,
    spec: DataSpec,
    label_widths: Mapping[str, int],
    *,
    lengths: Sequence[int] = _EXAMPLE_LENGTHS,
    seed: int = 0,
) -> SequenceBatch:
    """A realistic collated batch for ``spec``: random valid histories of ``lengths`` (left-padded).

    Items are drawn from ``[2, I)``, timestamps increase by minutes to weeks (the event order when untimed),
    labels lie in ``[1, n_classes)`` (multi-valued attributes: 1 to L labels, 0-padded), numeric values in [0, 1].

    Args:
        cfg: the experiment config or its model section (collate settings come from it).
        spec: the data spec; ``label_widths``: L of each multi-valued attribute.
        lengths: the history length of each row (B = ``len(lengths)``).
        seed: random seed.

    Returns:
        The batch, as :func:`~intentrec.features.collate.collate` builds it for serving.
    """
    rng = np.random.default_rng(seed)
    settings = CollateSettings.build(_model_config(cfg), spec, dict(label_widths))
    widths = dict(settings.attributes)
    examples = []
    for length in lengths:
        gaps = rng.exponential(rng.choice([120.0, 7200.0, 86400.0, 8 * 86400.0], size=length))  # (l,)
        times = 1.6e9 + np.cumsum(gaps) if spec.timed else np.arange(length, dtype=np.float64)  # (l,)
        categorical: dict[str, np.ndarray] = {}
        for a in spec.inputs:
            width = widths.get(a.name, 0)
            if width:
                codes = np.zeros((length, width), np.int64)  # (l, L)
                for e in range(length):
                    k = int(rng.integers(1, min(width, a.n_classes - 1) + 1))
                    codes[e, :k] = rng.choice(np.arange(1, a.n_classes), size=k, replace=False)
            else:
                codes = rng.integers(1, a.n_classes, size=length)  # (l,)
            categorical[a.name] = codes
        target_intents = {
            a.name: np.zeros((length, widths[a.name]) if widths.get(a.name) else (length,), np.int64)
            for a in spec.intents
        }
        examples.append(Example(
            item_idx=rng.integers(2, spec.n_items, size=length),  # (l,) never PAD or UNK
            timestamps=times.astype(np.float64),
            categorical=categorical,
            numeric=rng.uniform(0.0, 1.0, size=(length, len(spec.numeric))).astype(np.float32),  # (l, F)
            target_item=np.zeros(length, np.int64),
            target_intents=target_intents,
            target_weight=np.zeros(length, np.float32),
            next_time=np.append(times[1:], times[-1] + 600.0),  # the request 10 minutes after the last event
        ))
    return collate(examples, settings)


def _flat_inputs(batch: SequenceBatch, categorical_names: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """The forward arguments of :class:`ScorerModule` for ``batch``."""
    return (
        batch.item_idx, batch.valid, batch.numeric.float(), batch.time_hours.float(), batch.gap_bucket,
        batch.next_gap_bucket, batch.position, batch.window_start, *(batch.categorical[name] for name in categorical_names),
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress prints, warnings and INFO logs."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# ----------------------------------------------------------------------------------------------------------
# translations of the aten ops the exporter's library lacks (onnxscript functions, traced at export)
# ----------------------------------------------------------------------------------------------------------

CUMMAX_MAX_LEN = 2**16
"""The longest axis the exported ``cummax`` (TransAct's running max-pool) is exact for: it is a prefix-max scan of
log2(CUMMAX_MAX_LEN) doubling steps, unrolled in the graph."""


def _translation_table() -> dict[Any, Any]:
    """aten op -> onnxscript translation for the ops that the installed exporter cannot translate itself.

    * ``aten.cummax`` (TransAct's read-out) has no ONNX function: a Hillis-Steele prefix max along the axis
      (:data:`CUMMAX_MAX_LEN`), returning the values and, as torch does, the index of the latest maximum.
    * ``aten.remainder.Scalar`` with a symbolic divisor (``x % n`` with the dynamic sequence length, the GRU/LSTM
      re-alignment) fails in the library, which only accepts a constant divisor.
    """
    from onnxscript import opset18 as op  # imported on use: the serve extra

    def cummax(self: Any, dim: int) -> tuple[Any, Any]:
        rank = len(self.shape)
        dim = dim % rank
        zero = op.Constant(value_ints=[0])
        axes = op.Constant(value_ints=[dim])
        size = op.Shape(self, start=dim, end=dim + 1)  # (1,) length of the scanned axis
        steps = op.Range(op.Constant(value_int=0), op.Squeeze(size), op.Constant(value_int=1))  # (n,)
        ones = op.Constant(value_ints=[-1] + [1] * (rank - 1 - dim))
        index = op.Expand(op.Reshape(steps, ones), op.Shape(self))  # (..., n, ...) position along the axis
        value = self
        shift = 1
        while shift < CUMMAX_MAX_LEN:
            s = op.Constant(value_ints=[shift])
            head = op.Min(s, size)  # positions k < shift compare with themselves
            keep = op.Max(op.Sub(size, s), zero)  # positions k >= shift compare with k - shift
            earlier_value = op.Concat(
                op.Slice(value, zero, head, axes), op.Slice(value, zero, keep, axes), axis=dim
            )
            earlier_index = op.Concat(
                op.Slice(index, zero, head, axes), op.Slice(index, zero, keep, axes), axis=dim
            )
            take = op.Greater(earlier_value, value)  # ties keep the later index, as torch.cummax
            value = op.Where(take, earlier_value, value)
            index = op.Where(take, earlier_index, index)
            shift *= 2
        return value, index

    def remainder_scalar(self: Any, other: Any) -> Any:
        if isinstance(other, int):
            divisor = op.CastLike(op.Constant(value_int=other), self)
        elif isinstance(other, float):
            divisor = op.CastLike(op.Constant(value_float=other), self)
        else:  # a symbolic size (int64 scalar tensor)
            divisor = op.CastLike(other, self)
        if self.dtype.is_integer():
            return op.Mod(self, divisor)  # fmod=0: the sign of the divisor, as Python and torch
        return op.Sub(self, op.Mul(op.Floor(op.Div(self, divisor)), divisor))

    return {torch.ops.aten.cummax.default: cummax, torch.ops.aten.remainder.Scalar: remainder_scalar}


def onnx_bytes(
    model: nn.Module,
    cfg: ExperimentConfig | ModelConfig,
    spec: DataSpec,
    label_widths: Mapping[str, int],
    *,
    opset: int | None = None,
) -> bytes:
    """Export ``model`` as the scorer graph (see the module docstring) and return the serialized ONNX model.

    The model is exported in eval mode (its mode is restored afterwards); batch size and sequence length are
    dynamic axes. The example input that is traced is :func:`example_batch` (3 rows of lengths 7, 4 and 2).

    Args:
        model: a model built by :func:`~intentrec.model.build_model` for ``cfg.model`` and ``spec``.
        cfg: the experiment config it was trained with (or its model section).
        spec: its data spec; ``label_widths``: L of each multi-valued attribute.
        opset: ONNX opset version (None = the exporter's default, 20 with torch 2.13; the exporter needs >= 18).

    Returns:
        The ``ModelProto`` bytes (weights embedded).

    Raises:
        CheckpointError: the exporter cannot translate this architecture (the message names it and the cause).
    """
    was_training = model.training
    model.eval()
    arch = _architecture(cfg)
    categorical_names = tuple(a.name for a in spec.inputs)
    batch = example_batch(cfg, spec, label_widths)
    has_fusion, head_names, has_boost = _has_fusion(model, batch)
    module = ScorerModule(model, head_names, categorical_names, has_fusion, has_boost).eval()
    args = _flat_inputs(batch, categorical_names)
    input_names = [*BASE_INPUTS, *(f"attribute_{j}" for j in range(len(categorical_names)))]
    output_names = ["item_scores", *(["item_boost"] if has_boost else []),
                    *(f"intent_probs_{j}" for j in range(len(head_names)))]
    if has_fusion:
        output_names += ["intent_attention", "intent_embedding"]
    batch_dim = torch.export.Dim("batch", min=1)
    seq_dim = torch.export.Dim("seq", min=1)
    dynamic_shapes = [{0: batch_dim, 1: seq_dim} for _ in args]
    # the categorical tensors are the *varargs of forward: one nested entry (absent when there are none)
    k = len(BASE_INPUTS)
    shapes = (*dynamic_shapes[:k], tuple(dynamic_shapes[k:])) if categorical_names else tuple(dynamic_shapes)
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=shapes,
                opset_version=opset,
                custom_translation_table=_translation_table(),
                optimize=True,
                verbose=False,
            )
    except Exception as err:  # the exporter raises many types; report them all the same way
        raise CheckpointError(
            f"cannot export the {arch} model to ONNX: {_root_cause(err)}; serve it with the torch backend "
            "(or export without --format onnx)"
        ) from err
    finally:
        model.train(was_training)
    assert program is not None  # dynamo=True always returns the program
    proto = program.model_proto
    meta = {
        _META_HEADS: json.dumps(list(head_names)),
        _META_CATEGORICAL: json.dumps(list(categorical_names)),
        _META_FUSION: json.dumps(has_fusion),
        _META_ARCH: arch,
        _META_BOOST: json.dumps(has_boost),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def _root_cause(err: BaseException) -> str:
    """``Type: first line`` of the innermost exception of a chain (the exporter wraps the real cause twice)."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = _ANSI.sub("", str(err)).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


def _architecture(cfg: ExperimentConfig | ModelConfig) -> str:
    """A readable name of the model's architecture (``intentrec V3``, ``sasrec``, ...)."""
    mc = _model_config(cfg)
    return f"{mc.architecture} {mc.variant}" if mc.architecture == "intentrec" else mc.architecture


# ----------------------------------------------------------------------------------------------------------
# the onnxruntime backend
# ----------------------------------------------------------------------------------------------------------


class OnnxScorer:
    """An exported scorer graph run by onnxruntime (CPU): a drop-in replacement of ``TorchScorer``.

    Args:
        model: the ONNX model (bytes) or the path of a ``model.onnx``.
        head_names: intent heads in the order of the graph's intent outputs (None = read from the model metadata).
        categorical_names: the attribute of each ``attribute_<j>`` input (None = read from the model metadata).
        has_attention: whether the last two outputs are attention and Z (None = read from the model metadata).
        threads: intra-op threads of the session (None = onnxruntime's default).

    Thread safety: :meth:`__call__` keeps no state, and ``InferenceSession.run`` may be called from several threads.

    Raises:
        CheckpointError: the model cannot be loaded or does not have the scorer's inputs and outputs.
    """

    def __init__(
        self,
        model: bytes | str | os.PathLike[str],
        *,
        head_names: Sequence[str] | None = None,
        categorical_names: Sequence[str] | None = None,
        has_attention: bool | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort  # the serve extra, imported on use

        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        if threads is not None:
            options.intra_op_num_threads = threads
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            where = "the given bytes" if isinstance(model, bytes) else str(model)
            raise CheckpointError(f"cannot load the ONNX model from {where}: {err}; export it again") from err
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.head_names = tuple(json.loads(meta[_META_HEADS]) if head_names is None else head_names)
            self.categorical_names = tuple(
                json.loads(meta[_META_CATEGORICAL]) if categorical_names is None else categorical_names
            )
            self.has_attention = bool(json.loads(meta[_META_FUSION]) if has_attention is None else has_attention)
        except (KeyError, json.JSONDecodeError) as err:
            raise CheckpointError(
                f"the ONNX model lacks intentrec metadata ({err}); pass head_names, categorical_names and "
                "has_attention, or export it with intentrec"
            ) from None
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.has_boost = bool(json.loads(meta.get(_META_BOOST, "false")))  # absent in exports before the boosts
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        expected = 1 + self.has_boost + len(self.head_names) + (2 if self.has_attention else 0)
        if len(self.output_names) != expected:
            raise CheckpointError(
                f"the ONNX model has {len(self.output_names)} outputs, expected {expected} (scores, "
                f"{'boost, ' if self.has_boost else ''}{len(self.head_names)} intent heads"
                f"{', attention, embedding' if self.has_attention else ''})"
            )
        known = {*BASE_INPUTS, *(f"attribute_{j}" for j in range(len(self.categorical_names)))}
        unknown = [name for name in self.input_names if name not in known]
        if unknown:
            raise CheckpointError(f"the ONNX model has unexpected inputs {unknown}; export it with intentrec")

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, threads: int | None = None) -> OnnxScorer:
        """The scorer of a bundle's ``model.onnx``.

        Raises:
            CheckpointError: the bundle has no ``model.onnx``, or it does not match the bundle's model.
        """
        path = Path(bundle.path) / ONNX_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{bundle.path} has no {ONNX_FILE}: export the bundle with `intentrec export --format onnx` "
                "to use the onnx backend (or use the torch backend)"
            )
        scorer = cls(path, threads=threads)
        if scorer.head_names != bundle.head_names:
            raise CheckpointError(
                f"{path} predicts intents {list(scorer.head_names)} but the bundle's model has "
                f"{list(bundle.head_names)}; export the bundle again"
            )
        return scorer

    def feeds(self, batch: SequenceBatch) -> dict[str, np.ndarray]:
        """The numpy inputs of the session for ``batch`` (only those the graph declares)."""
        arrays: dict[str, Any] = {
            "item_idx": batch.item_idx,
            "valid": batch.valid,
            "numeric": batch.numeric.float(),
            "time_hours": batch.time_hours.float(),
            "gap_bucket": batch.gap_bucket,
            "next_gap_bucket": batch.next_gap_bucket,
            "position": batch.position,
            "window_start": batch.window_start,
        }
        for j, name in enumerate(self.categorical_names):
            arrays[f"attribute_{j}"] = batch.categorical[name]
        return {name: np.ascontiguousarray(arrays[name].numpy()) for name in self.input_names}

    def __call__(self, batch: SequenceBatch) -> ScoreOutput:
        """Score the position after each row's last event (see :class:`~intentrec.serve.predictor.Scorer`)."""
        outputs = self.session.run(None, self.feeds(batch))
        scores = np.asarray(outputs[0], dtype=np.float32)  # (B, I)
        boosts = np.asarray(outputs[1], dtype=np.float32) if self.has_boost else None  # (B, I)
        first = 1 + self.has_boost
        probs = {
            name: np.asarray(p, dtype=np.float32)  # (B, d_i)
            for name, p in zip(self.head_names, outputs[first : first + len(self.head_names)], strict=True)
        }
        attention = embedding = None
        if self.has_attention:
            attention = np.asarray(outputs[-2], dtype=np.float32)  # (B, M)
            embedding = np.asarray(outputs[-1], dtype=np.float32)  # (B, d_proj)
        return ScoreOutput(scores, probs, attention, embedding, boosts)
