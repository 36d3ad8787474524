"""kdfair.degenerate: the rule on hand-worked histograms, including the imbalanced-binary edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kdfair.degenerate import normalized_entropy, prediction_concentration
from kdfair.metrics import group


def _labels(counts: list[int]) -> np.ndarray:
    """Labels with ``counts[c]`` samples of class c, in class order."""
    return np.repeat(np.arange(len(counts)), counts)


def test_normalized_entropy_by_hand() -> None:
    assert normalized_entropy(np.array([5, 5])) == pytest.approx(1.0)
    assert normalized_entropy(np.array([10, 0, 0])) == 0.0
    # 3 of 10 classes equally: log 3 / log 10
    assert normalized_entropy(np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])) == pytest.approx(
        math.log(3) / math.log(10)
    )
    # binary 90/10: -(0.9 ln 0.9 + 0.1 ln 0.1) / ln 2 = 0.4690
    assert normalized_entropy(np.array([90, 10])) == pytest.approx(0.46900, abs=1e-5)


def test_a_constant_predictor_is_flagged_and_its_fairness_is_zero() -> None:
    rng = np.random.default_rng(0)
    y_true = _labels([25, 25, 25, 25])
    groups = rng.integers(0, 2, size=len(y_true))
    y_pred = np.full_like(y_true, 2)
    found = prediction_concentration(y_true, y_pred, n_classes=4)
    assert found.degenerate
    assert (found.top_class, found.top_share, found.top_true_share) == (2, 1.0, 0.25)
    assert found.pred_entropy == 0.0 and found.true_entropy == pytest.approx(1.0)
    assert found.entropy_ratio == 0.0 and found.classes_predicted == 1
    assert "100.0% of predictions are class 2" in found.reason and "entropy" in found.reason
    # why the flag matters: its DPD and EOD are exactly 0, the "fairest" possible
    kw = {"sensitive_features": groups, "n_classes": 4}
    assert group.demographic_parity_difference(y_true, y_pred, **kw) == 0.0
    assert group.equalized_odds_difference(y_true, y_pred, **kw) == 0.0


def test_a_normal_predictor_is_not_flagged() -> None:
    rng = np.random.default_rng(1)
    y_true = _labels([30, 30, 30, 30])
    wrong = rng.random(len(y_true)) < 0.3
    y_pred = np.where(wrong, (y_true + 1) % 4, y_true)
    found = prediction_concentration(y_true, y_pred, n_classes=4)
    assert not found.degenerate and found.reason == ""
    shares = np.bincount(y_pred, minlength=4) / len(y_pred)
    assert found.top_share == pytest.approx(shares.max())
    assert found.classes_predicted == 4


def test_ninety_percent_on_a_balanced_task_is_the_threshold() -> None:
    y_true = _labels([50, 50])
    at = np.array([0] * 90 + [1] * 10)  # share 0.9 >= max(0.9, 0.5 + 0.5 * 0.5)
    below = np.array([0] * 89 + [1] * 11)  # share 0.89; entropy ratio H(0.89) = 0.4999 < 0.5 though
    assert prediction_concentration(y_true, at, n_classes=2).degenerate
    found = prediction_concentration(y_true, below, n_classes=2)
    assert found.top_share == pytest.approx(0.89)
    assert found.entropy_ratio == pytest.approx(0.49992, abs=1e-4) and found.degenerate
    fine = np.array([0] * 85 + [1] * 15)  # share 0.85, ratio 0.61
    assert not prediction_concentration(y_true, fine, n_classes=2).degenerate


def test_imbalanced_binary_majority_at_its_true_rate_is_not_flagged() -> None:
    # 95/5 task: predicting the majority for 95 % of samples (its true rate) is not degenerate: the share
    # bar is max(0.9, 0.95 + 0.5 * 0.05) = 0.975 and the entropy ratio is 1
    y_true = _labels([95, 5])
    y_pred = np.array([0] * 93 + [1] * 2 + [0] * 2 + [1] * 3)  # 95 predicted 0, 5 predicted 1
    found = prediction_concentration(y_true, y_pred, n_classes=2)
    assert found.top_share == pytest.approx(0.95) and found.top_true_share == pytest.approx(0.95)
    assert found.entropy_ratio == pytest.approx(1.0)
    assert not found.degenerate
    # ... but the constant predictor on the same task is (share 1 >= 0.975; ratio 0)
    assert prediction_concentration(y_true, np.zeros(100, dtype=int), n_classes=2).degenerate


def test_imbalanced_binary_majority_over_predicted_is_flagged() -> None:
    # 90/10 task, majority predicted for 97 %: bar max(0.9, 0.9 + 0.05) = 0.95 <= 0.97; ratio
    # H(0.97) / H(0.9) = 0.1944 / 0.4690 = 0.414 < 0.5
    y_true = _labels([90, 10])
    y_pred = np.array([0] * 97 + [1] * 3)
    found = prediction_concentration(y_true, y_pred, n_classes=2)
    assert found.degenerate
    assert found.entropy_ratio == pytest.approx(0.19439 / 0.46900, abs=1e-4)
    # the majority at 93 %: under the bar (0.93 < 0.95), ratio H(0.93) / H(0.9) = 0.3659 / 0.4690 = 0.78
    ok = prediction_concentration(y_true, np.array([0] * 93 + [1] * 7), n_classes=2)
    assert not ok.degenerate


def test_a_collapsed_histogram_over_a_few_classes_is_flagged() -> None:
    y_true = _labels([10] * 10)
    three = np.repeat([0, 1, 2], [34, 33, 33])  # entropy ratio about log 3 / log 10 = 0.477
    four = np.repeat([0, 1, 2, 3], 25)  # log 4 / log 10 = 0.602
    assert prediction_concentration(y_true, three, n_classes=10).degenerate
    assert not prediction_concentration(y_true, four, n_classes=10).degenerate
