"""The noise floor of group-fairness metrics: a permutation null within each true class (SPEC §5).

DPD, EOD and DEO are max - min statistics over (class, group) cells, so on a finite test set they are positive
even when a model's errors have nothing to do with the group. The null permutes the protected attribute
*within each true class*: it keeps the predictions, the class-wise error rates and the class-by-group counts,
and breaks only the tie between errors and group. For each of B permutations the metrics are recomputed from
counts, all permutations at once:

* ``true_positives[g][c, b]`` (group-g samples of class c predicted c) and the false positives (group-g
  samples of another class predicted c) are one sparse product each: the (C, N) one-hot matrix of the hits
  (of the misses) times the (N, (1 + B) (G - 1)) indicators of the groups 1..G-1, observed and permuted;
  group 0 is the total minus the others.
* Every denominator (group sizes, positives and negatives per (group, class)) is the same in every
  permutation, so a rate undefined in the data is undefined, and left out, in every permutation, exactly as in
  :mod:`kdfair.metrics.group` (whose functions warn about it; this module does not warn again).

The observed value is column 0 of the same arrays and goes through the same arithmetic as the null draws, so
equal values compare equal;
``null >= observed`` uses a relative tolerance of 100 machine epsilons, as ``scipy.stats.permutation_test``
does. The p-value is ``(1 + #{null >= observed}) / (1 + B)`` (SPEC §5): never 0, and valid under the null
(``P(p <= a) <= a``), conservative where the statistic has ties.

The permutations depend only on the labels, the groups, B and the seed, not on the predictions, so one set
serves every run of an audit (the runs share the test set): a run's p-value is unchanged, and the mean over
seeds has an exact null of its own (:func:`seed_mean_null`). With ``sample_id`` the permutations are drawn in
``(class, sample_id)`` order, so they do not depend on the row order of the files either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from kdfair.errors import DataError
from kdfair.metrics.classwise import as_groups, as_labels, check_same_length, resolve_n_classes

NULL_METRICS = ("dpd", "eod", "deo_mean", "deo_max")
DEFAULT_PERMUTATIONS = 999  # smallest p = 0.001: p = 0.01 is resolved, and BH over ~50 tests can reject
DEFAULT_SEED = 20261203  # the date SPEC §5 gained the noise floor; any fixed integer would do
NULL_QUANTILE = 0.95  # the reported upper end of the null ("null_q95"), numpy's linear interpolation
TIE_EPSILONS = 100  # relative tolerance of ``null >= observed``, in machine epsilons (as scipy)
INDICATOR_BUDGET_BYTES = 256 * 2**20  # above this the permuted-group indicators are built per chunk
CHUNK_CELLS = 2**22  # (permutations x groups x classes) values per chunk of the null computation


@dataclass(frozen=True)
class WithinClassPermutations:
    """B permutations of one attribute's group codes within each true class, and the fixed margins.

    Everything per sample is kept in ``order`` (the rows sorted by class, then by ``sample_id`` or position):
    ``y_sorted = y_true[order]``, and ``permuted[b, j]`` is the group code the sample in row ``order[j]`` gets
    in permutation b, for b = 1..B; row 0 holds the observed codes. ``size`` (G,): samples per group;
    ``positives`` (G, C): class-c samples per group (the same in every permutation). ``indicator``: the
    (N, (1 + B) (G - 1)) float indicators ``permuted[b, j] == g`` for g >= 1 (column ``b (G - 1) + g - 1``),
    or None when larger than ``INDICATOR_BUDGET_BYTES`` (then built per chunk of permutations).
    """

    order: np.ndarray  # (N,) int64 row indices
    y_sorted: np.ndarray  # (N,) int64
    groups: np.ndarray  # (G,) group names
    n_classes: int
    permuted: np.ndarray  # (1 + B, N), the smallest integer type that holds G codes; row 0 observed
    size: np.ndarray
    positives: np.ndarray
    indicator: np.ndarray | None

    @property
    def n_permutations(self) -> int:
        """B, the number of permutations (``permuted`` has one more row: the observed codes)."""
        return int(self.permuted.shape[0]) - 1

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_samples(self) -> int:
        return len(self.order)

    def permuted_codes(self, index: int) -> np.ndarray:
        """(N,) the group codes of permutation ``index`` (1..B; 0: observed) in the data's row order."""
        codes = np.empty(self.n_samples, dtype=np.int64)
        codes[self.order] = self.permuted[index]
        return codes


