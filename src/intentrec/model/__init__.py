"""Model stage: pure ``nn.Module`` s that map a :class:`~intentrec.structs.SequenceBatch` to a
:class:`~intentrec.structs.ModelOutput` (PAPER §3), plus the losses (PAPER §4).

Public API:

* :func:`build_model` — the model for a config and a data spec.
* :func:`set_item_attribute_codes` — give a model built with ``output_attributes`` each item's labels.
* :func:`score_positions` — catalogue scores at chosen positions (the item head plus the repeat boosts, if any);
  :func:`score_position_parts` keeps the two parts apart (the serving explanation).
* :class:`IntentRec` — V0-V3; ``score_items`` turns ``item_hidden`` rows into catalogue logits.
* :class:`IntentRecLoss`, :class:`LossOutput` — L = L_item + λ Σ L_intent with named parts.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from intentrec.config import ModelConfig
from intentrec.errors import ConfigError
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch

from .baselines import BERT4Rec, RNNRec, SASRec, TransAct, TransformerRec
from .intentrec import IntentRec
from .layers import AttributeRepeatBoost, ItemAttributeTable
from .losses import (
    HistoryBoosts,
    IntentRecLoss,
    LossOutput,
    SampledSoftmax,
    multi_positive_cross_entropy,
    sampling_log_q,
    weighted_cross_entropy,
)

__all__ = [
    "IntentRec",
    "IntentRecLoss",
    "LossOutput",
    "SampledSoftmax",
    "build_model",
    "multi_positive_cross_entropy",
    "sampling_log_q",
    "score_position_parts",
    "score_positions",
    "set_item_attribute_codes",
    "weighted_cross_entropy",
]


def build_model(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    """Build the model selected by ``cfg.architecture`` (and, for IntentRec, ``cfg.variant``).

    * ``intentrec`` — :class:`IntentRec` V0-V3 by ``cfg.variant``;
    * ``sasrec`` — :class:`~intentrec.model.baselines.SASRec` (item head only);
    * ``bert4rec`` — :class:`~intentrec.model.baselines.BERT4Rec` (masked-item training, item head only);
    * ``gru`` / ``lstm`` — :class:`~intentrec.model.baselines.RNNRec` with that cell, plus intent heads;
    * ``transformer`` — :class:`~intentrec.model.baselines.TransformerRec`, plus intent heads;
    * ``transact`` — :class:`~intentrec.model.baselines.TransAct` (item id ⊕ metadata), plus intent heads.

    Args:
        cfg: model hyperparameters.
        spec: data-derived sizes (catalogue size, attributes, whether the data is timed).

    Returns:
        An initialised module with ``forward(batch) -> ModelOutput`` and ``score_items(hidden) -> logits``.

    Raises:
        ConfigError: unknown ``cfg.architecture``; ``cfg.heads`` names unknown intents; or an IntentRec variant
            with heads has no intents.
    """
    arch = cfg.architecture
    if arch == "intentrec":
        return IntentRec(cfg, spec)
    if arch == "sasrec":
        return SASRec(cfg, spec)
    if arch == "bert4rec":
        return BERT4Rec(cfg, spec)
    if arch == "gru" or arch == "lstm":
        return RNNRec(cfg, spec, cell=arch)
    if arch == "transformer":
        return TransformerRec(cfg, spec)
    if arch == "transact":
        return TransAct(cfg, spec)
    raise ConfigError(
        f"unknown model.architecture {arch!r}: use one of 'intentrec', 'sasrec', 'bert4rec', 'gru', 'lstm', "
        "'transformer', 'transact'"
    )


def set_item_attribute_codes(model: nn.Module, codes: dict[str, np.ndarray]) -> int:
    """Store each item's labels in every :class:`~intentrec.model.layers.ItemAttributeTable` of ``model``.

    Call it once after :func:`build_model` when ``cfg.output_attributes`` or ``cfg.repeat_boost_attributes`` is
    set (loading saved weights restores the labels, so a trained model needs no call); the attribute repeat boost
    (:class:`~intentrec.model.layers.AttributeRepeatBoost`) gets its labels here too.

    Args:
        model: a model from :func:`build_model`.
        codes: attribute name -> (I,) or (I, L) labels of every item
            (:func:`intentrec.data.live.item_attribute_codes`).

    Returns:
        The number of tables set (0 when the model has neither ``output_attributes`` nor
        ``repeat_boost_attributes``).

    Raises:
        ValueError: ``codes`` lacks an attribute of a table or has the wrong shape.
    """
    tables = [m for m in model.modules() if isinstance(m, (ItemAttributeTable, AttributeRepeatBoost))]
    for table in tables:
        table.set_codes({name: torch.from_numpy(np.asarray(value, dtype=np.int64)) for name, value in codes.items()})
    return len(tables)


def score_positions(
    model: nn.Module, output: ModelOutput, batch: SequenceBatch, rows: torch.Tensor, cols: torch.Tensor | int
) -> torch.Tensor:
    """Catalogue scores at positions ``(rows[p], cols[p])`` of a batch: ``model.score_items`` of the hidden rows
    there, plus the repeat boost (``cfg.repeat_boost``) of the items in each row's input and the attribute repeat
    boost (``cfg.repeat_boost_attributes``) of every item sharing an attribute label with one of them.

    Every ranking path (evaluation, serving, ONNX, analysis) scores through this function, so a model with the
    boost is ranked the way it was trained.

    Args:
        model: the model that produced ``output``.
        output: its output on ``batch``.
        batch: the input batch (its ``item_idx`` are the items the boost can add to).
        rows: (P,) long batch rows.
        cols: (P,) long positions, or one position for every row (e.g. ``-1``: the latest event of left-padded
            rows).

    Returns:
        (P, I) scores; columns 0 (PAD) and 1 (UNK) masked.
    """
    head, boost = score_position_parts(model, output, batch, rows, cols)
    return head if boost is None else head + boost  # (P, I)


def score_position_parts(
    model: nn.Module, output: ModelOutput, batch: SequenceBatch, rows: torch.Tensor, cols: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`score_positions` in two parts: the item head's scores and the repeat boosts' share.

    Returns:
        ``(head (P, I), boost (P, I) | None)``: ``head`` as ``model.score_items`` gives it (PAD/UNK masked);
        ``boost`` the summed repeat boosts of every item (0 for items the history does not reach, PAD and UNK),
        None when the model has no boost. Their sum is :func:`score_positions`.
    """
    head = model.score_items(output.item_hidden[rows, cols])  # (P, I)
    if output.history_boost is None and not output.attribute_boosts:
        return head, None
    history = HistoryBoosts(
        items=batch.item_idx[rows],  # (P, n)
        item_boost=None if output.history_boost is None else output.history_boost[rows, cols],  # (P, n)
        attributes=tuple((a.boost[rows, cols], a.codes, a.n_classes) for a in output.attribute_boosts),
    )
    return head, history.add(torch.zeros_like(head))  # (P, I), (P, I): the same sum the loss adds
