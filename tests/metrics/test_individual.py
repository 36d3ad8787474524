"""kNN graph, individual unfairness and consistency: scikit-learn NearestNeighbors and AIF360's formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.neighbors import NearestNeighbors

from kdfair.errors import DataError, KdfairWarning
from kdfair.metrics import consistency, individual_unfairness, knn_graph
from kdfair.metrics.individual import PCA_SAMPLE_ROWS, pca_project


def knn_distance_tolerance(points: np.ndarray, indices: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """How far apart our and scikit-learn's float64 *squared* distances may be, per (row, neighbour): the
    sum of the two computations' rounding-error bounds (eps = 2.2e-16).

    - scikit-learn (brute force) computes ``|x|^2 - 2 x.y + |y|^2``: a sum of ``dim`` products rounds by up to
      about ``(dim + 2) eps (|x|^2 + |y|^2)``, however close x and y are (cancellation);
    - we compute ``|(x - mean) - (y - mean)|``: centring rounds each coordinate by up to ``eps |x - mean|``,
      which moves the distance d by ``eps (|x - mean| + |y - mean|)``, and the sum of ``dim`` squares by
      ``(dim + 1) eps d``; the squared distance moves by ``2 d`` times that.

    Neither error is relative to d: for close neighbours of points far from the origin a fixed ``rtol`` fails
    (hypothesis found n=10, dim=1, k=4, seed=2441: relative error 2.6e-10 at d = 0.002, |x| = 4.2). Over 3,000
    random cases of this test's strategy the largest error was 0.4 of this bound.
    """
    eps = np.finfo(np.float64).eps
    dim = points.shape[1]
    squared_norms = (points**2).sum(axis=1)
    centred_norms = np.linalg.norm(points - points.mean(axis=0), axis=1)
    sklearn_bound = (dim + 2) * eps * (squared_norms[:, None] + squared_norms[indices])
    centring = centred_norms[:, None] + centred_norms[indices]
    ours_bound = 2 * distances * eps * (centring + (dim + 1) * distances)
    return sklearn_bound + ours_bound


@settings(max_examples=300, deadline=None)
@given(st.integers(10, 400), st.integers(1, 40), st.integers(1, 8), st.integers(0, 2**32 - 1))
@example(n=10, dim=1, k=4, seed=2441)  # relative error 2.6e-10: failed the former rtol=1e-10
def test_knn_graph_matches_sklearn(n, dim, k, seed):
    k = min(k, n - 1)
    points = np.random.default_rng(seed).normal(size=(n, dim)) * 10 + 3
    indices, distances = knn_graph(points, k, max_dim=None)
    expected_distances, expected_indices = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    np.testing.assert_array_equal(indices, expected_indices[:, 1:])
    expected = expected_distances[:, 1:]
    error = np.abs(distances**2 - expected**2)
    assert (error <= knn_distance_tolerance(points, indices, expected)).all(), error.max()


def test_knn_graph_ties_by_index_and_duplicates_at_zero():
    points = np.array([[0.0], [1.0], [-1.0], [0.0]])  # 1 and 2 tie for 0; 3 duplicates 0
    indices, distances = knn_graph(points, 3, max_dim=None)
    np.testing.assert_array_equal(indices[0], [3, 1, 2])
    np.testing.assert_allclose(distances[0], [0.0, 1.0, 1.0])


def test_pca_projection_keeps_top_components():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(500, 5)) * np.array([50, 40, 30, 20, 10])
    points = latent @ rng.normal(size=(5, 300)) + 0.01 * rng.normal(size=(500, 300))
    projected = pca_project(points, 5, seed=0)
    centred = points - points.mean(axis=0)
    _, _, right = np.linalg.svd(centred, full_matrices=False)
    exact = centred @ right[:5].T
    np.testing.assert_allclose(np.abs(projected), np.abs(exact), rtol=1e-6, atol=1e-6)
    indices, _ = knn_graph(points, 4, max_dim=5)
    expected = NearestNeighbors(n_neighbors=5).fit(exact).kneighbors(exact)[1][:, 1:]
    np.testing.assert_array_equal(indices, expected)


def test_pca_on_more_than_the_sample_rows_fits_a_sample_and_projects_every_row():
    """Above ``PCA_SAMPLE_ROWS`` (10,000) rows the directions come from a seeded sample of 10,000 rows; every
    row is still projected, and with a clear low-rank structure the kNN graph is the exact one's."""
    rng = np.random.default_rng(1)
    n = PCA_SAMPLE_ROWS + 2_000
    latent = rng.normal(size=(n, 3)) * np.array([30.0, 20.0, 10.0])
    points = latent @ rng.normal(size=(3, 40)) + 0.01 * rng.normal(size=(n, 40))
    projected = pca_project(points, 3, seed=0)
    assert projected.shape == (n, 3)
    np.testing.assert_array_equal(projected, pca_project(points, 3, seed=0))  # seeded: the same sample
    centred = points - points.mean(axis=0)
    _, _, right = np.linalg.svd(centred, full_matrices=False)
    exact = centred @ right[:3].T  # the exact top 3 components of all rows
    subset = np.arange(0, n, 60)  # 200 of the rows: the same distances within the same 3-d subspace
    distances = np.linalg.norm(projected[subset, None] - projected[None, subset], axis=-1)
    exact_distances = np.linalg.norm(exact[subset, None] - exact[None, subset], axis=-1)
    np.testing.assert_allclose(distances, exact_distances, rtol=0, atol=0.05)  # noise: 0.01 per column
    indices, _ = knn_graph(points, 3, max_dim=3)  # all 12,000 rows, 40 dimensions projected to 3
    expected = NearestNeighbors(n_neighbors=4).fit(exact).kneighbors(exact)[1][:, 1:]
    assert (indices == expected).mean() > 0.99  # near ties may swap through the 0.01 noise