@dataclass(frozen=True)
class NullResult:
    """One metric's observed value (a fraction) and its B permutation-null values."""

    observed: float
    null: np.ndarray  # (B,)

    @property
    def null_mean(self) -> float:
        """The noise floor: the metric's mean under the null (a fraction; NaN when undefined)."""
        return float(np.mean(self.null)) if np.isfinite(self.observed) else float("nan")

    @property
    def null_q95(self) -> float:
        """The null's 95th percentile (a fraction)."""
        return float(np.quantile(self.null, NULL_QUANTILE)) if np.isfinite(self.observed) else float("nan")

    @property
    def excess(self) -> float:
        """Observed minus the null mean (a fraction): the disparity beyond the noise floor."""
        return self.observed - self.null_mean

    @property
    def p_value(self) -> float:
        """``(1 + #{null >= observed}) / (1 + B)``; NaN when the metric is undefined."""
        return permutation_p_value(self.observed, self.null)


def permutation_p_value(observed: float, null: Any) -> float:
    """One-sided permutation p-value ``(1 + #{null >= observed}) / (1 + B)`` (SPEC §5).

    ``null >= observed`` holds within a relative tolerance of ``TIE_EPSILONS`` machine epsilons, so that
    values equal in exact arithmetic count as ties. NaN when ``observed`` is NaN.
    """
    draws = np.asarray(null, dtype=np.float64)
    if draws.ndim != 1 or len(draws) == 0:
        raise DataError(f"null must be a non-empty 1-D array, got shape {draws.shape}")
    if not np.isfinite(observed):
        return float("nan")
    tolerance = TIE_EPSILONS * np.finfo(np.float64).eps * abs(observed)
    return float((1 + np.count_nonzero(draws >= observed - tolerance)) / (1 + len(draws)))


def _rng(random_state: int | np.random.Generator | np.random.SeedSequence | None) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(DEFAULT_SEED if random_state is None else random_state)


def _class_order(y_true: np.ndarray, sample_id: Any) -> np.ndarray:
    """Row indices sorted by class (then by ``sample_id`` when given, else stably by position)."""
    if sample_id is None:
        return np.argsort(y_true, kind="stable")
    ids = np.asarray(sample_id)
    if ids.shape != y_true.shape:
        raise DataError(f"sample_id must have one value per sample ({len(y_true)}), got shape {ids.shape}")
    return np.lexsort((ids, y_true))


