"""Welch class tests and Benjamini-Hochberg (scipy's, around kdfair's NaN handling): scipy as the oracle,
hand-worked cases, undefined cases, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from kdfair.errors import DataError, KdfairError, KdfairWarning
from kdfair.stats import benjamini_hochberg, welch_class_test


@st.composite
def seed_groups(draw):
    """Class accuracies (seeds x C) and overall accuracies of two run groups, unequal sizes and spreads."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_classes = draw(st.integers(1, 60))
    seeds_a, seeds_b = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    base = rng.uniform(0.3, 0.95, n_classes)
    shift = draw(st.floats(0, 0.1)) * rng.normal(size=n_classes)
    class_a = np.clip(base + draw(st.floats(1e-4, 0.05)) * rng.normal(size=(seeds_a, n_classes)), 0, 1)
    class_b = np.clip(
        base + shift + draw(st.floats(1e-4, 0.05)) * rng.normal(size=(seeds_b, n_classes)), 0, 1
    )
    overall_a, overall_b = rng.uniform(0.6, 0.9, seeds_a), rng.uniform(0.6, 0.9, seeds_b)
    return class_a, overall_a, class_b, overall_b


@settings(max_examples=1000, deadline=None)
@given(seed_groups(), st.sampled_from([None, "bh"]))
def test_welch_matches_scipy(groups, correction):
    class_a, overall_a, class_b, overall_b = groups
    result = welch_class_test(class_a, overall_a, class_b, overall_b, correction=correction)
    ratio_a, ratio_b = class_a / overall_a[:, None], class_b / overall_b[:, None]
    expected = scipy_stats.ttest_ind(ratio_a, ratio_b, axis=0, equal_var=False).pvalue
    np.testing.assert_allclose(result.p_values, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(result.mean_change, ratio_b.mean(axis=0) - ratio_a.mean(axis=0))
    expected_bh = scipy_stats.false_discovery_control(expected, method="bh")
    np.testing.assert_allclose(result.p_values_bh, expected_bh, rtol=1e-12)
    tested = expected_bh if correction == "bh" else expected
    np.testing.assert_array_equal(result.significant, tested <= 0.05)
    assert result.count == int(np.sum(tested <= 0.05))
    assert not result.undefined.any()


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=0, max_size=80))
def test_benjamini_hochberg_matches_scipy_ignoring_nans(p_values):
    p = np.array(p_values, dtype=np.float64)
    adjusted = benjamini_hochberg(p)
    finite = ~np.isnan(p)
    np.testing.assert_array_equal(np.isnan(adjusted), ~finite)
    if finite.any():
        expected = scipy_stats.false_discovery_control(p[finite], method="bh")
        np.testing.assert_allclose(adjusted[finite], expected, rtol=1e-12, atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(seed_groups(), st.integers(0, 2**32 - 1), st.sampled_from([None, "bh"]))
def test_welch_invariant_to_seed_order_and_permutes_with_classes(groups, seed, correction):
    class_a, overall_a, class_b, overall_b = groups
    rng = np.random.default_rng(seed)
    base = welch_class_test(class_a, overall_a, class_b, overall_b, correction=correction)
    # seed order within each group: a seed's class accuracies travel with its overall accuracy
    order_a, order_b = rng.permutation(len(overall_a)), rng.permutation(len(overall_b))
    shuffled = welch_class_test(
        class_a[order_a], overall_a[order_a], class_b[order_b], overall_b[order_b], correction=correction
    )
    np.testing.assert_allclose(shuffled.p_values, base.p_values, rtol=1e-10)
    np.testing.assert_array_equal(shuffled.significant, base.significant)
    # permuting the classes permutes every per-class result and leaves the count unchanged
    mapping = rng.permutation(class_a.shape[1])
    permuted = welch_class_test(
        class_a[:, mapping], overall_a, class_b[:, mapping], overall_b, correction=correction
    )
    np.testing.assert_allclose(permuted.p_values, base.p_values[mapping], rtol=1e-10)
    np.testing.assert_allclose(permuted.p_values_bh, base.p_values_bh[mapping], rtol=1e-10)
    np.testing.assert_allclose(permuted.mean_change, base.mean_change[mapping], rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(permuted.significant, base.significant[mapping])
    assert permuted.count == base.count


NAN = float("nan")


@pytest.mark.parametrize(
    ("p_values", "expected"),
    [
        # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> p m / rank = 0.04, 0.04, 0.04, 0.5; step-up minimum unchanged
        ([0.03, 0.5, 0.01, 0.02], [0.04, 0.5, 0.04, 0.04]),
        # NaN is no test: m = 3; 0.01, 0.03, 0.04 -> 0.03, 0.045, 0.04 -> step-up minimum 0.03, 0.04, 0.04
        ([0.01, NAN, 0.04, 0.03], [0.03, NAN, 0.04, 0.04]),
        # ties: 0.02, 0.02, 0.5 -> 0.06, 0.03, 0.5 -> 0.03, 0.03, 0.5
        ([0.5, 0.02, 0.02], [0.5, 0.03, 0.03]),
        ([0.2], [0.2]),
        ([NAN, NAN], [NAN, NAN]),
        ([], []),
    ],
)
def test_benjamini_hochberg_hand_worked(p_values, expected):
    np.testing.assert_allclose(benjamini_hochberg(p_values), expected, rtol=1e-12)


def test_zero_variance_in_both_groups_is_undefined_with_one_warning():
    class_a = np.array([[0.5, 0.8, 0.6, 0.7], [0.5, 0.7, 0.6, 0.7]])
    class_b = np.array([[0.5, 0.6, 0.9, 0.7], [0.5, 0.5, 0.8, 0.7]])
    overall = np.array([0.8, 0.8])
    with pytest.warns(KdfairWarning, match=r"undefined for 2 classes .*: 0, 3") as record:
        result = welch_class_test(class_a, overall, class_b, overall)
    assert len(record) == 1
    np.testing.assert_array_equal(result.undefined, [True, False, False, True])
    assert np.isnan(result.p_values[[0, 3]]).all() and np.isnan(result.p_values_bh[[0, 3]]).all()
    assert not result.significant[[0, 3]].any()
    # the BH count m is 2: the undefined classes are not tests
    expected_bh = scipy_stats.false_discovery_control(result.p_values[[1, 2]], method="bh")
    np.testing.assert_allclose(result.p_values_bh[[1, 2]], expected_bh)


def test_zero_variance_with_different_means_is_still_undefined():
    class_a, class_b, overall = np.full((3, 1), 0.5), np.full((3, 1), 0.9), np.ones(3)
    with pytest.warns(KdfairWarning, match="undefined"):
        result = welch_class_test(class_a, overall, class_b, overall)
    assert result.undefined[0] and result.count == 0
    assert result.mean_change[0] == pytest.approx(0.4)


def test_bh_correction_counts_fewer_classes():
    rng = np.random.default_rng(0)
    class_a = rng.uniform(0.5, 0.6, (5, 200))
    class_b = class_a + rng.normal(0, 0.05, (5, 200)) + np.r_[np.full(20, 0.1), np.zeros(180)]
    overall = np.full(5, 0.8)
    raw = welch_class_test(class_a, overall, class_b, overall)
    bh = welch_class_test(class_a, overall, class_b, overall, correction="bh")
    np.testing.assert_array_equal(raw.p_values, bh.p_values)
    assert bh.count <= raw.count and bh.count >= 1
    np.testing.assert_array_equal(bh.significant, bh.p_values_bh <= 0.05)


@pytest.mark.parametrize(
    ("arguments", "options", "error", "match"),
    [
        ((np.ones((1, 3)), np.ones(1), np.ones((2, 3)), np.ones(2)), {}, KdfairError, "at least 2 seeds"),
        ((np.ones((2, 3)), np.ones(2), np.ones((2, 4)), np.ones(2)), {}, DataError, "class count"),
        ((np.ones((2, 3)), np.ones(3), np.ones((2, 3)), np.ones(2)), {}, DataError, "group A"),
        ((np.ones((2, 3)), np.zeros(2), np.ones((2, 3)), np.ones(2)), {}, DataError, r"\(0, 1\]"),
        ((np.ones((2, 3)), np.ones(2), np.ones((2, 3)), np.ones(2)), {"correction": "holm"}, DataError, "bh"),
        ((np.ones((2, 3)), np.ones(2), np.ones((2, 3)), np.ones(2)), {"level": 1.5}, DataError, "level"),
    ],
)
def test_bad_inputs_raise(arguments, options, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KdfairWarning)
        with pytest.raises(error, match=match):
            welch_class_test(*arguments, **options)


@pytest.mark.parametrize("p_values", [[0.5, 1.5], [-0.1], [0.5, float("inf")]])
def test_bad_p_values_raise(p_values):
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        benjamini_hochberg(p_values)


def test_benjamini_hochberg_needs_one_dimension():
    with pytest.raises(DataError, match="1-D"):
        benjamini_hochberg(np.full((2, 2), 0.5))
