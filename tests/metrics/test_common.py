"""Properties of every per-run metric, driven by the audit's own table ``kdfair.metrics.table.METRICS``
(scikit-learn's ``sklearn/metrics/tests/test_common.py``): a metric added to the table is tested here at once.

* every metric: invariant to the order of the samples (and of the twins);
* ``per_attribute``: invariant to relabelling the groups (permuted codes, string names);
* every metric: invariant to permuting the classes, with labels, predictions and probability columns
  permuted alike (binary metrics that score class 1 only, ``positive_class_only``, for C > 2 only);
* ``perfect``: the value when every prediction is right (one-hot probabilities, twins predicted alike).

The hand-worked values of each metric are in the metric's own test module (test_group.py, ...).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdfair.errors import KdfairWarning
from kdfair.metrics import knn_graph
from kdfair.metrics.noise import NULL_METRICS
from kdfair.metrics.table import (
    METRICS,
    Metric,
    MetricInputs,
    TwinPairs,
    arrow_label,
    axis_label,
    column_label,
    noise_floor_metrics,
)

PER_ATTRIBUTE = [name for name, entry in METRICS.items() if entry.per_attribute]
WITH_PERFECT = [name for name, entry in METRICS.items() if entry.perfect is not None]
K = 4  # neighbours per sample


@dataclass(frozen=True)
class Case:
    """A small task where every metric is defined: every class in every group, continuous features (no kNN
    ties), continuous probabilities (no argmax ties), and twins of some of the samples."""

    y_true: np.ndarray
    probs: np.ndarray
    groups: Any
    features: np.ndarray
    twin_probs: np.ndarray
    twin_source: np.ndarray
    n_classes: int


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@st.composite
def cases(draw) -> Case:
    n_classes = draw(st.sampled_from([2, 3, 5]))
    n_groups = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = n_classes * n_groups * draw(st.integers(3, 6))
    cells = np.arange(n) % (n_classes * n_groups)
    y_true, groups = cells % n_classes, cells // n_classes
    target = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, n_classes, n))
    probs = _softmax(rng.normal(size=(n, n_classes)) + 3.0 * np.eye(n_classes)[target])
    n_twins = draw(st.integers(1, 2 * n))
    twin_source = rng.integers(0, n, n_twins)
    twin_probs = _softmax(np.log(probs[twin_source]) + rng.normal(scale=0.7, size=(n_twins, n_classes)))
    return Case(y_true, probs, groups, rng.normal(size=(n, 3)), twin_probs, twin_source, n_classes)


def _inputs(case: Case) -> MetricInputs:
    return MetricInputs(
        y_true=case.y_true,
        y_pred=case.probs.argmax(axis=1),
        n_classes=case.n_classes,
        probs=case.probs,
        features=case.features,
        neighbors=knn_graph(case.features, K),
        k=K,
        sensitive_features=case.groups,
        twins=TwinPairs(case.twin_probs, case.twin_source),
    )


def _evaluate(entry: Metric, case: Case) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("error", KdfairWarning)  # the cases are built so that nothing is undefined
        return float(entry.compute(_inputs(case)))


def _assert_same(actual: float, expected: float) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12)


def test_the_table_is_well_formed():
    for name, entry in METRICS.items():
        assert entry.name == name and entry.direction in ("lower", "higher") and entry.unit in ("%", "")
        assert entry.kind in ("performance", "fairness") and entry.column and entry.display
        assert not entry.needs_twins or entry.per_attribute  # twins change one attribute each
    assert next(iter(METRICS)) == "accuracy"  # the audit's first row of every run
    assert noise_floor_metrics() == NULL_METRICS  # the metrics kdfair.metrics.noise computes nulls of


def test_display_labels_come_from_the_entries():
    assert column_label("eod") == "EOD (%)"
    assert column_label("individual_unfairness") == "Individual unfairness"
    assert column_label("counterfactual_flip_rate", "colour") == "Flips colour (%)"
    assert axis_label("consistency") == "consistency (%), higher is fairer"
    assert axis_label("accuracy", direction=False) == "test accuracy (%)"
    assert arrow_label("auroc") == "AUROC (%) ↑" and arrow_label("deo_max") == "max-DEO (%) ↓"
    assert (METRICS["dpd"].scale, METRICS["dpd"].decimals) == (100.0, 2)
    assert (METRICS["individual_unfairness"].scale, METRICS["individual_unfairness"].decimals) == (1.0, 4)


@pytest.mark.parametrize("name", METRICS)
@settings(max_examples=12, deadline=None)
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_sample_order(name, case, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(case.y_true))
    new_row = np.argsort(order)  # the new row of old row i
    twin_order = rng.permutation(len(case.twin_source))
    shuffled = replace(
        case,
        y_true=case.y_true[order],
        probs=case.probs[order],
        groups=case.groups[order],
        features=case.features[order],
        twin_probs=case.twin_probs[twin_order],
        twin_source=new_row[case.twin_source[twin_order]],
    )
    _assert_same(_evaluate(METRICS[name], shuffled), _evaluate(METRICS[name], case))


@pytest.mark.parametrize("name", PER_ATTRIBUTE)
@settings(max_examples=12, deadline=None)
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_relabelling_groups(name, case, seed):
    n_groups = case.groups.max() + 1
    permuted = np.random.default_rng(seed).permutation(n_groups)[case.groups]
    strings = np.array([f"group-{code * 7 % 11}" for code in case.groups])
    expected = _evaluate(METRICS[name], case)
    _assert_same(_evaluate(METRICS[name], replace(case, groups=permuted)), expected)
    _assert_same(_evaluate(METRICS[name], replace(case, groups=strings)), expected)


@pytest.mark.parametrize("name", METRICS)
@settings(max_examples=12, deadline=None)
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_permuting_classes(name, case, seed):
    entry = METRICS[name]
    if entry.positive_class_only and case.n_classes == 2:
        return  # binary F1 scores class 1 only: swapping the classes changes it
    mapping = np.random.default_rng(seed).permutation(case.n_classes)  # class c -> mapping[c]
    columns = np.argsort(mapping)  # new column j holds old column columns[j]
    permuted = replace(
        case,
        y_true=mapping[case.y_true],
        probs=case.probs[:, columns],
        twin_probs=case.twin_probs[:, columns],
    )
    _assert_same(_evaluate(entry, permuted), _evaluate(entry, case))


@pytest.mark.parametrize("name", WITH_PERFECT)
@settings(max_examples=8, deadline=None)
@given(case=cases())
def test_value_of_a_perfect_predictor(name, case):
    one_hot = np.eye(case.n_classes)[case.y_true]
    perfect = replace(case, probs=one_hot, twin_probs=one_hot[case.twin_source])
    assert _evaluate(METRICS[name], perfect) == METRICS[name].perfect
