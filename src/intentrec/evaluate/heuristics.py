"""Untrained heuristic baselines, ranked by exactly the protocol of the neural models (EVALUATION.md).

Four scorers, chosen by ``ModelConfig.architecture`` (:func:`fit_heuristic`):

* ``popularity`` — training-event counts of every item (the floor of :func:`evaluate_popularity`).
* ``recent_popularity`` — training events within ``recent_window`` before the latest training timestamp
  (untimed data: each user's last ``knn_history`` training events); ties by overall training counts.
* ``item_knn`` — item-to-item cosine of co-occurrence in training sessions, pruned to the ``knn_neighbors``
  most similar items per item; a target's score sums the rows of its latest ``knn_history`` history items,
  weighted ``1 / (1 + age)`` (age 0 = the latest event).
* ``session_knn`` — V-SKNN (Ludewig & Jannach 2018): the current session (the history events sharing the last
  history event's session, at most ``knn_history``) is compared with every training session that shares an item;
  the ``knn_neighbors`` most similar sessions vote for their items.

Fitting rules (the leakage contract): every fitted statistic — counts, co-occurrences, neighbour sessions — comes
from TRAINING events only (rows ``offsets[u] .. offsets[u] + split.train_len[u]``). At scoring time a target's
input is its user's events ``[0, position)``, which for validation/test targets may include earlier
validation/test-window events: that is the protocol (the model has seen them happen; it has not trained on them).

Design choices:

* **Degenerate sessions (item_knn).** When every training user has exactly one training session (untimed data
  without session ids, e.g. the S3-Rec files), a session is a whole user history and co-occurrence would ignore
  order entirely. item_knn then counts two items as co-occurring for a user when they occur within ``knn_history``
  consecutive training events of that user (a sliding window; each user counts a pair at most once, like a
  session, so long histories do not dominate; ``cnt(i)`` = users holding i). On Beauty (S3-Rec, leave-one-out,
  test NDCG@10) this gave 0.042 against 0.039 for whole-history co-occurrence and 0.034 for counting overlapping
  windows as sessions. session_knn keeps whole histories as sessions (windows of one user would be near-duplicate
  neighbours): on such data it is a user-kNN with a recency-weighted query.
* **Which sessions are neighbours (session_knn).** All training sessions, except the current session itself when
  its earlier part is training data (same user and session number). Under the ``temporal`` protocol every
  training session precedes every validation/test target. Under ``leave-one-out`` another user's training session
  can be later in time than a target (the protocol's known weakness, EVALUATION.md); under ``user`` the held-out
  users have no training sessions. The user's own earlier training sessions stay candidates: they precede the
  target and are part of its input anyway.
* **Ties.** The ranking counts ties against the model, so every scorer adds a deterministic tie-break by overall
  training popularity: recent_popularity adds ``count / (max count + 1)`` (< 1, so recent counts keep their
  order exactly); the kNN scorers add ``1e-9 × count / max count`` (far below the smallest non-zero similarity,
  ``1 / (max item count × knn_history)`` for item_knn). A target without usable history is therefore ranked by
  popularity. Pruning ties (the k-th neighbour) go to the more popular item / the more recent session.

Scores are float64 ``(P, I)`` tensors; PAD and UNK get ``-inf`` (the ranking never ranks them anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

from intentrec.config import ModelConfig, parse_duration
from intentrec.errors import ConfigError
from intentrec.evaluate.evaluator import MetricReport, evaluate_scores, item_popularity
from intentrec.structs import EncodedSequences
from intentrec.vocab import PAD_IDX, UNK_IDX

__all__ = [
    "HeuristicScorer",
    "ItemKNNScorer",
    "PopularityScorer",
    "RecentPopularityScorer",
    "SessionKNNScorer",
    "evaluate_heuristic",
    "fit_heuristic",
]

KNN_TIE_EPS = 1e-9
"""Weight of the normalised popularity tie-break added to kNN scores (far below any non-zero similarity)."""


@runtime_checkable
class HeuristicScorer(Protocol):
    """An untrained next-item scorer fitted on training events only."""

    @property
    def name(self) -> str:
        """The architecture name (``popularity``, ``recent_popularity``, ``item_knn``, ``session_knn``)."""
        ...

    def score(self, data: EncodedSequences, targets: np.ndarray) -> torch.Tensor:
        """(P, I) float scores of every item for each target given its history (higher = better).

        Args:
            data: the encoded data the scorer was fitted on (histories are read from it).
            targets: (P, 2) int64 (user_row, position): the history is the user's events ``[0, position)``.

        Returns:
            (P, I) float64 scores; PAD and UNK are ``-inf``.
        """
        ...


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------


def _training_rows(data: EncodedSequences) -> tuple[np.ndarray, np.ndarray]:
    """(R,) event rows of every training event (user order, then time order) and (R,) their user rows."""
    train_len = data.split.train_len.astype(np.int64)  # (U,)
    users = np.repeat(np.arange(data.n_users, dtype=np.int64), train_len)  # (R,)
    first = np.repeat(np.cumsum(train_len) - train_len, train_len)  # (R,) index of the user's first event
    rows = data.offsets[users] + (np.arange(users.size, dtype=np.int64) - first)  # (R,)
    return rows, users


def _mask_invalid(scores: np.ndarray) -> np.ndarray:
    """PAD and UNK columns to -inf (in place); returns ``scores``."""
    scores[..., PAD_IDX] = -np.inf
    scores[..., UNK_IDX] = -np.inf
    return scores


def _normalised(pop: np.ndarray) -> np.ndarray:
    """(I,) popularity scaled to [0, 1] (all zeros when there is no training event)."""
    top = float(pop.max()) if pop.size else 0.0
    return pop / top if top > 0 else np.zeros_like(pop)


def _history_window(data: EncodedSequences, targets: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The latest ``m`` history events of every target, oldest first.

    Returns:
        (P, m) int64 event rows (0 where invalid) and (P, m) bool, True where the row is a history event.
    """
    starts = data.offsets[targets[:, 0]]  # (P,) the user's first event row
    ends = starts + targets[:, 1]  # (P,) the target's row = first row after the history
    rows = ends[:, None] - m + np.arange(m, dtype=np.int64)[None, :]  # (P, m)
    valid = rows >= starts[:, None]  # (P, m)
    return np.where(valid, rows, 0), valid


