"""Read a trained model out at chosen (user, position) targets: intent embeddings, attention, intent probabilities,
the short-term window and the top-ranked items — the raw material of every analysis (PAPER §6.7)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from intentrec.model import score_position_parts
from intentrec.structs import EncodedSequences, SequenceBatch

__all__ = ["IntentReadout", "last_event_targets", "read_out", "session_start_targets"]


@dataclass(frozen=True)
class IntentReadout:
    """What a model predicts at each target ``(user_row, position)``: the event ``position`` of that user is the
    "next interaction", predicted from the events before it (the latest ``max_len`` of them).

    Rows are aligned with :attr:`targets`.
    """

    targets: np.ndarray
    """(T, 2) int64 (user_row, position)."""
    head_names: tuple[str, ...]
    """Intent heads, in the model's order (the columns of :attr:`attention`)."""
    intent_probs: dict[str, np.ndarray]
    """head -> (T, d_i) float32 softmax probabilities over the head's labels (column = label index)."""
    attention: np.ndarray | None
    """(T, M) float32 attention weights over the heads (PAPER Eq. 2); None for models without fusion."""
    intent_embedding: np.ndarray | None
    """(T, d_proj) float32 intent embedding Z; None for models without fusion."""
    window_events: np.ndarray
    """(T,) int64 events inside the short-term window at the prediction (PAPER Eq. 1)."""
    input_events: np.ndarray
    """(T,) int64 events the model read (min(position, max_len))."""
    top_items: np.ndarray
    """(T, K) int64 item indices, best first (PAD/UNK never; seen items removed when asked); K = 0 if not asked."""
    top_scores: np.ndarray
    """(T, K) float32 scores of :attr:`top_items`."""
    top_boosts: np.ndarray | None = None
    """(T, K) float32 share of :attr:`top_scores` that the repeat boosts add; None for models without them."""

    @property
    def n(self) -> int:
        """T."""
        return int(self.targets.shape[0])

    def take(self, rows: np.ndarray) -> IntentReadout:
        """The read-out restricted to / reordered by ``rows`` (int indices or a boolean mask)."""
        idx = np.asarray(rows)

        def pick(arr: np.ndarray | None) -> np.ndarray | None:
            return None if arr is None else arr[idx]

        return IntentReadout(
            targets=self.targets[idx],
            head_names=self.head_names,
            intent_probs={k: v[idx] for k, v in self.intent_probs.items()},
            attention=pick(self.attention),
            intent_embedding=pick(self.intent_embedding),
            window_events=self.window_events[idx],
            input_events=self.input_events[idx],
            top_items=self.top_items[idx],
            top_scores=self.top_scores[idx],
            top_boosts=pick(self.top_boosts),
        )

    def primary_head(self) -> np.ndarray:
        """(T,) int64 index into :attr:`head_names` of the head with the largest attention weight (the "primary
        intent", PAPER §6.7); raises ValueError for models without fusion."""
        if self.attention is None:
            raise ValueError("this model has no intent attention (only IntentRec V2/V3 fuse the intent heads)")
        return np.argmax(self.attention, axis=1).astype(np.int64)


