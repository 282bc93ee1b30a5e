"""Model stage: pure ``nn.Module`` s that map a :class:`~intentrec.structs.SequenceBatch` to a
:class:`~intentrec.structs.ModelOutput` (PAPER §3), plus the losses (PAPER §4).

Public API:

* :func:`build_model` — the model for a config and a data spec.
* :class:`IntentRec` — V0-V3; ``score_items`` turns ``item_hidden`` rows into catalogue logits.
* :class:`IntentRecLoss`, :class:`LossOutput` — L = L_item + λ Σ L_intent with named parts.
"""

from __future__ import annotations

from torch import nn

from intentrec.config import ModelConfig
from intentrec.structs import DataSpec

from .intentrec import IntentRec
from .losses import IntentRecLoss, LossOutput, multi_positive_cross_entropy, weighted_cross_entropy

__all__ = [
    "IntentRec",
    "IntentRecLoss",
    "LossOutput",
    "build_model",
    "multi_positive_cross_entropy",
    "weighted_cross_entropy",
]


def build_model(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    """Build the model selected by ``cfg.variant`` (V0-V3: :class:`IntentRec`).

    Args:
        cfg: model hyperparameters.
        spec: data-derived sizes (catalogue size, attributes, whether the data is timed).

    Returns:
        An initialised module with ``forward(batch) -> ModelOutput`` and ``score_items(hidden) -> logits``.

    Raises:
        ConfigError: ``cfg.heads`` names unknown intents, or a variant with heads has no intents.
    """
    return IntentRec(cfg, spec)
