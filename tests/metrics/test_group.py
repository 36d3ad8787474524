"""DPD, EOD and DEO: fairlearn as the oracle, recomputation with boolean masks, hand-worked cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference as fairlearn_dpd
from fairlearn.metrics import equalized_odds_difference as fairlearn_eod
from hypothesis import given, settings
from hypothesis import strategies as st

from kdfair.errors import DataError, KdfairWarning
from kdfair.metrics import demographic_parity_difference, deo, deo_gaps, equalized_odds_difference


@st.composite
def binary_groups(draw):
    """Binary labels and 2-30 groups of very different sizes, every group with positives and negatives."""
    n_groups = draw(st.integers(2, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = 2 + rng.geometric(draw(st.floats(0.005, 0.5)), n_groups)  # long-tailed: 2 to hundreds
    groups = np.repeat(np.arange(n_groups), sizes)
    y_true = (rng.random(len(groups)) < draw(st.floats(0.05, 0.95))).astype(int)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    y_true[starts], y_true[starts + 1] = 1, 0  # both labels in every group
    flip = rng.random(len(groups)) < draw(st.floats(0, 0.5))
    y_pred = np.where(flip, 1 - y_true, y_true)
    order = rng.permutation(len(groups))
    names = np.array([f"g{i}" for i in range(n_groups)], dtype=object)
    use_names = draw(st.booleans())
    return y_true[order], y_pred[order], names[groups[order]] if use_names else groups[order]


def _check_binary_against_fairlearn(case):
    y_true, y_pred, groups = case
    with warnings.catch_warnings():
        warnings.simplefilter("error", KdfairWarning)
        dpd = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
        eod = equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    assert dpd == pytest.approx(fairlearn_dpd(y_true, y_pred, sensitive_features=groups), abs=1e-12)
    assert eod == pytest.approx(fairlearn_eod(y_true, y_pred, sensitive_features=groups), abs=1e-12)


@settings(max_examples=250, deadline=None)  # fairlearn's MetricFrame costs ~40 ms a call; 2,000 under -m slow
@given(binary_groups())
def test_binary_matches_fairlearn(case):
    _check_binary_against_fairlearn(case)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(binary_groups())
def test_binary_matches_fairlearn_thousands(case):
    _check_binary_against_fairlearn(case)


def test_group_without_positives_differs_from_fairlearn_on_purpose():
    # a: TPR 2/2, FPR 0/1; b: TPR 1/2, FPR 0/1; c: no positives, FPR 0/2.
    y_true = [1, 1, 0, 1, 1, 0, 0, 0]
    y_pred = [1, 1, 0, 1, 0, 0, 0, 0]
    groups = ["a", "a", "a", "b", "b", "b", "c", "c"]
    # fairlearn counts c's TPR as 0: TPR difference 1 - 0 = 1.
    assert fairlearn_eod(y_true, y_pred, sensitive_features=groups) == pytest.approx(1.0)
    # kdfair leaves c out of the TPR max/min: 1 - 1/2.
    with pytest.warns(KdfairWarning, match=r"TPR difference: left out 1 group \(no positives\): 'c'"):
        assert equalized_odds_difference(y_true, y_pred, sensitive_features=groups) == pytest.approx(0.5)


def test_undefined_component_is_skipped_and_both_undefined_is_nan():
    # only group a has positives: the TPR difference is undefined, EOD is the FPR difference (1/2 - 0).
    y_true, y_pred, groups = [1, 0, 0, 0, 0], [1, 0, 1, 0, 0], ["a", "a", "a", "b", "b"]
    with pytest.warns(KdfairWarning, match="TPR difference"):
        assert equalized_odds_difference(y_true, y_pred, sensitive_features=groups) == pytest.approx(0.5)
    # one group has only positives, the other only negatives: nothing is defined.
    with pytest.warns(KdfairWarning) as record:
        value = equalized_odds_difference([1, 1, 0, 0], [1, 0, 0, 1], sensitive_features=[0, 0, 1, 1])
    assert np.isnan(value)
    assert any("result is NaN" in str(item.message) for item in record)


def test_multiclass_average_hand_worked():
    # 3 classes, groups a and b.
    y_true = [0, 1, 2, 0, 1, 2]
    y_pred = [0, 1, 1, 0, 2, 2]
    groups = ["a", "a", "a", "b", "b", "b"]
    # selection rates (a, b): class 0 (1/3, 1/3), class 1 (2/3, 0), class 2 (0, 2/3)
    # -> DPD (0 + 2/3 + 2/3) / 3
    dpd = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    assert dpd == pytest.approx(4 / 9)
    # class 0: TPR 1,1 FPR 0,0 -> 0; class 1: TPR 1,0 -> 1; class 2: TPR 0,1 -> 1 -> EOD 2/3
    eod = equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    assert eod == pytest.approx(2 / 3)
    # DEO: acc(g, l) = TPR of class l: gaps 0, 1, 1
    np.testing.assert_allclose(deo_gaps(y_true, y_pred, sensitive_features=groups), [0, 1, 1])
    assert deo(y_true, y_pred, sensitive_features=groups, agg="mean") == pytest.approx(2 / 3)
    assert deo(y_true, y_pred, sensitive_features=groups, agg="max") == pytest.approx(1.0)


def test_binary_deo_uses_both_classes():
    # a: acc(a,0)=1/2, acc(a,1)=1; b: acc(b,0)=1, acc(b,1)=1/2
    y_true, y_pred = [0, 0, 1, 0, 1, 1], [0, 1, 1, 0, 1, 0]
    groups = [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(deo_gaps(y_true, y_pred, sensitive_features=groups), [0.5, 0.5])
    with pytest.raises(DataError, match="agg"):
        deo(y_true, y_pred, sensitive_features=groups, agg="median")


def _ovr_by_masks(y_true, y_pred, groups, classes):
    """Algorithm 1 recomputed naively: a loop over classes and groups with boolean masks (defined cases)."""
    dpd, eod = [], []
    for c in classes:
        y, yhat = y_true == c, y_pred == c
        selection = [yhat[groups == g].mean() for g in np.unique(groups)]
        tpr = [yhat[(groups == g) & y].mean() for g in np.unique(groups)]
        fpr = [yhat[(groups == g) & ~y].mean() for g in np.unique(groups)]
        dpd.append(max(selection) - min(selection))
        eod.append(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
    return np.mean(dpd), np.mean(eod)


@settings(max_examples=1000, deadline=None)
@given(binary_groups())
def test_binary_matches_mask_recomputation(case):
    y_true, y_pred, groups = case
    expected_dpd, expected_eod = _ovr_by_masks(y_true, y_pred, groups, [1])
    dpd = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    assert dpd == pytest.approx(expected_dpd, abs=1e-12)
    eod = equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    assert eod == pytest.approx(expected_eod, abs=1e-12)


def _multiclass_case(n_classes, n_groups, seed):
    """Labels where every (class, group) cell has samples, so every rate is defined."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, 40 * n_classes * n_groups)
    y_true = rng.integers(0, n_classes, len(groups))
    cells = np.arange(n_classes * n_groups)  # every (class, group) present: every rate defined
    y_true[cells], groups[cells] = cells % n_classes, cells // n_classes
    y_pred = np.where(rng.random(len(groups)) < 0.6, y_true, rng.integers(0, n_classes, len(groups)))
    return y_true, y_pred, groups


