"""K-means++ clusters of users' intent embeddings Z and their 2-D map (PAPER §6.7; §10 row 20).

Recipe ([OURS], PAPER §10 row 20): take Z at each user's last position, standardise every dimension (mean 0,
std 1; a constant dimension is only centred), run K-means++ with ``K = 10`` and ``n_init = 10``, and draw the
users with t-SNE (perplexity 30). The silhouette score of every K in a range is recorded to help the analyst
judge K, but the configured K is used: the paper fixes it and an auto-chosen K would change between runs.

Too few users: :func:`cluster_embeddings` raises ``ValueError`` (naming the user count and the largest K that
works) rather than silently clamping K, so a report never shows fewer clusters than the run asked for.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "SILHOUETTE_SAMPLE",
    "ClusterResult",
    "cluster_embeddings",
    "embed_2d",
    "nearest_to_center",
    "standardize",
]

SILHOUETTE_SAMPLE = 5000
"""Users sampled (seeded) for each silhouette score: the exact score is O(T²)."""
_SERIAL_BELOW = 5000
"""Below this many users, K-means and t-SNE run on one thread: OpenMP start-up and spin-waiting cost more than
they save on small inputs, and on a busy machine they can make a sub-second fit take tens of seconds."""


def _threads(n_rows: int) -> contextlib.AbstractContextManager[object]:
    """One BLAS/OpenMP thread for small inputs (see :data:`_SERIAL_BELOW`), the libraries' default otherwise."""
    if n_rows >= _SERIAL_BELOW:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=1)


@dataclass(frozen=True)
class ClusterResult:
    """K-means++ clustering of standardised intent embeddings (rows aligned with the read-out's targets)."""

    k: int
    """The number of clusters K used."""
    labels: np.ndarray
    """(T,) int64 cluster of each row, in ``[0, k)``; clusters are numbered by decreasing size (0 = largest)."""
    centers: np.ndarray
    """(K, d) float64 cluster centres in the standardised space."""
    distance_to_center: np.ndarray
    """(T,) float64 Euclidean distance of each row to its own centre (standardised space)."""
    z_std: np.ndarray
    """(T, d) float64 the standardised embeddings that were clustered (input of :func:`embed_2d`)."""
    mean: np.ndarray
    """(d,) float64 per-dimension mean used for standardising."""
    scale: np.ndarray
    """(d,) float64 per-dimension std used for standardising (1 where the std was 0)."""
    silhouette: dict[int, float]
    """K -> silhouette score (on at most :data:`SILHOUETTE_SAMPLE` users) for every K of ``k_range`` that can be
    scored (2 <= K < T and at least two distinct clusters found)."""
    best_k: int | None
    """The K of ``silhouette`` with the highest score (None when nothing was scored); informational only."""
    inertia: float
    """Sum of squared distances to the closest centre for the configured K."""
    seed: int
    """Random seed of K-means++ (and of the silhouette sampling)."""
    n_init: int
    """K-means restarts; the best by inertia is kept."""

    @property
    def n(self) -> int:
        """T, the number of clustered rows."""
        return int(self.labels.shape[0])

    def sizes(self) -> np.ndarray:
        """(K,) int64 rows per cluster."""
        return np.bincount(self.labels, minlength=self.k).astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary (no per-row arrays)."""
        sizes = self.sizes()
        return {
            "k": self.k,
            "n_users": self.n,
            "dim": int(self.z_std.shape[1]) if self.z_std.ndim == 2 else 0,
            "seed": self.seed,
            "n_init": self.n_init,
            "sizes": [int(s) for s in sizes],
            "shares": [_round(float(s) / max(self.n, 1)) for s in sizes],
            "inertia": _round(self.inertia, 6),
            "mean_distance_to_center": [
                _round(float(self.distance_to_center[self.labels == c].mean())) if sizes[c] else None
                for c in range(self.k)
            ],
            "silhouette": {str(k): _round(v) for k, v in self.silhouette.items()},
            "best_k_by_silhouette": self.best_k,
        }


def _round(x: float, digits: int = 4) -> float | None:
    """JSON-safe rounded float (None for NaN / inf)."""
    return round(x, digits) if math.isfinite(x) else None


def standardize(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise each column to mean 0 and std 1 (a constant column is only centred).

    Args:
        z: (T, d) embeddings.

    Returns:
        ``(z_std, mean, scale)`` with ``z_std = (z - mean) / scale``; shapes (T, d), (d,), (d,).

    Example:
        >>> z_std, mean, scale = standardize(np.array([[1.0, 5.0], [3.0, 5.0]]))
        >>> z_std.tolist(), scale.tolist()
        ([[-1.0, 0.0], [1.0, 0.0]], [1.0, 1.0])
    """
    x = np.asarray(z, dtype=np.float64)  # (T, d)
    mean = x.mean(axis=0) if x.shape[0] else np.zeros(x.shape[1])  # (d,)
    std = x.std(axis=0) if x.shape[0] else np.ones(x.shape[1])  # (d,)
    scale = np.where(std > 1e-12, std, 1.0)  # (d,) guard constant dimensions
    return (x - mean) / scale, mean, scale


