"""Class-wise metrics, AUROC and F1: hand-worked cases, scikit-learn oracles, input validation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, roc_auc_score

from kdfair.errors import DataError, KdfairError, KdfairWarning
from kdfair.metrics import (
    auroc,
    class_accuracy,
    disagreement_matrix,
    disagreement_rate,
    f1,
    normalized_class_accuracy,
)


def test_class_accuracy_hand_worked():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 0, 2]
    np.testing.assert_allclose(class_accuracy(y_true, y_pred, 3), [2 / 3, 1 / 2, 1.0])
    # b_M = 4/6, so r = b / b_M
    np.testing.assert_allclose(normalized_class_accuracy(y_true, y_pred, 3), [1.0, 0.75, 1.5])


def test_absent_class_is_nan_with_one_warning_naming_it():
    with pytest.warns(KdfairWarning, match=r"left out 2 classes .*: 1, 3") as record:
        accuracy = class_accuracy([0, 0, 2], [0, 1, 2], n_classes=4)
    assert len(record) == 1
    np.testing.assert_array_equal(np.isnan(accuracy), [False, True, False, True])
    np.testing.assert_allclose(accuracy[[0, 2]], [0.5, 1.0])


def test_disagreement_matrix_hand_worked():
    teacher = [0, 0, 1, 1, 2, 2, 2]
    student = [0, 1, 1, 0, 0, 0, 1]
    expected = np.array([[0, 1, 0], [1, 0, 0], [2, 1, 0]])
    matrix = disagreement_matrix(teacher, student, 3)
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(disagreement_matrix(student, teacher, 3), expected.T)


def test_disagreement_matrix_counts_off_diagonal_pairs():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 50, 5000), rng.integers(0, 50, 5000)
    matrix = disagreement_matrix(a, b, 50)
    assert matrix.sum() == np.sum(a != b)
    assert matrix[7, 3] == np.sum((a == 7) & (b == 3))


def test_disagreement_rate_hand_worked():
    y_true = [0, 0, 1, 1, 1, 2]
    teacher = [0, 1, 1, 1, 0, 2]
    student = [0, 0, 1, 0, 0, 2]
    np.testing.assert_allclose(disagreement_rate(y_true, teacher, student, 3), [0.5, 1 / 3, 0.0])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: class_accuracy([0, 1], [0], 2), "length mismatch"),
        (lambda: class_accuracy([0, 3], [0, 1], 3), "y_true holds label 3"),
        (lambda: class_accuracy([0, -1], [0, 1], 3), "negative"),
        (lambda: class_accuracy([0, 0.5], [0, 1], 3), "integer class indices"),
        (lambda: class_accuracy(["a", "b"], [0, 1], 3), "integer class indices"),
        (lambda: class_accuracy([[0, 1]], [[0, 1]], 3), "1-D"),
        (lambda: class_accuracy([], [], 3), "empty"),
        (lambda: class_accuracy([0, 1], [0, 1], 1), "n_classes"),
        (lambda: auroc([0, 1], [[0.5, 0.5], [np.nan, 0.5]]), "non-finite"),
        (lambda: auroc([0, 1], [0.5, 0.5]), "2-D"),
        (lambda: auroc([0, 1, 0], [[0.5, 0.5], [0.2, 0.8]]), "length mismatch"),
        (lambda: disagreement_matrix([0, 4], [0, 1], 3), "pred_a"),
    ],
)
def test_bad_inputs_raise_one_line_kdfair_error(call, match):
    with pytest.raises(DataError, match=match) as info:
        call()
    assert isinstance(info.value, KdfairError) and "\n" not in str(info.value)


def test_accepts_lists_series_and_float_integers():
    y_true, y_pred = [0, 1, 1, 2], [0, 1, 0, 2]
    expected = class_accuracy(np.array(y_true), np.array(y_pred), 3)
    np.testing.assert_allclose(class_accuracy(pd.Series(y_true), pd.Series(y_pred), 3), expected)
    np.testing.assert_allclose(class_accuracy(np.array(y_true, float), y_pred, 3), expected)


@st.composite
def scored_labels(draw):
    """(y_true, probs) with every class present; scores rounded so that ties occur."""
    n_classes = draw(st.integers(2, 6))
    n = draw(st.integers(2 * n_classes, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y_true = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
    logits = rng.normal(size=(n, n_classes)) + draw(st.floats(0, 3)) * np.eye(n_classes)[y_true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    decimals = draw(st.sampled_from([2, 3, 12]))
    probs = np.round(probs, decimals)
    probs[:, -1] = 1.0 - probs[:, :-1].sum(axis=1)  # rows still sum to 1 for scikit-learn's check
    return y_true, probs


@settings(max_examples=1000, deadline=None)
@given(scored_labels())
def test_auroc_matches_sklearn(case):
    y_true, probs = case
    expected = (
        roc_auc_score(y_true, probs[:, 1])
        if probs.shape[1] == 2
        else roc_auc_score(y_true, probs, multi_class="ovr", average="macro")
    )
    assert auroc(y_true, probs) == pytest.approx(expected, abs=1e-12)


def test_auroc_skips_absent_class_with_warning():
    y_true = np.array([0, 0, 1, 1, 0, 1])
    probs = np.array(
        [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.5, 0.2], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1]]
    )
    with pytest.warns(KdfairWarning, match=r"auroc: left out 1 class .*: 2"):
        value = auroc(y_true, probs)
    expected = np.mean([roc_auc_score(y_true == c, probs[:, c]) for c in (0, 1)])
    assert value == pytest.approx(expected)


@st.composite
def predicted_labels(draw):
    n_classes = draw(st.integers(2, 8))
    n = draw(st.integers(1, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y_true = rng.integers(0, n_classes, n)
    y_pred = np.where(rng.random(n) < draw(st.floats(0, 1)), y_true, rng.integers(0, n_classes, n))
    return y_true, y_pred, n_classes


@settings(max_examples=1000, deadline=None)
@given(predicted_labels())
def test_f1_matches_sklearn(case):
    y_true, y_pred, n_classes = case
    labels = np.union1d(y_true, y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KdfairWarning)
        value = f1(y_true, y_pred, n_classes=n_classes)
    if n_classes == 2:
        if not (labels == 1).any():  # no positive anywhere: undefined here, 0 in scikit-learn
            assert np.isnan(value)
            return
        expected = f1_score(y_true, y_pred, pos_label=1, average="binary", labels=[0, 1])
    else:
        expected = f1_score(y_true, y_pred, average="macro")  # classes present in y_true or y_pred
    assert value == pytest.approx(expected, abs=1e-12)


def test_f1_binary_without_positives_is_nan_with_warning():
    with pytest.warns(KdfairWarning, match="f1: left out 1 class"):
        assert np.isnan(f1([0, 0], [0, 0], n_classes=2))


def test_auroc_float32_probs_keep_their_ties():
    rng = np.random.default_rng(2)
    y_true = np.concatenate([np.arange(4), rng.integers(0, 4, 496)])
    probs = rng.dirichlet(np.ones(4), 500).astype(np.float16).astype(np.float32)  # many exact ties
    expected = np.mean([roc_auc_score(y_true == c, probs[:, c].astype(np.float64)) for c in range(4)])
    assert auroc(y_true, probs) == pytest.approx(expected, abs=1e-12)