@settings(max_examples=300, deadline=None)
@given(st.integers(3, 12), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_multiclass_matches_mask_recomputation(n_classes, n_groups, seed):
    y_true, y_pred, groups = _multiclass_case(n_classes, n_groups, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KdfairWarning)
        dpd = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
        eod = equalized_odds_difference(y_true, y_pred, sensitive_features=groups, n_classes=n_classes)
    expected_dpd, expected_eod = _ovr_by_masks(y_true, y_pred, groups, range(n_classes))
    assert dpd == pytest.approx(expected_dpd, abs=1e-12)
    assert eod == pytest.approx(expected_eod, abs=1e-12)


def test_multiclass_is_fairlearn_per_class_averaged():
    y_true, y_pred, groups = _multiclass_case(n_classes=5, n_groups=4, seed=11)
    for ours, theirs in [
        (demographic_parity_difference, fairlearn_dpd),
        (equalized_odds_difference, fairlearn_eod),
    ]:
        per_class = [theirs(y_true == c, y_pred == c, sensitive_features=groups) for c in range(5)]
        assert ours(y_true, y_pred, sensitive_features=groups) == pytest.approx(np.mean(per_class), abs=1e-12)


def test_thousand_classes_one_warning_per_kind():
    rng = np.random.default_rng(0)
    n, n_classes = 50_000, 1000
    y_true = rng.integers(0, n_classes, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, n_classes, n))
    groups = rng.integers(0, 10, n)
    with pytest.warns(KdfairWarning) as record:
        equalized_odds_difference(y_true, y_pred, sensitive_features=groups, n_classes=n_classes)
    assert len(record) == 1  # some of the 10,000 (class, group) cells have no positives: one message
    assert "(class, group) cells (no positives)" in str(record[0].message) and ", ..." in str(
        record[0].message
    )


@pytest.mark.parametrize(
    ("groups", "match"),
    [([0, 1, 2], "length mismatch"), ([[0, 1], [1, 0]], "1-D"), (["a", None, "b", "a"], "missing")],
)
def test_bad_groups_raise(groups, match):
    with pytest.raises(DataError, match=match):
        demographic_parity_difference([0, 1, 1, 0], [0, 1, 0, 0], sensitive_features=groups)


def test_nan_group_raises():
    with pytest.raises(DataError, match="missing"):
        demographic_parity_difference([0, 1], [0, 1], sensitive_features=np.array([0.0, np.nan]))
