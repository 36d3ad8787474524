"""The permutation null of DPD, EOD and DEO (SPEC §5 "Noise floor"): a slow reference loop over permutations
calling kdfair.metrics.group, an exact enumeration, hand-worked p-values, reproducibility, input errors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from kdfair.errors import DataError, KdfairWarning
from kdfair.metrics import group, noise


def _data(seed: int, n: int, n_classes: int, n_groups: int, accuracy: float = 0.7):
    rng = np.random.default_rng(seed)
    y_true = rng.permutation(np.arange(n) % n_classes)
    groups = rng.integers(0, n_groups, n)
    y_pred = np.where(rng.random(n) < accuracy, y_true, rng.integers(0, n_classes, n))
    return y_true, y_pred, groups


def _reference(y_true, y_pred, codes, n_classes):
    """Every metric by kdfair.metrics.group on one group assignment (the slow oracle)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KdfairWarning)
        return {
            "dpd": group.demographic_parity_difference(
                y_true, y_pred, sensitive_features=codes, n_classes=n_classes
            ),
            "eod": group.equalized_odds_difference(
                y_true, y_pred, sensitive_features=codes, n_classes=n_classes
            ),
            "deo_mean": group.deo(y_true, y_pred, sensitive_features=codes, agg="mean", n_classes=n_classes),
            "deo_max": group.deo(y_true, y_pred, sensitive_features=codes, agg="max", n_classes=n_classes),
        }


