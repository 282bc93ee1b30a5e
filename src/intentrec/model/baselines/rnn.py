"""The LSTM and GRU baselines with intent heads (PAPER §6.3): item ids in, next item and next intents out.

Data flow::

    item_idx (left-padded) ──right-align──► (B, n), real events from column 0
    ──E_i (I, item_emb_dim)──► dropout ──► GRU / LSTM (n_layers, hidden D) ──► left-align ──► LayerNorm
    ──► item_hidden (B, n, D)
    logits_i = FC_i(item_hidden), PAD class masked                             (B, n, d_i)
    score_items(item_hidden[positions]) = FC_item (tied or linear)             (P, I)

Left padding. A recurrent cell fed padding first would carry a padding-dependent state into the first real
event (the biases move the state even for zero inputs). So each row is rotated so that its real events start at
column 0 (a gather, no per-row loop); the RNN then reads the real events first and the padding last, and since
an RNN is causal, its outputs at the real events do not depend on the trailing padding. The outputs are rotated
back to the batch's left-aligned columns. This gives exactly what ``pack_padded_sequence`` gives at the real
events, without the host-side lengths and the packed format (which ``torch.export`` does not trace); the cost is
running the cell over the padding too.

As in PAPER §6.3 the RNNs see item ids only (no metadata, no time) and "multiple intent prediction heads" are
added to the encoder (simple multi-task learning, no fusion). RNN weights keep PyTorch's default initialisation
(uniform ±1/sqrt(D)); embeddings and linear layers get the initialiser of ``model.init`` (:func:`~intentrec.model.layers.weight_initializer`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from intentrec.config import ModelConfig
from intentrec.errors import ConfigError
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch

from ..intentrec import IntentHeads
from ..layers import weight_initializer
from ._common import BaselineModel, ItemScoreHead, baseline_heads

__all__ = ["RNNRec", "left_to_right_aligned"]


def left_to_right_aligned(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column maps between left-padded rows and the same rows with their real events moved to the front.

    With ``p_b`` padding columns in row ``b`` (``n - valid[b].sum()``; padding must be on the left):
    right-aligned slot ``t`` reads left column ``(t + p_b) mod n`` and left column ``c`` reads right-aligned
    slot ``(c - p_b) mod n``. Both maps are permutations, so ``x.gather(1, to_right).gather(1, to_left) == x``.

    Args:
        valid: (B, n) bool, True at real events, left-padded.

    Returns:
        ``(to_right, to_left)``: two (B, n) long index tensors for :meth:`torch.Tensor.gather` along dim 1.

    Example:
        >>> valid = torch.tensor([[False, False, True, True, True]])
        >>> to_right, to_left = left_to_right_aligned(valid)
        >>> torch.tensor([[0, 0, 7, 8, 9]]).gather(1, to_right).tolist()
        [[7, 8, 9, 0, 0]]
        >>> torch.tensor([[7, 8, 9, 0, 0]]).gather(1, to_left).tolist()
        [[0, 0, 7, 8, 9]]
    """
    n = valid.shape[1]
    pad = n - valid.sum(dim=1, keepdim=True)  # (B, 1) padding columns per row
    cols = torch.arange(n, device=valid.device)[None, :]  # (1, n)
    to_right = (cols + pad) % n  # (B, n)
    to_left = (cols - pad) % n  # (B, n)
    return to_right, to_left


class RNNRec(BaselineModel):
    """A GRU or LSTM over item ids with an item head and one linear head per intent (see the module docstring).

    Args:
        cfg: hyperparameters (``d_model`` = hidden size, ``n_layers``, ``dropout`` on the embeddings and between
            RNN layers, ``item_emb_dim``, ``item_head``, ``heads``); ``variant``, ``n_heads``, ``ffn_mult`` and
            ``max_len`` are ignored.
        spec: data-derived sizes (``n_items`` and the intents; attributes are never inputs).
        cell: ``"gru"`` or ``"lstm"``.

    Raises:
        ConfigError: ``cell`` is not ``gru`` or ``lstm``; ``cfg.heads`` names an attribute that is not an intent
            of ``spec``, or repeats a name.

    Attributes:
        cell: the recurrent cell type.
        head_names: intent heads in the order of ``intent_logits`` (empty when the data has no intents).
        item_embedding: the (I, item_emb_dim) item-id embedding (shared with a tied item head).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec, cell: Literal["gru", "lstm"] = "gru") -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ConfigError(f"RNNRec cell must be 'gru' or 'lstm', got {cell!r} (model.architecture gru or lstm)")
        self.cfg = cfg
        self.spec = spec
        self.cell = cell
        heads = baseline_heads(cfg, spec)
        self.head_names = tuple(a.name for a in heads)
        self.item_embedding = nn.Embedding(spec.n_items, cfg.item_emb_dim, padding_idx=0)
        self.input_dropout = nn.Dropout(cfg.dropout)
        rnn_type = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn: nn.GRU | nn.LSTM = rnn_type(
            cfg.item_emb_dim,
            cfg.d_model,
            num_layers=cfg.n_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0,  # between layers only
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        self.intent_heads = IntentHeads(cfg.d_model, heads) if heads else None
        self.item_output = ItemScoreHead(cfg, spec, cfg.d_model)
        self.apply(weight_initializer(cfg.init))

    def forward(self, batch: SequenceBatch) -> ModelOutput:
        """Run the model on a left-padded batch.

        Args:
            batch: inputs (``item_idx``, ``valid``); targets are not read.

        Returns:
            :class:`ModelOutput` with ``item_hidden`` (B, n, d_model), ``intent_logits`` name -> (B, n, d_i)
            with the PAD class masked, and None fusion outputs. Values at padding positions are finite and
            meaningless.
        """
        to_right, to_left = left_to_right_aligned(batch.valid)  # 2 × (B, n)
        items = batch.item_idx.gather(1, to_right)  # (B, n) real events first, padding (0) last
        x = self.input_dropout(self.item_embedding(items))  # (B, n, item_emb_dim)
        states, _ = self.rnn(x)  # (B, n, D) causal: real slots never see the trailing padding
        D = states.shape[-1]
        states = states.gather(1, to_left[..., None].expand(-1, -1, D))  # (B, n, D) back to left-padded columns
        hidden = self.norm(states)  # (B, n, D)
        return self.heads_output(hidden, valid=batch.valid, batch=batch)