def _aif360_consistency(y_pred, features, k):
    """AIF360 BinaryLabelDatasetMetric.consistency, recomputed: sklearn kNN including the point itself."""
    _, indices = NearestNeighbors(n_neighbors=k).fit(features).kneighbors(features)
    return 1.0 - np.mean(np.abs(y_pred - y_pred[indices].mean(axis=1)))


@settings(max_examples=500, deadline=None)
@given(st.integers(10, 300), st.integers(2, 8), st.integers(0, 2**32 - 1))
def test_binary_consistency_matches_aif360(n, k, seed):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 4))
    y_pred = (features[:, 0] + rng.normal(size=n) > 0).astype(int)
    assert consistency(y_pred, features, k) == pytest.approx(
        _aif360_consistency(y_pred, features, k), abs=1e-12
    )


def test_multiclass_consistency_is_one_vs_rest_average():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(200, 3))
    y_pred = rng.integers(0, 4, 200)
    per_class = [_aif360_consistency((y_pred == c).astype(int), features, 5) for c in range(6)]
    assert consistency(y_pred, features, 5, n_classes=6) == pytest.approx(np.mean(per_class), abs=1e-12)


def _unfairness_by_loops(probs, features, k):
    """SPEC §6 recomputed pair by pair."""
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    scale = np.median(distances[:, 1:])
    ratios = [
        0.5 * np.abs(probs[i] - probs[j]).sum() / (distances[i, col + 1] / scale)
        for i in range(len(probs))
        for col, j in enumerate(indices[i, 1:])
    ]
    return np.mean(ratios)


def test_individual_unfairness_matches_pairwise_recomputation():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(150, 6))
    logits = rng.normal(size=(150, 4)) + features[:, :4]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    value = individual_unfairness(probs, features, 5)
    assert value == pytest.approx(_unfairness_by_loops(probs, features, 5), rel=1e-12)
    graph = knn_graph(features, 8)
    assert individual_unfairness(probs, k=5, neighbors=graph) == pytest.approx(value, rel=1e-12)


def test_individual_unfairness_hand_worked_and_zero_distance_pairs():
    # points 0, 1, 3 on a line, k=1: pairs (0,1) d=1, (1,0) d=1, (2,1) d=2; median 1.
    features = np.array([[0.0], [1.0], [3.0]])
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    # TV: 0.5, 0.5, 0.5 -> ratios 0.5/1, 0.5/1, 0.5/2 -> mean 5/12
    assert individual_unfairness(probs, features, 1) == pytest.approx(5 / 12)
    duplicated = np.vstack([features, [[0.0]]])
    probs4 = np.vstack([probs, [[1.0, 0.0]]])
    with pytest.warns(KdfairWarning, match="left out 2 of 4 pairs at distance 0"):
        value = individual_unfairness(probs4, duplicated, 1)
    # pairs left: (1,0) d=1 and (2,1) d=2, median 1.5 -> ratios 0.5/(1/1.5), 0.5/(2/1.5)
    assert value == pytest.approx((0.75 + 0.375) / 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: individual_unfairness([[0.5, 0.6], [0.5, 0.5]], [[0.0], [1.0]], 1), "probability vectors"),
        (
            lambda: individual_unfairness([[0.5, 0.5], [0.5, 0.5]], [[0.0], [1.0], [2.0]], 1),
            "length mismatch",
        ),
        (lambda: individual_unfairness([[0.5, 0.5]] * 3, [[0.0], [np.inf], [1.0]], 1), "non-finite"),
        (lambda: individual_unfairness([[0.5, 0.5]] * 3, None, 1), "features or neighbors"),
        (lambda: knn_graph([[0.0], [1.0]], 2), "k must be"),
        (lambda: consistency([0, 1, 1], [[0.0], [1.0], [2.0]], 1), "k counts the point itself"),
        (
            lambda: consistency([0, 1, 1], k=3, neighbors=(np.zeros((3, 1), int), np.ones((3, 1)))),
            "neighbours per sample",
        ),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(DataError, match=match):
        call()