def last_event_targets(data: EncodedSequences, users: np.ndarray | None = None) -> np.ndarray:
    """(T, 2) targets predicting each user's last event from everything before it (users with >= 2 events).

    Args:
        data: the encoded data.
        users: user rows to consider (default: all).
    """
    rows = np.arange(data.n_users, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
    lengths = (data.offsets[rows + 1] - data.offsets[rows]).astype(np.int64)  # (U',)
    keep = lengths >= 2
    return np.stack([rows[keep], lengths[keep] - 1], axis=1).astype(np.int64)


def session_start_targets(data: EncodedSequences, users: np.ndarray, max_sessions: int) -> np.ndarray:
    """(T, 2) targets at the first event of each session after a user's first (the prediction made when a new
    session begins), at most the latest ``max_sessions`` per user, in user then time order."""
    out: list[np.ndarray] = []
    for u in np.asarray(users, dtype=np.int64).tolist():
        s = data.user_slice(u)
        sess = data.session[s]  # (n_u,)
        starts = np.flatnonzero(np.diff(sess) != 0) + 1  # (S-1,) positions where a new session begins
        starts = starts[-max_sessions:] if max_sessions > 0 else starts[:0]
        out.append(np.stack([np.full_like(starts, u), starts], axis=1))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(out).astype(np.int64).reshape(-1, 2)


def _seen(data: EncodedSequences, targets: np.ndarray, n_items: int) -> torch.Tensor:
    mask = torch.zeros((targets.shape[0], n_items), dtype=torch.bool)  # (P, I)
    for row, (u, p) in enumerate(targets.tolist()):
        start = int(data.offsets[u])
        mask[row, torch.from_numpy(np.array(data.item_idx[start : start + p]))] = True  # copy: the data may be a read-only memory map
    return mask


@torch.no_grad()
def read_out(
    model: nn.Module,
    batches: Iterable[SequenceBatch],
    data: EncodedSequences | None,
    targets: np.ndarray,
    *,
    top_k: int = 0,
    exclude_seen: bool = False,
    progress: Callable[[int], None] | None = None,
) -> IntentReadout:
    """Run ``model`` over evaluation ``batches`` (one per target, target at the last column, in ``targets`` order:
    e.g. ``DataLoader(EvalTargets(data, targets, max_len), shuffle=False)``) and keep its read-out.

    Args:
        model: a model returning :class:`~intentrec.structs.ModelOutput` and with ``score_items(hidden)``.
        batches: the evaluation batches.
        data: the encoded data (for seen items; may be None when ``exclude_seen`` is False).
        targets: (T, 2) (user_row, position) in batch order (for a live request: ``[[-1, length]]``).
        top_k: how many top-ranked items to keep per target (0 = none; the full catalogue is ranked).
        exclude_seen: remove items the user engaged with before the target from the ranking.
        progress: called with the number of targets done after each batch.
    """
    if exclude_seen and data is None:
        raise ValueError("exclude_seen needs the encoded data (the histories' items)")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs: dict[str, list[np.ndarray]] = {}
    attention: list[np.ndarray] = []
    z: list[np.ndarray] = []
    window: list[np.ndarray] = []
    n_input: list[np.ndarray] = []
    top_items: list[np.ndarray] = []
    top_scores: list[np.ndarray] = []
    top_boosts: list[np.ndarray] = []
    names: tuple[str, ...] = ()
    done = 0
    for batch in batches:
        batch = batch.to(device)
        out = model(batch)
        last = batch.item_idx.shape[1] - 1
        names = tuple(out.intent_logits)
        for name, logits in out.intent_logits.items():
            probs.setdefault(name, []).append(torch.softmax(logits[:, last].float(), dim=-1).cpu().numpy())  # (B, d_i)
        if out.intent_attention is not None and out.intent_embedding is not None:
            attention.append(out.intent_attention[:, last].float().cpu().numpy())  # (B, M)
            z.append(out.intent_embedding[:, last].float().cpu().numpy())  # (B, d_proj)
        window.append((last - batch.window_start[:, last] + 1).cpu().numpy())  # (B,)
        n_input.append(batch.valid.sum(dim=1).cpu().numpy())  # (B,)
        if top_k > 0:
            rows = torch.arange(batch.batch_size, device=batch.item_idx.device)  # (B,)
            head, boost = score_position_parts(model, out, batch, rows, last)  # (B, I), (B, I) | None
            scores = (head if boost is None else head + boost).float()  # (B, I)
            scores[:, :2] = -torch.inf
            if exclude_seen and data is not None:
                chunk = targets[done : done + batch.batch_size]
                scores = scores.masked_fill(_seen(data, chunk, scores.shape[1]).to(scores.device), -torch.inf)
            best = torch.topk(scores, min(top_k, scores.shape[1]), dim=1)
            top_items.append(best.indices.cpu().numpy())
            top_scores.append(best.values.cpu().numpy())
            if boost is not None:
                top_boosts.append(boost.float().gather(1, best.indices).cpu().numpy())  # (B, K)
        done += batch.batch_size
        if progress is not None:
            progress(done)
    model.train(was_training)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1, 2)
    if done != targets.shape[0]:
        raise ValueError(f"the batches held {done} examples but {targets.shape[0]} targets were given")

    def cat(parts: list[np.ndarray], shape: tuple[int, ...], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype=dtype)

    return IntentReadout(
        targets=targets,
        head_names=names,
        intent_probs={k: cat(v, (0, 0), np.float32) for k, v in probs.items()},
        attention=cat(attention, (0, len(names)), np.float32) if attention or done == 0 else None,
        intent_embedding=cat(z, (0, 0), np.float32) if z or done == 0 else None,
        window_events=cat(window, (0,), np.int64),
        input_events=cat(n_input, (0,), np.int64),
        top_items=cat(top_items, (done, 0), np.int64),
        top_scores=cat(top_scores, (done, 0), np.float32),
        top_boosts=cat(top_boosts, (done, 0), np.float32) if top_boosts else None,
    )