def _draw(
    class_sorted: np.ndarray, codes_sorted: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """(1 + B, N) group codes: row 0 ``codes_sorted``, rows 1..B shuffled within each class block.

    ``class_sorted`` is non-decreasing; each block of equal class is shuffled independently in every row
    (``Generator.permuted``, a Fisher-Yates shuffle per row): a uniform within-class permutation.
    """
    n = len(class_sorted)
    dtype = np.int8 if codes_sorted.max(initial=0) < 127 else np.int32
    permuted = np.empty((1 + n_permutations, n), dtype=dtype)
    permuted[0] = codes_sorted
    bounds = np.flatnonzero(np.diff(class_sorted, prepend=-1, append=-1))
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        block = np.broadcast_to(codes_sorted[start:stop].astype(dtype), (n_permutations, stop - start))
        permuted[1:, start:stop] = rng.permuted(block, axis=1)
    return permuted


def _indicator(permuted: np.ndarray, n_groups: int) -> np.ndarray:
    """C-contiguous (N, R (G - 1)) indicators ``permuted[r, j] == g`` for g = 1..G-1.

    Column ``r (G - 1) + g - 1``; float32 (exact counts below 2**24 samples), else float64.
    """
    dtype = np.float32 if permuted.shape[1] < 2**24 else np.float64
    out = np.empty((permuted.shape[1], permuted.shape[0], n_groups - 1), dtype=dtype)
    for g in range(1, n_groups):
        np.equal(permuted.T, g, out=out[:, :, g - 1], casting="unsafe")
    return out.reshape(permuted.shape[1], -1)


def within_class_permutations(
    y_true: Any,
    sensitive_features: Any,
    *,
    n_classes: int | None = None,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    random_state: int | np.random.Generator | np.random.SeedSequence | None = DEFAULT_SEED,
    sample_id: Any = None,
) -> WithinClassPermutations:
    """Draw ``n_permutations`` permutations of ``sensitive_features`` within each class of ``y_true``.

    Reproducible: the same inputs and ``random_state`` give the same permutations (no global RNG). With
    ``sample_id`` they are drawn in ``(class, sample_id)`` order, independent of the row order.
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int | np.integer):
        raise DataError(f"n_permutations must be an integer, got {n_permutations!r}")
    if n_permutations < 1:
        raise DataError(f"n_permutations must be >= 1, got {n_permutations}")
    true = as_labels(y_true, "y_true", n_classes)
    n = check_same_length(y_true=true)
    n_classes = resolve_n_classes(n_classes, true, true)
    codes, groups = as_groups(sensitive_features, n)
    order = _class_order(true, sample_id)
    permuted = _draw(true[order], codes[order], int(n_permutations), _rng(random_state))
    bytes_needed = n * (1 + n_permutations) * (len(groups) - 1) * 4
    cells = len(groups) * n_classes
    return WithinClassPermutations(
        order=order,
        y_sorted=true[order],
        groups=groups,
        n_classes=n_classes,
        permuted=permuted,
        size=np.bincount(codes, minlength=len(groups)),
        positives=np.bincount(codes * n_classes + true, minlength=cells).reshape(len(groups), n_classes),
        indicator=_indicator(permuted, len(groups)) if bytes_needed <= INDICATOR_BUDGET_BYTES else None,
    )


def _one_hot(labels: np.ndarray, rows: np.ndarray, n_classes: int, n: int) -> scipy.sparse.csr_matrix:
    """(C, N) sparse matrix with a 1 at (labels[k], rows[k])."""
    ones = np.ones(len(rows), dtype=np.float32)
    return scipy.sparse.csr_matrix((ones, (labels, rows)), shape=(n_classes, n))


def _per_group(rest: np.ndarray, totals: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Per group a (C, R) count array: groups 1..G-1 from the (C, R (G - 1)) product, group 0 the rest."""
    others = [rest[:, g - 1 :: n_groups - 1] for g in range(1, n_groups)]
    return [totals[:, None] - sum(others[1:], others[0]), *others]


def _counts(
    perms: WithinClassPermutations, pred_sorted: np.ndarray, start: int, stop: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per group, (C, R) counts of predictions and of hits (true positives) of rows ``start:stop``.

    Row 0 is the observed data, rows 1..B the permutations. ``pred_sorted = y_pred[perms.order]``.
    """
    n, c, g, rows = perms.n_samples, perms.n_classes, perms.n_groups, stop - start
    hit = pred_sorted == perms.y_sorted
    hits, misses = np.flatnonzero(hit), np.flatnonzero(~hit)
    totals_hit = np.bincount(perms.y_sorted[hits], minlength=c).astype(np.float64)
    totals_miss = np.bincount(pred_sorted[misses], minlength=c).astype(np.float64)
    if g == 1:
        return [np.repeat((totals_hit + totals_miss)[:, None], rows, 1)], [
            np.repeat(totals_hit[:, None], rows, 1)
        ]
    if perms.indicator is not None:
        columns = perms.indicator[:, start * (g - 1) : stop * (g - 1)]
        columns = columns if columns.flags.c_contiguous else np.ascontiguousarray(columns)
    else:
        columns = _indicator(perms.permuted[start:stop], g)
    true_positives = _per_group(_one_hot(perms.y_sorted[hits], hits, c, n) @ columns, totals_hit, g)
    false_positives = _per_group(_one_hot(pred_sorted[misses], misses, c, n) @ columns, totals_miss, g)
    predicted = [tp + fp for tp, fp in zip(true_positives, false_positives, strict=True)]
    return predicted, true_positives


def _gaps(numerators: list[np.ndarray], denominator: np.ndarray) -> np.ndarray:
    """(K, R) max - min over groups of ``numerators[g] / denominator[g]`` where the denominator is > 0.

    ``numerators``: per group (K, R); ``denominator`` (G, K), the same in every column: the arithmetic of
    kdfair.metrics.group's ``_rate_gaps``, NaN where fewer than ``min(2, G)`` groups have a defined rate.
    """
    defined = denominator > 0
    if len(numerators) == 2:  # max - min of two rates is |r0 - r1|, bit for bit
        gap = numerators[0] / np.maximum(denominator[0], 1)[:, None]
        gap -= numerators[1] / np.maximum(denominator[1], 1)[:, None]
        np.abs(gap, out=gap)
        gap[~defined.all(axis=0)] = np.nan
        return gap
    highest = np.full(numerators[0].shape, -np.inf)
    lowest = np.full(numerators[0].shape, np.inf)
    for numerator, below, present in zip(numerators, np.maximum(denominator, 1), defined, strict=True):
        rate = numerator / below[:, None]
        np.maximum(highest, rate, out=highest, where=present[:, None])
        np.minimum(lowest, rate, out=lowest, where=present[:, None])
    highest -= lowest
    highest[defined.sum(axis=0) < min(2, len(numerators))] = np.nan
    return highest


def _over_classes(values: np.ndarray, how: str) -> np.ndarray:
    """(R,) mean or max over the classes (rows) with a defined value; NaN when there are none.

    The defined rows are the same in every column (the denominators do not change under the null).
    """
    defined = ~np.isnan(values[:, 0])
    if not defined.any():
        return np.full(values.shape[1], np.nan)
    kept = values if defined.all() else values[defined]
    return kept.mean(axis=0) if how == "mean" else kept.max(axis=0)


def metrics_from_counts(
    predicted: list[np.ndarray], true_positives: list[np.ndarray], size: np.ndarray, positives: np.ndarray
) -> dict[str, np.ndarray]:
    """DPD, EOD, mean-DEO and max-DEO (R,) of R count tables (fractions; SPEC §5, kdfair.metrics.group).

    ``predicted``, ``true_positives``: per group, (C, R) counts; ``size`` (G,) and ``positives`` (G, C): the
    margins. DPD and EOD score class 1 of a binary task, every class otherwise; DEO every class. The TPR gap
    of a scored class is its DEO gap (both are max - min of ``P(Yhat = c | Y = c, A = g)``).
    """
    scored = slice(1, 2) if positives.shape[1] == 2 else slice(None)
    positives = positives.astype(np.float64)
    group_size = np.broadcast_to(size.astype(np.float64)[:, None], positives[:, scored].shape)
    deo = _gaps(true_positives, positives)
    selected = [p[scored] for p in predicted]
    dpd = _gaps(selected, group_size)
    false = [p - t[scored] for p, t in zip(selected, true_positives, strict=True)]
    fpr = _gaps(false, group_size - positives[:, scored])
    return {
        "dpd": _over_classes(dpd, "mean"),
        "eod": _over_classes(np.fmax(deo[scored], fpr), "mean"),
        "deo_mean": _over_classes(deo, "mean"),
        "deo_max": _over_classes(deo, "max"),
    }


def null_distribution(y_pred: Any, perms: WithinClassPermutations) -> dict[str, NullResult]:
    """Every metric of ``NULL_METRICS`` for ``y_pred`` and under each permutation of ``perms``.

    ``y_pred`` (N,) in the row order of the data ``perms`` was drawn from. Returns metric ->
    :class:`NullResult` (fractions). Permutations are processed in chunks of about ``CHUNK_CELLS``
    (permutation, group, class) cells.
    """
    pred = as_labels(y_pred, "y_pred", perms.n_classes)
    check_same_length(y_true=perms.y_sorted, y_pred=pred)
    pred_sorted = pred[perms.order]
    rows = perms.n_permutations + 1
    step = max(1, CHUNK_CELLS // (perms.n_groups * perms.n_classes))
    chunks = []
    for start in range(0, rows, step):
        counts = _counts(perms, pred_sorted, start, min(start + step, rows))
        chunks.append(metrics_from_counts(*counts, perms.size, perms.positives))
    values = {name: np.concatenate([chunk[name] for chunk in chunks]) for name in NULL_METRICS}
    return {name: NullResult(float(v[0]), v[1:]) for name, v in values.items()}


def permutation_null(
    y_true: Any,
    y_pred: Any,
    *,
    sensitive_features: Any,
    n_classes: int | None = None,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    random_state: int | np.random.Generator | np.random.SeedSequence | None = DEFAULT_SEED,
) -> dict[str, NullResult]:
    """The noise floor of DPD, EOD, mean-DEO and max-DEO: metric -> observed value and permutation null.

    The null permutes ``sensitive_features`` within each class of ``y_true``, ``n_permutations`` times
    (SPEC §5). Each :class:`NullResult` gives ``observed``, ``null_mean``, ``null_q95``, ``excess`` and
    ``p_value = (1 + #{null >= observed}) / (1 + B)``, all fractions except the p-value. ``observed`` equals
    :func:`kdfair.metrics.group.equalized_odds_difference` etc. Reproducible for a fixed ``random_state``.
    """
    true = as_labels(y_true, "y_true", n_classes)
    pred = as_labels(y_pred, "y_pred", n_classes)
    check_same_length(y_true=true, y_pred=pred)
    n_classes = resolve_n_classes(n_classes, true, pred)
    perms = within_class_permutations(
        true,
        sensitive_features,
        n_classes=n_classes,
        n_permutations=n_permutations,
        random_state=random_state,
    )
    return null_distribution(pred, perms)


def seed_mean_null(results: list[NullResult]) -> NullResult:
    """The mean over runs (seeds) of one metric and its exact null; the nulls must share their permutations.

    When every run's null used the same permutations of the shared test set's groups (as in the audit),
    permutation b of the mean is the mean of the runs' permutation b: a permutation test of the seed mean.
    """
    if not results:
        raise DataError("seed_mean_null needs at least one run")
    lengths = {len(r.null) for r in results}
    if len(lengths) != 1:
        raise DataError(f"the runs' nulls have different numbers of permutations: {sorted(lengths)}")
    observed = float(np.mean([r.observed for r in results]))
    return NullResult(observed, np.mean([r.null for r in results], axis=0))
