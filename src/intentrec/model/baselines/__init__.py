"""Baselines of PAPER §6.3 in the same framework as IntentRec: item ids in, ``ModelOutput`` out.

Every baseline has IntentRec's interface — ``forward(batch) -> ModelOutput`` and ``score_items(hidden)`` with
PAD and UNK masked — so :class:`~intentrec.model.losses.IntentRecLoss`, the trainer and the evaluator work
unchanged. Select one with ``model.architecture`` (see :func:`intentrec.model.build_model`).

* :class:`SASRec` — causal Transformer, item head only, full softmax CE (``sasrec``).
* :class:`BERT4Rec` — bidirectional Transformer trained on masked items (Cloze), item head only (``bert4rec``).
* :class:`RNNRec` — GRU or LSTM with an item head and one linear head per intent (``gru``, ``lstm``).
* :class:`TransformerRec` — causal Transformer with an item head and intent heads (``transformer``).
* :class:`TransAct` — TransAct over item id ⊕ metadata, first-K + max-pool read-out, item + intent heads
  (``transact``).
"""

from __future__ import annotations

from .bert4rec import BERT4Rec
from .rnn import RNNRec
from .sasrec import SASRec
from .transact import TransAct
from .transformer import TransformerRec

__all__ = ["BERT4Rec", "RNNRec", "SASRec", "TransAct", "TransformerRec"]
