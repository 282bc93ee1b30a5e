"""K-means++ clusters of intent embeddings and their 2-D map (PAPER §6.7, §10 row 20)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from intentrec.analysis.clusters import cluster_embeddings, embed_2d, nearest_to_center, standardize


def _blobs(n_per: int = 30, centers: int = 3, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=20.0, size=(centers, dim))  # (C, d) far apart
    truth = np.repeat(np.arange(centers), n_per)  # (T,)
    z = means[truth] + rng.normal(scale=0.5, size=(truth.size, dim))  # (T, d)
    perm = rng.permutation(truth.size)
    return z[perm].astype(np.float32), truth[perm]


def test_deterministic_with_seed_and_one_cluster_per_row() -> None:
    z = np.random.default_rng(1).normal(size=(80, 6))
    a = cluster_embeddings(z, k=5, k_range=None, n_init=3, seed=7)
    b = cluster_embeddings(z, k=5, k_range=None, n_init=3, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.labels.shape == (80,) and a.labels.dtype == np.int64
    assert a.labels.min() >= 0 and a.labels.max() < 5
    assert a.centers.shape == (5, 6)
    assert a.sizes().sum() == 80
    assert np.all(np.diff(a.sizes()) <= 0), "clusters are numbered by decreasing size"
    # distance_to_center is the distance to the row's own centre in standardised space
    np.testing.assert_allclose(a.distance_to_center, np.linalg.norm(a.z_std - a.centers[a.labels], axis=1))


def test_separated_blobs_are_recovered() -> None:
    z, truth = _blobs()
    res = cluster_embeddings(z, k=3, k_range=range(2, 6), n_init=5, seed=0)
    assert adjusted_rand_score(truth, res.labels) == pytest.approx(1.0)
    assert set(res.silhouette) == {2, 3, 4, 5}
    assert all(-1.0 <= v <= 1.0 for v in res.silhouette.values())
    assert res.best_k == 3
    json.dumps(res.to_json())  # JSON-safe


def test_silhouette_skips_unscorable_k_and_too_few_users_raise() -> None:
    z = np.random.default_rng(2).normal(size=(6, 3))
    res = cluster_embeddings(z, k=2, k_range=range(1, 10), n_init=2)
    assert set(res.silhouette) == {2, 3, 4, 5}  # K = 1 and K >= T cannot be scored
    with pytest.raises(ValueError, match=r"6 users.*k=6"):
        cluster_embeddings(z, k=10)
    with pytest.raises(ValueError, match="NaN"):
        cluster_embeddings(np.full((5, 2), np.nan), k=2)


def test_standardize_guards_constant_dimensions() -> None:
    z = np.array([[1.0, 3.0], [3.0, 3.0], [5.0, 3.0]])
    z_std, mean, scale = standardize(z)
    np.testing.assert_allclose(mean, [3.0, 3.0])
    np.testing.assert_allclose(z_std[:, 1], 0.0)
    np.testing.assert_allclose(scale, [np.std([1.0, 3.0, 5.0]), 1.0])
    np.testing.assert_allclose(z_std.mean(axis=0), 0.0, atol=1e-12)


def test_nearest_to_center_are_truly_closest() -> None:
    z, _ = _blobs(n_per=25, seed=3)
    res = cluster_embeddings(z, k=3, k_range=None, n_init=2, seed=0)
    near = nearest_to_center(res, n=10)
    assert sorted(near) == [0, 1, 2]
    for c, rows in near.items():
        members = np.flatnonzero(res.labels == c)
        dist = np.linalg.norm(res.z_std[members] - res.centers[c], axis=1)
        expected = members[np.argsort(dist, kind="stable")][:10]
        np.testing.assert_array_equal(rows, expected)
        assert np.all(np.diff(res.distance_to_center[rows]) >= 0)
    assert all(r.size == 3 for r in nearest_to_center(res, n=3).values())


def test_embed_2d_deterministic_and_small_inputs() -> None:
    z, _ = _blobs(n_per=10)
    a = embed_2d(z, perplexity=30, seed=0)  # perplexity clamped below T = 30
    b = embed_2d(z, perplexity=30, seed=0)
    assert a.shape == (30, 2)
    np.testing.assert_array_equal(a, b)
    pca = embed_2d(z, method="pca")
    assert pca.shape == (30, 2) and np.all(np.isfinite(pca))
    tiny = embed_2d(z[:3])  # fewer than 5 rows: PCA fallback
    assert tiny.shape == (3, 2) and np.all(np.isfinite(tiny))
    assert embed_2d(z[:1, :1]).shape == (1, 2)
    with pytest.raises(ValueError, match="unknown 2-D method"):
        embed_2d(z, method="umap")  # type: ignore[arg-type]