def _kmeans(x: np.ndarray, k: int, n_init: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.cluster import KMeans

    with warnings.catch_warnings(), _threads(x.shape[0]):
        # duplicate points can leave fewer distinct clusters than K; that is reported, not an error
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(x)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float64), float(km.inertia_)


def _silhouette(x: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    from sklearn.metrics import silhouette_score

    n_labels = np.unique(labels).size
    if n_labels < 2 or n_labels > x.shape[0] - 1:
        return None
    sample = SILHOUETTE_SAMPLE if x.shape[0] > SILHOUETTE_SAMPLE else None
    with _threads(min(x.shape[0], SILHOUETTE_SAMPLE)):
        score = float(silhouette_score(x, labels, sample_size=sample, random_state=seed))
    return score if math.isfinite(score) else None


def cluster_embeddings(
    z: np.ndarray,
    *,
    k: int = 10,
    k_range: Iterable[int] | None = range(2, 16),
    n_init: int = 10,
    seed: int = 0,
) -> ClusterResult:
    """Cluster users by their intent embedding with K-means++ (PAPER §6.7, §10 row 20).

    Clusters are renumbered by decreasing size (ties by the smallest member row), so cluster 0 is the largest
    and the numbering does not depend on K-means' internal order. The same ``seed`` gives identical labels.

    Args:
        z: (T, d) intent embeddings Z, one row per user (NaN/inf are not allowed).
        k: the number of clusters K (the paper uses 10).
        k_range: the Ks to compute a silhouette score for (each costs one K-means fit); None = none. Ks that
            cannot be scored (K < 2 or K >= T) are skipped.
        n_init: K-means restarts (the best by inertia is kept).
        seed: random seed of K-means++ and of the silhouette sampling.

    Returns:
        The :class:`ClusterResult`.

    Raises:
        ValueError: ``z`` is not 2-D or not finite, ``k < 1`` or ``n_init < 1``, or there are fewer users than
            ``k`` (the message says how many users there are and which ``k`` to pass).
    """
    x = np.asarray(z, dtype=np.float64)  # (T, d)
    if x.ndim != 2:
        raise ValueError(f"intent embeddings must be a (users, dim) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("intent embeddings contain NaN or inf; check the model read-out")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    n = x.shape[0]
    if n < k:
        hint = f"pass k={n} or fewer" if n >= 1 else "analyse a run with users to cluster"
        raise ValueError(f"cannot form {k} clusters from {n} users: {hint} (or analyse more users)")
    z_std, mean, scale = standardize(x)  # (T, d)

    raw_labels, raw_centers, inertia = _kmeans(z_std, k, n_init, seed)
    # renumber by decreasing size (ties: the cluster whose first member comes first)
    sizes = np.bincount(raw_labels, minlength=k)  # (K,)
    first = np.array([np.flatnonzero(raw_labels == c)[0] if sizes[c] else n for c in range(k)])  # (K,)
    order = np.lexsort((first, -sizes))  # (K,) old cluster ids, new order
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    labels = remap[raw_labels]  # (T,)
    centers = raw_centers[order]  # (K, d)
    distance = np.linalg.norm(z_std - centers[labels], axis=1)  # (T,)

    silhouette: dict[int, float] = {}
    for kk in sorted({int(v) for v in k_range}) if k_range is not None else []:
        if kk < 2 or kk >= n:
            continue
        lab = labels if kk == k else _kmeans(z_std, kk, n_init, seed)[0]
        score = _silhouette(z_std, lab, seed)
        if score is not None:
            silhouette[kk] = score
    best_k = max(silhouette, key=lambda kk: (silhouette[kk], -kk)) if silhouette else None
    return ClusterResult(
        k=k, labels=labels, centers=centers, distance_to_center=distance, z_std=z_std, mean=mean, scale=scale,
        silhouette=silhouette, best_k=best_k, inertia=inertia, seed=seed, n_init=n_init,
    )


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """(T, 2) projection on the two leading principal axes (zeros where the data has fewer), sign-fixed."""
    out = np.zeros((x.shape[0], 2), dtype=np.float64)  # (T, 2)
    if x.shape[0] == 0 or x.shape[1] == 0:
        return out
    xc = x - x.mean(axis=0)  # (T, d)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)  # (T, r), (r,), (r, d)
    r = min(2, s.size)
    coords = u[:, :r] * s[:r]  # (T, r)
    for j in range(r):  # deterministic sign: the largest-magnitude loading is positive
        if vt[j, np.argmax(np.abs(vt[j]))] < 0:
            coords[:, j] = -coords[:, j]
    out[:, :r] = coords
    return out


def embed_2d(
    z_std: np.ndarray,
    *,
    method: Literal["tsne", "pca"] = "tsne",
    perplexity: float = 30.0,
    seed: int = 0,
) -> np.ndarray:
    """Map (standardised) embeddings to 2-D for plotting; deterministic for a given seed.

    t-SNE (scikit-learn, PCA initialisation) keeps neighbourhoods but not global distances; its perplexity is
    clamped to ``(T - 1) / 3`` (at least 1) so small user counts work. With fewer than 5 rows t-SNE is not
    meaningful and PCA is used instead. ``method="pca"`` is fast and keeps global structure.

    Args:
        z_std: (T, d) embeddings, e.g. :attr:`ClusterResult.z_std`.
        method: ``"tsne"`` or ``"pca"``.
        perplexity: t-SNE perplexity (PAPER §10 row 20: 30).
        seed: t-SNE random state.

    Returns:
        (T, 2) float64 coordinates.

    Raises:
        ValueError: ``z_std`` is not 2-D or ``method`` is unknown.
    """
    x = np.asarray(z_std, dtype=np.float64)  # (T, d)
    if x.ndim != 2:
        raise ValueError(f"expected a (users, dim) array, got shape {x.shape}")
    if method not in ("tsne", "pca"):
        raise ValueError(f"unknown 2-D method {method!r}: use 'tsne' or 'pca'")
    n = x.shape[0]
    if method == "pca" or n < 5:
        return _pca_2d(x)
    from sklearn.manifold import TSNE

    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", random_state=seed)
    with _threads(n):
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)  # (T, 2)


def nearest_to_center(result: ClusterResult, n: int = 10) -> dict[int, np.ndarray]:
    """The ``n`` members of each cluster closest to its centre (the paper inspects ~10 users per cluster).

    Args:
        result: a clustering.
        n: rows per cluster (fewer when the cluster is smaller).

    Returns:
        cluster -> (<= n,) int64 row indices, closest first (ties by row index); every cluster is a key.
    """
    out: dict[int, np.ndarray] = {}
    for c in range(result.k):
        rows = np.flatnonzero(result.labels == c)  # (n_c,)
        order = np.lexsort((rows, result.distance_to_center[rows]))  # distance, then row
        out[c] = rows[order][: max(n, 0)].astype(np.int64)
    return out
