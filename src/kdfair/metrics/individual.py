"""Individual fairness (SPEC §6): a k-nearest-neighbour graph, Dwork-style unfairness and AIF360 consistency.

Pairs are each sample with its k nearest neighbours in a representation that is the same for every compared
model (the audit uses the standardised test inputs, or the teacher's penultimate features). One graph,
from :func:`knn_graph`, can be passed as ``neighbors=`` to score many runs.

The distance ``d`` of SPEC §6: Euclidean, in the representation as given when it has at most ``max_dim``
columns, otherwise in the span of its top ``max_dim`` principal components (seeded randomised PCA,
default 128), so that 50,000 x 3,072 inputs take seconds rather than an hour.

The kNN graph's matrix products and candidate selection run in torch where it is installed (the ``train``
extra), else in numpy, which finds the same neighbours (both re-rank their candidates in float64).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from kdfair.errors import DataError, KdfairWarning
from kdfair.extras import optional
from kdfair.metrics.classwise import as_labels, as_probabilities, resolve_n_classes

PCA_OVERSAMPLE = 10  # extra random directions of the randomised range finder (Halko et al. 2011)
PCA_POWER_ITERATIONS = 4  # power iterations: accuracy of the top components on slowly decaying spectra
PCA_SAMPLE_ROWS = 10_000  # rows the principal directions are fitted on (seeded sample)
BLOCK_ROWS = 1024  # query rows per distance block: 1024 x 50,000 float32 = 200 MB at most
EXACT_BLOCK_FLOATS = 4_000_000  # float64 differences per block when re-ranking candidates (32 MB)
CHUNK = 64  # columns per minimum in the kNN candidate filter
TV_BLOCK_FLOATS = 250_000  # probability entries per block of the TV computation: stays in cache
PROBS_ROW_TOLERANCE = 1e-3  # |row sum - 1| allowed for probability vectors


def _as_representation(values: Any, name: str = "features") -> np.ndarray:
    """A finite (N, d) float array (float32 stays float32: a 50,000 x 3,072 input is 600 MB already)."""
    array = np.asarray(values)
    array = array.astype(np.float32 if array.dtype in (np.float16, np.float32) else np.float64, copy=False)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise DataError(f"{name} must be 2-D (N >= 2, d >= 1), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} holds non-finite values")
    return array


def pca_project(representation: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """Project ``representation`` (N, d) on its top ``n_components`` principal directions, (N, n) float64.

    The directions come from a randomised SVD (Halko et al. 2011) of at most ``PCA_SAMPLE_ROWS`` rows drawn
    with ``seed``, centred on their mean; all N rows are then centred and projected.
    """
    rng = np.random.default_rng(seed)
    n = len(representation)
    rows = np.sort(rng.choice(n, size=PCA_SAMPLE_ROWS, replace=False)) if n > PCA_SAMPLE_ROWS else slice(None)
    sample = np.asarray(representation[rows], dtype=np.float64)
    mean = sample.mean(axis=0)
    centred = sample - mean
    width = min(n_components + PCA_OVERSAMPLE, *centred.shape)
    basis = centred @ rng.standard_normal((centred.shape[1], width))
    for _ in range(PCA_POWER_ITERATIONS):
        basis, _ = np.linalg.qr(basis)
        basis = centred @ (centred.T @ basis)
    basis, _ = np.linalg.qr(basis)
    _, _, right = np.linalg.svd(basis.T @ centred, full_matrices=False)
    directions = right[:n_components].T
    projected = np.empty((n, directions.shape[1]))
    step = max(1, EXACT_BLOCK_FLOATS // representation.shape[1])
    for start in range(0, n, step):  # blocks: no float64 copy of the whole (N, d) input
        projected[start : start + step] = (representation[start : start + step] - mean) @ directions
    return projected


def _block_candidates(score: Any, start: int, candidates: int) -> np.ndarray:
    """The ``candidates`` smallest columns of each row of ``score`` (B, N_pad) (its own column excluded).

    Filter, then select: the minimum of every ``CHUNK`` consecutive columns is taken, the ``candidates``
    chunks with the smallest minima are kept (every column among a row's ``candidates`` smallest lies in
    one of them, up to ties), and the smallest columns are picked among their ``candidates x CHUNK``
    columns. Same set as a ``topk`` over the whole row, at the cost of one pass over it. ``score`` is a
    torch tensor; :func:`_block_candidates_numpy` is the same filter for a numpy array.
    """
    import torch

    rows, width = score.shape
    score[torch.arange(rows), torch.arange(start, start + rows)] = float("inf")
    chunks = min(candidates, width // CHUNK)
    minima = score.view(rows, width // CHUNK, CHUNK).amin(dim=2)
    kept = torch.topk(minima, chunks, dim=1, largest=False, sorted=False).indices
    columns = (kept[:, :, None] * CHUNK + torch.arange(CHUNK)).reshape(rows, -1)
    best = torch.topk(score.gather(1, columns), candidates, dim=1, largest=False, sorted=False).indices
    return columns.gather(1, best).numpy()


def _block_candidates_numpy(score: np.ndarray, start: int, candidates: int) -> np.ndarray:
    """:func:`_block_candidates` in numpy: the chunks are every ``width / CHUNK``-th column instead of
    consecutive ones (a minimum over a middle axis runs as fast as torch's; over the last axis, 3x slower).
    """
    rows, width = score.shape
    score[np.arange(rows), np.arange(start, start + rows)] = np.inf
    stride = width // CHUNK  # chunk j holds columns j, j + stride, j + 2 stride, ...
    chunks = min(candidates, stride)
    minima = score.reshape(rows, CHUNK, stride).min(axis=1)
    kept = np.argpartition(minima, chunks - 1, axis=1)[:, :chunks]
    columns = (kept[:, :, None] + np.arange(CHUNK) * stride).reshape(rows, -1)
    best = np.argpartition(np.take_along_axis(score, columns, axis=1), candidates - 1, axis=1)
    return np.take_along_axis(columns, best[:, :candidates], axis=1)


def _nearest_candidates(problem: KnnProblem, score: np.ndarray, first: int, torch: Any) -> np.ndarray:
    """Fill ``score`` (B, N_pad) with the float32 scores of rows ``first .. first + B`` against all rows and
    return each row's candidates; with torch (a module) or, if None, with numpy."""
    query = problem.data32[first : first + len(score)]
    if torch is None:
        np.matmul(query, problem.data32.T, out=score)
        score *= -2.0
        score += problem.norms32
        return _block_candidates_numpy(score, first, problem.candidates)
    norms = torch.from_numpy(problem.norms32).expand(len(score), -1)
    out = torch.from_numpy(score)  # the same memory
    torch.addmm(norms, torch.from_numpy(query), torch.from_numpy(problem.data32).T, alpha=-2.0, out=out)
    return _block_candidates(out, first, problem.candidates)


@dataclass(frozen=True)
class KnnProblem:
    """A kNN graph to compute, prepared by :func:`prepare_knn`; :func:`knn_rows` fills any row range of it
    (so processes sharing the output arrays can split the rows)."""

    points: np.ndarray  # (N, d') float64, centred (and projected)
    data32: np.ndarray  # (N padded to CHUNK, d') float32; padding rows are zero
    norms32: np.ndarray  # squared norms of data32, +inf on padding rows (never chosen)
    k: int
    candidates: int  # float32 candidates per row, re-ranked in float64
    block_rows: int  # query rows per matrix product

    @property
    def n(self) -> int:
        return len(self.points)


def prepare_knn(representation: Any, k: int = 5, *, max_dim: int | None = 128, seed: int = 0) -> KnnProblem:
    """Validate, project (more than ``max_dim`` columns: :func:`pca_project` with ``seed``) and centre the
    representation for :func:`knn_rows`; centring keeps float32 norms small (fewer cancellation errors)."""
    points = _as_representation(representation, "representation")
    n = len(points)
    if not 1 <= k < n:
        raise DataError(f"knn_graph: k must be in [1, N-1] = [1, {n - 1}], got {k}")
    if max_dim is not None and points.shape[1] > max_dim:
        points = pca_project(points, max_dim, seed)
    points = np.asarray(points, dtype=np.float64)
    points = points - points.mean(axis=0)
    candidates = min(2 * k, n - 1)
    width = -(-n // CHUNK) * CHUNK
    data32 = np.zeros((width, points.shape[1]), dtype=np.float32)
    data32[:n] = points
    norms32 = np.full(width, np.inf, dtype=np.float32)
    norms32[:n] = (data32[:n] * data32[:n]).sum(axis=1)
    rows = max(1, min(BLOCK_ROWS, EXACT_BLOCK_FLOATS // (candidates * points.shape[1])))
    return KnnProblem(points, data32, norms32, k, candidates, rows)


def knn_rows(
    problem: KnnProblem,
    start: int,
    stop: int,
    indices: np.ndarray,
    distances: np.ndarray,
    progress: bool = False,
) -> None:
    """Fill rows ``[start, stop)`` of ``indices`` (N, k) and ``distances`` (N, k) of the problem's graph.

    Per block of query rows: float32 scores ``||b||^2 - 2 a.b`` (ordered like ``||a - b||^2``) against all
    rows by one matrix product (torch's threads, or numpy's BLAS without torch), ``candidates`` per row
    (:func:`_block_candidates`), re-ranked by float64 Euclidean distance, ties by index. ``progress``
    shows a bar on a terminal.
    """
    points, k, step = problem.points, problem.k, problem.block_rows
    torch = optional("torch")
    buffer = np.empty((min(step, stop - start), len(problem.norms32)), dtype=np.float32)  # reused
    blocks = range(start, stop, step)
    for first in tqdm(blocks, desc="knn graph", disable=None if progress else True, leave=False):
        last = min(first + step, stop)
        nearest = _nearest_candidates(problem, buffer[: last - first], first, torch)
        exact = np.sqrt(((points[first:last, None, :] - points[nearest]) ** 2).sum(axis=2))
        order = np.lexsort((nearest, exact), axis=1)[:, :k]
        indices[first:last] = np.take_along_axis(nearest, order, axis=1)
        distances[first:last] = np.take_along_axis(exact, order, axis=1)


def knn_graph(
    representation: Any, k: int = 5, *, max_dim: int | None = 128, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each row, itself excluded: ``(indices (N, k) int64, distances (N, k))``.

    Euclidean distances, ascending (ties by index). Candidates come from float32 block matrix products,
    2k per row, and are re-ranked with float64 distances (:func:`knn_rows`). A representation with more
    than ``max_dim`` columns is first projected on its top ``max_dim`` principal components
    (:func:`pca_project`, ``seed``); ``max_dim=None`` never projects. A duplicate row is a neighbour at
    distance 0.
    """
    problem = prepare_knn(representation, k, max_dim=max_dim, seed=seed)
    indices = np.empty((problem.n, k), dtype=np.int64)
    distances = np.empty((problem.n, k), dtype=np.float64)
    knn_rows(problem, 0, problem.n, indices, distances, progress=problem.n > 4 * BLOCK_ROWS)
    return indices, distances


def _neighbors_or_graph(
    neighbors: tuple[np.ndarray, np.ndarray] | None, features: Any, n: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` columns of a given graph (checked against ``n`` rows), or a graph of ``features``."""
    if neighbors is None:
        if features is None:
            raise DataError("give features or neighbors=(indices, distances)")
        indices, distances = knn_graph(features, k)
        if len(indices) != n:
            raise DataError(f"length mismatch: features has {len(indices)} rows, predictions have {n}")
        return indices, distances
    indices, distances = (np.asarray(part) for part in neighbors)
    if indices.shape != distances.shape or indices.ndim != 2 or len(indices) != n:
        raise DataError(f"neighbors must be two (N={n}, k) arrays, got {indices.shape} and {distances.shape}")
    if indices.shape[1] < k:
        raise DataError(f"neighbors has {indices.shape[1]} neighbours per sample, k={k} asked")
    if indices.dtype.kind not in "iu" or indices.min() < 0 or indices.max() >= n:
        raise DataError(f"neighbors indices must be integers in [0, {n})")
    return indices[:, :k].astype(np.int64), distances[:, :k].astype(np.float64)


def individual_unfairness(
    probs: Any,
    features: Any = None,
    k: int = 5,
    *,
    neighbors: tuple[np.ndarray, np.ndarray] | None = None,
    validated: bool = False,
) -> float:
    """``I(f) = mean over pairs (x, x') of TV(f(x), f(x')) / d(x, x')``, unitless; lower is fairer (SPEC §6).

    Pairs: each sample with its ``k`` nearest neighbours in ``features`` (or the given ``neighbors`` graph).
    ``TV`` = total variation distance of the probability vectors (0.5 x L1, in [0, 1]); ``d`` = Euclidean
    distance divided by the median distance of the pairs used. Pairs at distance 0 are left out with one
    warning giving their count; NaN if no pair is left. ``validated=True`` skips the checks that ``probs``
    is a finite (N, C) float32/float64 array of probability vectors (three passes over it): for callers
    that made it so, like the audit with :func:`kdfair.predictions.load_predictions`' output.
    """
    if validated and isinstance(probs, np.ndarray) and probs.dtype in (np.float32, np.float64):
        scores = probs
    else:
        scores = as_probabilities(probs)
        if np.any(scores < 0) or np.any(np.abs(scores.sum(axis=1) - 1.0) > PROBS_ROW_TOLERANCE):
            raise DataError("probs rows must be probability vectors (non-negative, summing to 1)")
    indices, distances = _neighbors_or_graph(neighbors, features, len(scores), k)
    total_variation = np.empty(indices.shape)
    block = max(1, TV_BLOCK_FLOATS // scores.shape[1])
    gaps_buffer = np.empty((min(block, len(scores)), scores.shape[1]), dtype=scores.dtype)  # reused
    for start in range(0, len(scores), block):
        rows = slice(start, start + block)
        gaps = gaps_buffer[: len(scores[rows])]
        for column in range(indices.shape[1]):
            np.subtract(scores[rows], scores[indices[rows, column]], out=gaps)
            np.abs(gaps, out=gaps)
            total_variation[rows, column] = 0.5 * gaps.sum(axis=1, dtype=np.float64)
    used = distances > 0
    if not used.all():
        message = f"individual_unfairness: left out {int((~used).sum())} of {used.size} pairs at distance 0"
        warnings.warn(message, KdfairWarning, stacklevel=2)
    if not used.any():
        return float("nan")
    scale = float(np.median(distances[used]))
    return float(np.mean(total_variation[used] / (distances[used] / scale)))


def consistency(
    y_pred: Any,
    features: Any = None,
    k: int = 5,
    *,
    neighbors: tuple[np.ndarray, np.ndarray] | None = None,
    n_classes: int | None = None,
) -> float:
    """AIF360's consistency ``1 - mean_i |yhat_i - mean_{j in kNN(i)} yhat_j|``, a fraction (SPEC §6).

    As in AIF360, the ``k`` neighbours of a point include the point itself (so ``k - 1`` others, taken from
    ``neighbors`` when given). Binary predictions (``n_classes`` 2): AIF360's formula on the 0/1 labels.
    Multi-class: AIF360's formula on labels is meaningless, so kdfair averages the binary consistency of
    ``1[yhat = c]`` over all C classes, unweighted; this equals ``1 - (2 / C) mean_i (1 - s_i)`` with
    ``s_i`` the share of i's neighbourhood predicted as ``yhat_i`` (for C = 2 it is AIF360's value).
    """
    pred = as_labels(y_pred, "y_pred", n_classes)
    n_classes = resolve_n_classes(n_classes, pred)
    if k < 2:
        raise DataError(f"consistency: k counts the point itself and must be >= 2, got {k}")
    indices, _ = _neighbors_or_graph(neighbors, features, len(pred), k - 1)
    same = (pred[indices] == pred[:, None]).sum(axis=1) + 1  # the point itself agrees with itself
    share = same / k
    return float(1.0 - (2.0 / n_classes) * np.mean(1.0 - share))