def _sparse_rows(
    row: np.ndarray, col: np.ndarray, value: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """CSR matrix from (row, col, value) triples; duplicates are summed."""
    return sp.csr_matrix((value.astype(np.float64), (row, col)), shape=shape)


def _top_k_per_row(mat: sp.csr_matrix, k: int, priority: np.ndarray) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every row of ``mat``.

    Ties at the k-th value go to the column of higher ``priority`` (then the lower column index), so the result
    is deterministic.

    Args:
        mat: (R, C) CSR with positive entries.
        k: entries kept per row.
        priority: (C,) tie-break of each column (higher wins).

    Returns:
        (R, C) CSR with at most ``k`` entries per row.
    """
    mat = mat.tocsr()
    mat.sum_duplicates()
    mat.eliminate_zeros()
    counts = np.diff(mat.indptr)  # (R,)
    if not (counts > k).any():
        return mat
    keep = np.ones(mat.nnz, dtype=bool)  # (nnz,)
    for r in np.flatnonzero(counts > k).tolist():
        a, b = int(mat.indptr[r]), int(mat.indptr[r + 1])
        values, cols = mat.data[a:b], mat.indices[a:b]  # (n,), (n,)
        kth = np.partition(values, values.size - k)[values.size - k]  # the k-th largest value
        cand = np.flatnonzero(values >= kth)  # (>= k,) candidates; only ties at kth exceed k
        order = np.lexsort((cols[cand], -priority[cols[cand]], -values[cand]))[:k]  # (k,)
        row_keep = np.zeros(b - a, dtype=bool)
        row_keep[cand[order]] = True
        keep[a:b] = row_keep
    row_ids = np.repeat(np.arange(mat.shape[0]), counts)  # (nnz,)
    kept_per_row = np.bincount(row_ids[keep], minlength=mat.shape[0])  # (R,)
    indptr = np.concatenate([[0], np.cumsum(kept_per_row)]).astype(mat.indptr.dtype)  # (R + 1,)
    return sp.csr_matrix((mat.data[keep], mat.indices[keep], indptr), shape=mat.shape)


@dataclass(frozen=True)
class _Sessions:
    """Training sessions as a binary (S, I) matrix, in (user, session number) order."""

    matrix: sp.csr_matrix
    """(S, I) float64, 1 where the session contains the item (PAD/UNK never)."""
    user: np.ndarray
    """(S,) int64 user row of each session."""
    number: np.ndarray
    """(S,) int64 session number within the user."""
    last_time: np.ndarray
    """(S,) float64 timestamp of the session's last training event."""


def _training_sessions(data: EncodedSequences) -> _Sessions:
    """Group the training events by (user, session number); PAD/UNK items are left out of the matrix."""
    rows, users = _training_rows(data)  # (R,), (R,)
    number = data.session[rows]  # (R,)
    new = np.ones(rows.size, dtype=bool)  # (R,) True at the first event of each session
    new[1:] = (users[1:] != users[:-1]) | (number[1:] != number[:-1])
    sid = np.cumsum(new) - 1  # (R,) global session index
    n_sessions = int(new.sum())
    items = data.item_idx[rows]  # (R,)
    known = items > UNK_IDX  # (R,)
    ones = np.ones(int(known.sum()))
    matrix = _sparse_rows(sid[known], items[known], ones, (n_sessions, data.spec.n_items))  # (S, I)
    matrix.data[:] = 1.0  # binary: a session contains an item or not
    last_time = np.full(n_sessions, -np.inf)  # (S,)
    np.maximum.at(last_time, sid, data.timestamps[rows])
    return _Sessions(matrix, users[new], number[new], last_time)


def _window_cooccurrence(data: EncodedSequences, width: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Co-occurrence within sliding windows of ``width`` consecutive training events (degenerate sessions).

    ``co(i, j)`` = number of users in whose training history ``i != j`` occur within ``width`` consecutive events
    (at most 1 per user, as a session counts at most once); ``cnt(i)`` = number of users whose training history
    contains ``i``. With ``width`` >= every history length this equals whole-history session co-occurrence.

    Returns:
        (I, I) float64 symmetric co-occurrence counts with a zero diagonal, and (I,) float64 ``cnt``.
    """
    rows, users = _training_rows(data)  # (R,), (R,)
    items = data.item_idx[rows]  # (R,)
    n_items = data.spec.n_items
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    for dist in range(1, width):
        a, b = items[:-dist], items[dist:]  # (R - dist,) event pairs dist apart
        ok = (users[dist:] == users[:-dist]) & (a > UNK_IDX) & (b > UNK_IDX) & (a != b)  # (R - dist,)
        lo.append(np.minimum(a, b)[ok])
        hi.append(np.maximum(a, b)[ok])
        owner.append(users[dist:][ok])
    pair_lo = np.concatenate(lo) if lo else np.zeros(0, np.int64)  # (Q,)
    pair_hi = np.concatenate(hi) if hi else np.zeros(0, np.int64)  # (Q,)
    pair_user = np.concatenate(owner) if owner else np.zeros(0, np.int64)  # (Q,)
    order = np.lexsort((pair_hi, pair_lo, pair_user))  # (Q,) group equal (user, lo, hi) triples
    pair_lo, pair_hi, pair_user = pair_lo[order], pair_hi[order], pair_user[order]
    first = np.ones(order.size, dtype=bool)  # (Q,) the first of each (user, lo, hi): once per user
    first[1:] = (pair_user[1:] != pair_user[:-1]) | (pair_lo[1:] != pair_lo[:-1]) | (pair_hi[1:] != pair_hi[:-1])
    upper = _sparse_rows(pair_lo[first], pair_hi[first], np.ones(int(first.sum())), (n_items, n_items))  # (I, I)
    co = (upper + upper.T).tocsr()  # (I, I) symmetric, zero diagonal
    known = items > UNK_IDX  # (R,)
    per_user = _sparse_rows(users[known], items[known], np.ones(int(known.sum())), (data.n_users, n_items))
    cnt = per_user.getnnz(axis=0).astype(np.float64)  # (I,) users holding each item
    return co, cnt


def _degenerate_sessions(sessions: _Sessions, data: EncodedSequences) -> bool:
    """True when every training user has exactly one training session (sessions = whole histories)."""
    n_train_users = int((data.split.train_len > 0).sum())
    return n_train_users > 0 and sessions.user.size == n_train_users


# ------------------------------------------------------------------------------------------------------------
# scorers
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PopularityScorer:
    """Training-event counts of every item, the same for every target."""

    popularity: np.ndarray
    """(I,) float64 training counts (PAD/UNK 0)."""

    @property
    def name(self) -> str:
        """``popularity``."""
        return "popularity"

    @classmethod
    def fit(cls, data: EncodedSequences) -> PopularityScorer:
        """Count the training events of every item."""
        return cls(item_popularity(data))

    def score(self, data: EncodedSequences, targets: np.ndarray) -> torch.Tensor:
        """(P, I) the training counts for every target."""
        scores = _mask_invalid(np.tile(self.popularity, (targets.shape[0], 1)))  # (P, I)
        return torch.from_numpy(scores)


@dataclass(frozen=True)
class RecentPopularityScorer:
    """Counts of the most recent training events; ties broken by overall training counts."""

    recent: np.ndarray
    """(I,) float64 counts of the recent training events."""
    popularity: np.ndarray
    """(I,) float64 counts of all training events (the tie-break)."""

    @property
    def name(self) -> str:
        """``recent_popularity``."""
        return "recent_popularity"

    @classmethod
    def fit(cls, data: EncodedSequences, window_seconds: float, last_events: int) -> RecentPopularityScorer:
        """Count the training events in the recent window.

        Args:
            data: the encoded data.
            window_seconds: timed data: events with ``timestamp >= latest training timestamp - window_seconds``.
            last_events: untimed data: each user's last ``last_events`` training events.
        """
        rows, users = _training_rows(data)  # (R,), (R,)
        if data.spec.timed:
            times = data.timestamps[rows]  # (R,)
            latest = float(times.max()) if times.size else 0.0
            recent_rows = rows[times >= latest - window_seconds]
        else:
            from_end = data.offsets[users] + data.split.train_len[users] - rows  # (R,) 1 = the user's last
            recent_rows = rows[from_end <= last_events]
        recent = np.bincount(data.item_idx[recent_rows], minlength=data.spec.n_items)  # (I,)
        recent = recent.astype(np.float64)
        recent[PAD_IDX] = recent[UNK_IDX] = 0.0
        return cls(recent, item_popularity(data))

    def score(self, data: EncodedSequences, targets: np.ndarray) -> torch.Tensor:
        """(P, I) recent counts + overall count / (max count + 1) (< 1: keeps the recent order exactly)."""
        base = self.recent + self.popularity / (float(self.popularity.max(initial=0.0)) + 1.0)  # (I,)
        return torch.from_numpy(_mask_invalid(np.tile(base, (targets.shape[0], 1))))  # (P, I)


@dataclass(frozen=True)
class ItemKNNScorer:
    """Item-to-item cosine of co-occurrence in training sessions, summed over the recent history."""

    similarity: sp.csr_matrix
    """(I, I) float64: row h holds the ``k`` items most similar to h (cosine; diagonal zero)."""
    popularity: np.ndarray
    """(I,) float64 training counts (the tie-break)."""
    history: int
    """m: the latest history events that vote."""
    units: Literal["sessions", "windows"]
    """What co-occurrence was counted in: ``sessions`` or ``windows`` (degenerate sessions)."""

    @property
    def name(self) -> str:
        """``item_knn``."""
        return "item_knn"

    @classmethod
    def fit(cls, data: EncodedSequences, neighbors: int, history: int) -> ItemKNNScorer:
        """Cosine co-occurrence of training items.

        ``co(i, j)`` = number of training sessions containing both i and j; ``cnt(i)`` = sessions containing i
        (degenerate sessions: per user, within ``history`` consecutive events, see the module docstring);
        ``cos(i, j) = co(i, j) / sqrt(cnt(i) cnt(j))``; the diagonal is zero and each row keeps its ``neighbors``
        largest entries (ties: the more popular item).

        Args:
            data: the encoded data.
            neighbors: k, neighbours kept per item.
            history: m, the latest history events that vote (also the sliding-window width).
        """
        sessions = _training_sessions(data)
        units: Literal["sessions", "windows"]
        if _degenerate_sessions(sessions, data):
            units = "windows"
            co, cnt = _window_cooccurrence(data, history)  # (I, I), (I,)
        else:
            units = "sessions"
            x = sessions.matrix  # (S, I)
            co = (x.T @ x).tocsr()  # (I, I) sessions containing both items; diagonal = cnt
            cnt = co.diagonal()  # (I,)
            co.setdiag(0.0)
        co.eliminate_zeros()
        coo = co.tocoo()
        cosine = coo.data / np.sqrt(cnt[coo.row] * cnt[coo.col])  # (nnz,)
        sim = sp.csr_matrix((cosine, (coo.row, coo.col)), shape=co.shape)  # (I, I)
        popularity = item_popularity(data)
        return cls(_top_k_per_row(sim, neighbors, popularity), popularity, history, units)

    def score(self, data: EncodedSequences, targets: np.ndarray) -> torch.Tensor:
        """(P, I) Σ over the latest m history items h of ``S[h, ·] / (1 + age)`` + popularity tie-break."""
        m = self.history
        rows, valid = _history_window(data, targets, m)  # (P, m), (P, m)
        items = data.item_idx[rows]  # (P, m)
        valid &= items > UNK_IDX  # unknown items carry no similarity
        p = targets.shape[0]
        age = np.broadcast_to(np.arange(m - 1, -1, -1, dtype=np.float64), (p, m))  # (P, m) 0 = the latest
        row_ids = np.broadcast_to(np.arange(p)[:, None], (p, m))  # (P, m)
        weight = 1.0 / (1.0 + age[valid])  # (Q,)
        query = _sparse_rows(row_ids[valid], items[valid], weight, (p, self.similarity.shape[0]))  # (P, I)
        scores = (query @ self.similarity).toarray()  # (P, I)
        scores += KNN_TIE_EPS * _normalised(self.popularity)[None, :]  # (P, I)
        return torch.from_numpy(_mask_invalid(scores))


@dataclass(frozen=True)
class SessionKNNScorer:
    """V-SKNN: training sessions similar to the current session vote for their items."""

    sessions: sp.csr_matrix
    """(S, I) float64 binary: the items of every training session."""
    normalised_t: sp.csr_matrix
    """(I, S) float64: ``sessions.T`` with each session's column divided by sqrt(its number of items)."""
    session_user: np.ndarray
    """(S,) int64 user row of each training session."""
    session_number: np.ndarray
    """(S,) int64 session number within its user."""
    session_time: np.ndarray
    """(S,) float64 last training timestamp of each session (the tie-break: recent first)."""
    popularity: np.ndarray
    """(I,) float64 training counts (the tie-break of item scores)."""
    neighbors: int
    """k: neighbouring sessions per prediction."""
    history: int
    """m: the latest current-session events that form the query."""

    @property
    def name(self) -> str:
        """``session_knn``."""
        return "session_knn"

    @classmethod
    def fit(cls, data: EncodedSequences, neighbors: int, history: int) -> SessionKNNScorer:
        """Index the training sessions (events of one user with one session number, training rows only).

        Args:
            data: the encoded data.
            neighbors: k, neighbouring sessions per prediction.
            history: m, the latest current-session events that form the query.
        """
        s = _training_sessions(data)
        size = np.asarray(s.matrix.sum(axis=1)).ravel()  # (S,) distinct known items per session
        inv = np.divide(1.0, np.sqrt(size), out=np.zeros_like(size), where=size > 0)  # (S,)
        normalised_t = (sp.diags(inv) @ s.matrix).T.tocsr()  # (I, S)
        popularity = item_popularity(data)
        return cls(s.matrix, normalised_t, s.user, s.number, s.last_time, popularity, neighbors, history)

    def _own_session(self, users: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """(P,) index of the training session (user, number), or -1 when it has no training events."""
        n = self.session_user.size
        if n == 0:
            return np.full(users.size, -1, dtype=np.int64)
        base = int(self.session_number.max()) + 1
        keys = self.session_user * base + self.session_number  # (S,) ascending: sessions are (user, number) sorted
        query = users * base + numbers  # (P,)
        idx = np.minimum(np.searchsorted(keys, query), n - 1)  # (P,)
        found = (keys[idx] == query) & (numbers >= 0) & (numbers < base)  # (P,)
        return np.where(found, idx, -1)

    def score(self, data: EncodedSequences, targets: np.ndarray) -> torch.Tensor:
        """(P, I) Σ over the k most similar training sessions of their similarity, per item they contain.

        Query: the latest m history events in the session of the last history event, weighted linearly by
        position (V-SKNN: the i-th of L events weighs i / L; a repeated item keeps its latest weight).
        ``sim(current, s) = Σ_{shared items} weight / sqrt(|s|)`` with ``|s|`` the distinct items of s; the
        current session itself is never its own neighbour.
        """
        p, m = targets.shape[0], self.history
        rows, valid = _history_window(data, targets, m)  # (P, m), (P, m)
        has_history = targets[:, 1] > 0  # (P,)
        last = data.offsets[targets[:, 0]] + np.maximum(targets[:, 1] - 1, 0)  # (P,) the last history event
        current = data.session[last]  # (P,) the current session's number
        valid &= (data.session[rows] == current[:, None]) & has_history[:, None]  # (P, m) a suffix
        length = valid.sum(axis=1)  # (P,) L, events of the current session in the window
        position = np.arange(m)[None, :] - (m - length)[:, None] + 1  # (P, m) 1 .. L for valid events
        weight = position / np.maximum(length, 1)[:, None]  # (P, m) i / L, the latest = 1
        items = data.item_idx[rows]  # (P, m)
        valid &= items > UNK_IDX
        r = np.broadcast_to(np.arange(p)[:, None], (p, m))[valid]  # (Q,)
        c, w = items[valid], weight[valid]  # (Q,), (Q,)
        order = np.lexsort((-w, c, r))  # per (row, item): the largest (latest) weight first
        r, c, w = r[order], c[order], w[order]
        first = np.ones(r.size, dtype=bool)
        first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
        query = _sparse_rows(r[first], c[first], w[first], (p, self.normalised_t.shape[0]))  # (P, I)

        sim = (query @ self.normalised_t).tocsr()  # (P, S) similarity to every training session
        own = self._own_session(targets[:, 0], np.where(has_history, current, -1))  # (P,)
        row_of = np.repeat(np.arange(p), np.diff(sim.indptr))  # (nnz,)
        sim.data[sim.indices == own[row_of]] = 0.0  # the current session is not its own neighbour
        neighbours = _top_k_per_row(sim, self.neighbors, self.session_time)  # (P, S) <= k per row
        scores = (neighbours @ self.sessions).toarray()  # (P, I)
        scores += KNN_TIE_EPS * _normalised(self.popularity)[None, :]  # (P, I)
        return torch.from_numpy(_mask_invalid(scores))


# ------------------------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------------------------


def fit_heuristic(cfg: ModelConfig, data: EncodedSequences) -> HeuristicScorer:
    """Fit the heuristic named by ``cfg.architecture`` on the training events of ``data``.

    Args:
        cfg: the model section; reads ``architecture``, ``knn_neighbors``, ``knn_history``, ``recent_window``.
        data: the encoded data (only training rows are used for fitting).

    Returns:
        The fitted scorer.

    Raises:
        ConfigError: ``cfg.architecture`` is not a heuristic (see ``ModelConfig.is_heuristic``).
    """
    arch = cfg.architecture
    if arch == "popularity":
        return PopularityScorer.fit(data)
    if arch == "recent_popularity":
        window = parse_duration(cfg.recent_window)
        if window is None:
            raise ConfigError("model.recent_window must be a time span such as '30d' for recent_popularity")
        return RecentPopularityScorer.fit(data, window, cfg.knn_history)
    if arch == "item_knn":
        return ItemKNNScorer.fit(data, cfg.knn_neighbors, cfg.knn_history)
    if arch == "session_knn":
        return SessionKNNScorer.fit(data, cfg.knn_neighbors, cfg.knn_history)
    raise ConfigError(
        f"model.architecture {arch!r} is not an untrained heuristic; use one of popularity, recent_popularity, "
        "item_knn, session_knn (or train it as a model)"
    )


def evaluate_heuristic(
    scorer: HeuristicScorer,
    data: EncodedSequences,
    targets: np.ndarray,
    *,
    exclude_seen: bool,
    ks: tuple[int, ...],
    intent_topk: int,
    batch_size: int = 1024,
    label_counts: dict[str, np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None,
) -> MetricReport:
    """Rank the full catalogue with a fitted heuristic, exactly like :func:`evaluate_model` ranks a model.

    Same tie policy, PAD/UNK handling and seen-item filter; intents by the majority training label.

    Args:
        scorer: a fitted scorer (:func:`fit_heuristic`).
        data: the encoded data the scorer was fitted on.
        targets: (T, 2) (user_row, position) of every target.
        exclude_seen: remove items the user engaged with before the target from the ranking.
        ks: cut-offs of HR/NDCG.
        intent_topk: k of multi-label recall@k.
        batch_size: targets scored per chunk.
        label_counts: training label counts per intent (computed when None).
        progress: called with the number of targets done after each chunk.

    Returns:
        The report; ``per_target`` (rank, ndcg@10, hr@10, mrr) in the order of ``targets``.
    """
    return evaluate_scores(
        lambda chunk: scorer.score(data, chunk),
        data,
        targets,
        exclude_seen=exclude_seen,
        ks=ks,
        intent_topk=intent_topk,
        batch_size=batch_size,
        label_counts=label_counts,
        progress=progress,
    )
