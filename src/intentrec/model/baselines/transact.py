"""TransAct (Xia et al., KDD 2023) adapted to per-position next-item + intent prediction (PAPER §8, §10 #18).

Data flow::

    item_idx ⊕ input attributes (action type, ...) ⊕ numeric ──FeatureEmbedder──► (B, n, d_full)
    ──Linear → D──► dropout ──► x (B, n, D)                       # no positional encoding (PAPER §8.3)
    x ──CausalEncoder (pre-LN; causal mask, plus the random time-window mask in training)──► h (B, n, D)
    read-out at k: [h_k, h_{k-1}, …, h_{k-K+1}] ⊕ Linear(max_{j<=k} h_j)  (B, n, (K+1)·D)    # PAPER §8.7
    ──MLP (Linear → 256, GELU, dropout, Linear → D)──► item_hidden (B, n, D)
    logits_i = FC_i(item_hidden), PAD class masked                             (B, n, d_i)
    score_items(item_hidden[positions]) = FC_item (tied or linear)             (P, I)

The original scores one candidate per request from the sequence of the user's latest actions (newest first). Our
framework predicts at every position k of a left-padded row, so each position k plays the request: the rows it
sees are events ``j <= k`` (the causal mask), and the read-out's "first K rows" are the K most recent of them,
newest first (``h_k, h_{k-1}, …``). Per PAPER §8.11 / §10 #18 there is no candidate early fusion (a softmax over
the catalogue has no single candidate), the item embedding is learned from ids (no PinSage) and all intents get
a head (TransAct has all 4 intent predictions in Table 1). Paper sizes (2 layers, 1 head, FFN 32, dropout 0.1,
K = 10, MLP 256) come from the config (``n_layers``, ``n_heads``, ``ffn_mult``, ``dropout``, ``transact_k``); only
the MLP width is fixed here (:data:`MLP_HIDDEN`).

Random time-window mask (PAPER §8.6). In training, each row draws r ~ U[0, ``cfg.transact_window``] per forward
pass and query k may not attend an earlier key j with T_k − T_j < r (it always attends itself, so no attention
row is empty and nothing is NaN). At evaluation r = 0: the plain causal mask. Times are ``batch.time_hours``. On
untimed data (``spec.timed`` False) ``time_hours`` is an order index, not hours, so a window given as a time span
has no meaning there and the random mask is disabled: training uses the plain causal mask too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from intentrec.config import ModelConfig, parse_duration
from intentrec.structs import DataSpec, ModelOutput, SequenceBatch

from ..intentrec import IntentHeads
from ..layers import CausalEncoder, FeatureEmbedder, causal_mask, weight_initializer
from ._common import BaselineModel, ItemScoreHead, baseline_heads

__all__ = ["MLP_HIDDEN", "TransAct", "random_time_window_mask"]

MLP_HIDDEN = 256
"""Hidden width of the MLP after the read-out (PAPER §10 #18)."""


def random_time_window_mask(
    valid: torch.Tensor, time_hours: torch.Tensor, window_hours: torch.Tensor
) -> torch.Tensor:
    """Causal mask that also hides, for each query k, the earlier events less than ``r_b`` hours before T_k.

    Query k may attend key j iff (j <= k, key j is a real event and T_k − T_j >= r_b) or j == k. With r = 0 this
    is :func:`~intentrec.model.layers.causal_mask` (times are non-decreasing along a row).

    Args:
        valid: (B, n) bool, True at real events.
        time_hours: (B, n) float event times in hours.
        window_hours: (B,) float per-row window r_b (>= 0).

    Returns:
        (B, 1, n, n) bool mask, ``True`` = may attend; the diagonal is always allowed.

    Example:
        >>> valid = torch.tensor([[True, True, True]])
        >>> t = torch.tensor([[0.0, 5.0, 6.0]])
        >>> random_time_window_mask(valid, t, torch.tensor([2.0]))[0, 0].int().tolist()
        [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    """
    n = valid.shape[1]
    idx = torch.arange(n, device=valid.device)  # (n,)
    diagonal = idx[None, :] == idx[:, None]  # (n, n)
    age = time_hours[:, :, None] - time_hours[:, None, :]  # (B, n, n) T_query − T_key
    old_enough = age >= window_hours[:, None, None].to(age.dtype)  # (B, n, n)
    return causal_mask(valid) & (old_enough | diagonal[None, :, :])[:, None, :, :]  # (B, 1, n, n)


class TransAct(BaselineModel):
    """TransAct over item id ⊕ interaction metadata, with an item head and one head per intent (module docstring).

    Args:
        cfg: hyperparameters (``d_model``, ``n_layers``, ``n_heads``, ``ffn_mult``, ``dropout``, ``item_emb_dim``,
            ``cat_emb_dim``, ``item_head``, ``heads``, ``transact_window``, ``transact_k``); ``variant``,
            ``max_len`` and the IntentRec-only sizes are ignored.
        spec: data-derived sizes (``n_items``, input attributes, numeric features, intents, ``timed``).

    Raises:
        ConfigError: ``cfg.heads`` names an attribute that is not an intent of ``spec``, or repeats a name.

    Attributes:
        head_names: intent heads in the order of ``intent_logits`` (empty when the data has no intents).
        k: K of the first-K read-out.
        window_hours: maximum of the random time-window mask in hours (0.0 = off, always 0.0 on untimed data).
    """

    def __init__(self, cfg: ModelConfig, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        heads = baseline_heads(cfg, spec)
        self.head_names = tuple(a.name for a in heads)
        self.k = cfg.transact_k
        window_seconds = parse_duration(cfg.transact_window)
        # untimed data: time_hours is an order index, so a time-span window is meaningless (module docstring)
        self.window_hours = window_seconds / 3600.0 if (window_seconds is not None and spec.timed) else 0.0
        D = cfg.d_model
        self.features = FeatureEmbedder(cfg, spec)
        self.input_proj = nn.Linear(self.features.d_full, D)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.encoder = CausalEncoder(D, cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout)
        self.pool_proj = nn.Linear(D, D)  # the Linear after the max-pool (PAPER §8.7 [CODE])
        self.mlp = nn.Sequential(
            nn.Linear((self.k + 1) * D, MLP_HIDDEN),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(MLP_HIDDEN, D),
        )
        self.intent_heads = IntentHeads(D, heads) if heads else None
        self.item_output = ItemScoreHead(cfg, spec, D)
        self.apply(weight_initializer(cfg.init))

    @property
    def item_embedding(self) -> nn.Embedding:
        """The (I, item_emb_dim) item-id embedding of the input (shared with a tied item head)."""
        return self.features.item_embedding

    def attention_mask(self, batch: SequenceBatch) -> torch.Tensor:
        """The encoder mask: causal, plus the random time-window mask in training on timed data.

        Draws one r ~ U[0, window] per row from the global RNG when it applies.

        Returns:
            (B, 1, n, n) bool, ``True`` = may attend; the diagonal is always allowed.
        """
        if not (self.training and self.window_hours > 0.0):
            return causal_mask(batch.valid)  # (B, 1, n, n)
        r = torch.rand(batch.batch_size, device=batch.valid.device) * self.window_hours  # (B,)
        return random_time_window_mask(batch.valid, batch.time_hours, r)  # (B, 1, n, n)

    def read_out(self, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """First-K + max-pool(+Linear) output compression at every position (PAPER §8.7), flattened.

        Args:
            hidden: (B, n, D) encoder outputs.
            valid: (B, n) bool, True at real events (left-padded).

        Returns:
            (B, n, (K+1)·D): at position k, ``h_k, h_{k-1}, …, h_{k-K+1}`` (zeros before the row's first real
            event) then ``Linear(max over real j <= k of h_j)``; zeros in the pooled part at padding positions.
        """
        B, n, D = hidden.shape
        real = valid[..., None]  # (B, n, 1)
        h = hidden.masked_fill(~real, 0.0)  # (B, n, D) padding never leaks into the stack
        shifted = F.pad(h, (0, 0, self.k - 1, 0))  # (B, K-1+n, D) K-1 zero rows in front
        stack = shifted.unfold(1, self.k, 1)  # (B, n, D, K): column k holds h_{k-K+1} … h_k
        stack = stack.flip(-1).transpose(-1, -2)  # (B, n, K, D) newest first: h_k, h_{k-1}, …
        very_negative = torch.finfo(hidden.dtype).min
        running_max, _ = torch.cummax(hidden.masked_fill(~real, very_negative), dim=1)  # (B, n, D)
        pooled = self.pool_proj(running_max.masked_fill(~real, 0.0))  # (B, n, D) (left padding: no real j <= k)
        return torch.cat([stack, pooled[:, :, None, :]], dim=2).reshape(B, n, (self.k + 1) * D)  # (B, n, (K+1)·D)

    def forward(self, batch: SequenceBatch) -> ModelOutput:
        """Run the model on a left-padded batch.

        Args:
            batch: inputs (``item_idx``, ``categorical``, ``numeric``, ``valid``, ``time_hours``); targets are not
                read.

        Returns:
            :class:`ModelOutput` with ``item_hidden`` (B, n, d_model), ``intent_logits`` name -> (B, n, d_i)
            with the PAD class masked, and None fusion outputs. Values at padding positions are finite and
            meaningless.
        """
        x = self.input_proj(self.features(batch))  # (B, n, D), no positional encoding
        x = self.input_dropout(x * batch.valid[..., None].to(x.dtype))  # (B, n, D), zero at padding
        hidden = self.encoder(x, self.attention_mask(batch))  # (B, n, D)
        item_hidden = self.mlp(self.read_out(hidden, batch.valid))  # (B, n, D)
        return self.heads_output(item_hidden, valid=batch.valid, batch=batch)