CASES = {
    "binary, 2 groups": (2, 2, 120),
    "binary, 3 groups": (2, 3, 150),
    "6 classes, 2 groups": (6, 2, 300),
    "5 classes, 4 groups": (5, 4, 200),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_null_equals_a_loop_over_permutations_of_the_group_functions(case):
    n_classes, n_groups, n = case
    y_true, y_pred, groups = _data(1, n, n_classes, n_groups)
    perms = noise.within_class_permutations(
        y_true, groups, n_classes=n_classes, n_permutations=25, random_state=5
    )
    result = noise.null_distribution(y_pred, perms)
    observed = _reference(y_true, y_pred, groups, n_classes)
    for metric in noise.NULL_METRICS:
        assert result[metric].observed == pytest.approx(observed[metric], rel=1e-12, abs=1e-15)
    for b in range(1, 26):
        expected = _reference(y_true, y_pred, perms.permuted_codes(b), n_classes)
        for metric in noise.NULL_METRICS:
            assert result[metric].null[b - 1] == pytest.approx(expected[metric], rel=1e-12, abs=1e-15)


def test_undefined_cells_are_left_out_as_in_the_group_functions():
    """Class 3 exists only in group 0 (no TPR or DEO gap for it), class 4 only in group 1."""
    y_true, y_pred, groups = _data(2, 240, 5, 2)
    groups[y_true == 3], groups[y_true == 4] = 0, 1
    perms = noise.within_class_permutations(y_true, groups, n_permutations=15, random_state=0)
    result = noise.null_distribution(y_pred, perms)
    for b in (0, 7, 15):
        expected = _reference(y_true, y_pred, perms.permuted_codes(b), 5)
        values = {m: result[m].observed if b == 0 else result[m].null[b - 1] for m in noise.NULL_METRICS}
        assert values == pytest.approx(expected, rel=1e-12)


def test_every_metric_undefined_gives_nan_and_no_p_value():
    """One group per class: every class-wise gap is undefined, so is every DEO; p is NaN."""
    y_true = np.array([0, 0, 1, 1, 2, 2])
    groups = np.array([0, 0, 1, 1, 0, 0])
    result = noise.permutation_null(y_true, y_true, sensitive_features=groups, n_permutations=9)
    assert np.isnan(result["deo_mean"].observed) and np.isnan(result["deo_mean"].null).all()
    assert np.isnan(result["deo_max"].p_value) and np.isnan(result["deo_max"].null_mean)


def test_permutations_stay_within_each_class_and_keep_the_margins():
    y_true, _, groups = _data(3, 400, 7, 3)
    perms = noise.within_class_permutations(y_true, groups, n_permutations=40, random_state=1)
    assert np.array_equal(perms.permuted_codes(0), groups)
    changed = 0
    for b in range(1, 41):
        codes = perms.permuted_codes(b)
        for c in range(7):
            assert np.array_equal(
                np.bincount(codes[y_true == c], minlength=3), np.bincount(groups[y_true == c], minlength=3)
            )
        changed += int(np.any(codes != groups))
    assert changed == 40
    assert perms.n_permutations == 40
    assert np.array_equal(
        perms.positives,
        np.array([[np.sum((groups == g) & (y_true == c)) for c in range(7)] for g in range(3)]),
    )


def test_each_sample_is_equally_likely_to_receive_each_group():
    """Uniform within class: a sample of a class with k of n in group 1 lands in group 1 w.p. k / n."""
    y_true = np.repeat([0, 1], [6, 10])
    groups = np.array([1, 1, 0, 0, 0, 0] + [1] * 5 + [0] * 5)
    perms = noise.within_class_permutations(y_true, groups, n_permutations=20000, random_state=2)
    share = perms.permuted[1:][:, np.argsort(perms.order)].mean(axis=0)
    assert share[:6] == pytest.approx(np.full(6, 2 / 6), abs=0.015)  # SE 0.0033
    assert share[6:] == pytest.approx(np.full(10, 0.5), abs=0.015)


def _exact_null(y_true, y_pred, groups, metric):
    """The exact permutation distribution: every assignment of the group-1 labels within each class."""
    blocks = [np.flatnonzero(y_true == c) for c in np.unique(y_true)]
    choices = [itertools.combinations(b, int(groups[b].sum())) for b in blocks]
    values = []
    for picked in itertools.product(*[list(c) for c in choices]):
        codes = np.zeros_like(groups)
        for positions in picked:
            codes[list(positions)] = 1
        values.append(_reference(y_true, y_pred, codes, None)[metric])
    return np.array(values)


@pytest.mark.parametrize("metric", ["eod", "dpd"])
def test_monte_carlo_null_matches_the_exact_enumeration(metric):
    """3 classes x 4 samples, 2 per group: 6^3 = 216 equally likely assignments, enumerated."""
    y_true = np.repeat([0, 1, 2], 4)
    groups = np.tile([0, 1, 1, 0], 3)
    y_pred = np.array([0, 0, 0, 1, 1, 1, 2, 0, 2, 2, 1, 2])
    exact = _exact_null(y_true, y_pred, groups, metric)
    observed = _reference(y_true, y_pred, groups, None)[metric]
    result = noise.permutation_null(y_true, y_pred, sensitive_features=groups, n_permutations=20000)[metric]
    assert result.observed == pytest.approx(observed)
    assert result.null_mean == pytest.approx(exact.mean(), abs=0.005)
    exact_p = np.mean(exact >= observed - 1e-12)
    assert result.p_value == pytest.approx(exact_p, abs=0.015)  # Monte Carlo SE <= 0.0035


def test_p_value_hand_worked():
    assert noise.permutation_p_value(0.3, [0.1, 0.3, 0.5, 0.2]) == pytest.approx(3 / 5)
    assert noise.permutation_p_value(0.6, [0.1, 0.3, 0.5, 0.2]) == pytest.approx(1 / 5)
    assert noise.permutation_p_value(0.0, [0.1, 0.3]) == pytest.approx(1.0)
    assert noise.permutation_p_value(0.1 + 0.2, [0.3]) == pytest.approx(1.0)  # a tie in exact arithmetic
    assert np.isnan(noise.permutation_p_value(float("nan"), [0.1]))
    result = noise.NullResult(0.3, np.array([0.1, 0.3, 0.5, 0.2]))
    assert (result.null_mean, result.excess) == pytest.approx((0.275, 0.025))
    assert result.null_q95 == pytest.approx(np.quantile([0.1, 0.3, 0.5, 0.2], 0.95))


def test_reproducible_and_independent_of_row_order():
    y_true, y_pred, groups = _data(4, 300, 4, 2)
    ids = np.arange(300) * 7 + 11
    first = noise.within_class_permutations(y_true, groups, n_permutations=30, random_state=9, sample_id=ids)
    again = noise.within_class_permutations(y_true, groups, n_permutations=30, random_state=9, sample_id=ids)
    assert np.array_equal(first.permuted, again.permuted)
    rows = np.random.default_rng(0).permutation(300)
    shuffled = noise.within_class_permutations(
        y_true[rows], groups[rows], n_permutations=30, random_state=9, sample_id=ids[rows]
    )
    a, b = noise.null_distribution(y_pred, first), noise.null_distribution(y_pred[rows], shuffled)
    for metric in noise.NULL_METRICS:
        assert a[metric].observed == pytest.approx(b[metric].observed, rel=1e-12)
        assert np.allclose(a[metric].null, b[metric].null, rtol=1e-12)
    other = noise.within_class_permutations(y_true, groups, n_permutations=30, random_state=10, sample_id=ids)
    assert not np.array_equal(first.permuted, other.permuted)


def test_chunked_indicators_give_the_same_null(monkeypatch):
    y_true, y_pred, groups = _data(5, 200, 3, 3)
    full = noise.null_distribution(y_pred, noise.within_class_permutations(y_true, groups, n_permutations=40))
    monkeypatch.setattr(noise, "INDICATOR_BUDGET_BYTES", 0)
    monkeypatch.setattr(noise, "CHUNK_CELLS", 9 * 7)  # 7 permutations per chunk
    perms = noise.within_class_permutations(y_true, groups, n_permutations=40)
    assert perms.indicator is None
    chunked = noise.null_distribution(y_pred, perms)
    for metric in noise.NULL_METRICS:
        assert np.array_equal(full[metric].null, chunked[metric].null)


def test_seed_mean_null_averages_runs_permutation_by_permutation():
    y_true, y_pred, groups = _data(6, 200, 3, 2)
    perms = noise.within_class_permutations(y_true, groups, n_permutations=20)
    other = np.where(np.arange(200) % 3 == 0, y_true, y_pred)
    runs = [noise.null_distribution(p, perms)["eod"] for p in (y_pred, other)]
    mean = noise.seed_mean_null(runs)
    assert mean.observed == pytest.approx((runs[0].observed + runs[1].observed) / 2)
    assert np.allclose(mean.null, (runs[0].null + runs[1].null) / 2)
    with pytest.raises(DataError, match="different numbers of permutations"):
        noise.seed_mean_null([runs[0], noise.NullResult(0.1, np.zeros(3))])
    with pytest.raises(DataError, match="at least one run"):
        noise.seed_mean_null([])


def test_bad_inputs_raise_clear_errors():
    y_true, y_pred, groups = _data(7, 50, 3, 2)
    for bad in (0, -1):
        with pytest.raises(DataError, match="n_permutations must be >= 1"):
            noise.permutation_null(y_true, y_pred, sensitive_features=groups, n_permutations=bad)
    for bad in (True, 9.5):
        with pytest.raises(DataError, match="n_permutations must be an integer"):
            noise.permutation_null(y_true, y_pred, sensitive_features=groups, n_permutations=bad)
    with pytest.raises(DataError, match="length mismatch"):
        noise.permutation_null(y_true, y_pred[:-1], sensitive_features=groups)
    with pytest.raises(DataError, match="sample_id must have one value per sample"):
        noise.within_class_permutations(y_true, groups, sample_id=np.arange(3))
    with pytest.raises(DataError, match="non-empty 1-D"):
        noise.permutation_p_value(0.1, [])
