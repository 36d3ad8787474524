"""Invariance properties of the class-wise metric outputs (per-class vectors, class-by-class matrices), driven
by one table with property flags (scikit-learn test_common).

The per-run scalar metrics (accuracy, DPD, EOD, DEO, AUROC, F1, individual and counterfactual fairness) are
tested from the audit's own table ``kdfair.metrics.table.METRICS`` in test_common.py.

* every metric: invariant to sample order;
* ``groups``: invariant to renaming the groups (permuted codes, string names);
* ``perfect_zero``: zero for a perfect predictor;
* ``output``: "per_class" results are permuted with the classes, "class_matrix" results have rows and
  columns permuted.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdfair import metrics
from kdfair.errors import KdfairWarning


@dataclass(frozen=True)
class Case:
    y_true: np.ndarray
    y_pred: np.ndarray
    other_pred: np.ndarray
    groups: Any
    n_classes: int


@dataclass(frozen=True)
class MetricSpec:
    compute: Callable[[Case], Any]
    groups: bool = False
    perfect_zero: bool = False
    output: str = "per_class"  # or "class_matrix"


def _grouped(function: Callable, **options: Any) -> Callable[[Case], Any]:
    return lambda c: function(
        c.y_true, c.y_pred, sensitive_features=c.groups, n_classes=c.n_classes, **options
    )


METRICS: dict[str, MetricSpec] = {
    "deo_gaps": MetricSpec(_grouped(metrics.deo_gaps), groups=True, perfect_zero=True),
    "class_accuracy": MetricSpec(lambda c: metrics.class_accuracy(c.y_true, c.y_pred, c.n_classes)),
    "normalized_class_accuracy": MetricSpec(
        lambda c: metrics.normalized_class_accuracy(c.y_true, c.y_pred, c.n_classes)
    ),
    "disagreement_matrix": MetricSpec(
        lambda c: metrics.disagreement_matrix(c.y_pred, c.other_pred, c.n_classes), output="class_matrix"
    ),
    "disagreement_rate": MetricSpec(
        lambda c: metrics.disagreement_rate(c.y_true, c.y_pred, c.other_pred, c.n_classes)
    ),
}
GROUPED = [name for name, spec in METRICS.items() if spec.groups]
PERFECT_ZERO = [name for name, spec in METRICS.items() if spec.perfect_zero]


@st.composite
def cases(draw) -> Case:
    """Every class present in every group (so results are defined)."""
    n_classes = draw(st.sampled_from([2, 3, 5]))
    n_groups = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = n_classes * n_groups * draw(st.integers(3, 8))
    cells = np.arange(n) % (n_classes * n_groups)
    y_true, groups = cells % n_classes, cells // n_classes
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, n_classes, n))
    other_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, n_classes, n))
    return Case(y_true, y_pred, other_pred, groups, n_classes)


def _evaluate(spec: MetricSpec, case: Case) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", KdfairWarning)  # the cases are built so that nothing is undefined
        return np.asarray(spec.compute(case), dtype=np.float64)


def _assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", METRICS)
@settings(max_examples=15, deadline=None)
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_sample_order(name, case, seed):
    order = np.random.default_rng(seed).permutation(len(case.y_true))
    shuffled = Case(
        *(value[order] if isinstance(value, np.ndarray) else value for value in vars(case).values())
    )
    _assert_same(_evaluate(METRICS[name], shuffled), _evaluate(METRICS[name], case))


@pytest.mark.parametrize("name", GROUPED)
@settings(max_examples=15, deadline=None)
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_renaming_groups(name, case, seed):
    n_groups = case.groups.max() + 1
    permuted = np.random.default_rng(seed).permutation(n_groups)[case.groups]
    strings = np.array([f"group-{code * 7 % 11}" for code in case.groups])
    expected = _evaluate(METRICS[name], case)
    _assert_same(_evaluate(METRICS[name], replace(case, groups=permuted)), expected)
    _assert_same(_evaluate(METRICS[name], replace(case, groups=strings)), expected)


@pytest.mark.parametrize("name", PERFECT_ZERO)
@settings(max_examples=10, deadline=None)
@given(case=cases())
def test_perfect_predictor_has_zero_disparity(name, case):
    result = _evaluate(METRICS[name], replace(case, y_pred=case.y_true))
    np.testing.assert_array_equal(result, np.zeros_like(result))


@pytest.mark.parametrize("name", METRICS)
@settings(max_examples=15, deadline=None)
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_permuting_classes_permutes_classwise_results(name, case, seed):
    mapping = np.random.default_rng(seed).permutation(case.n_classes)  # class c -> mapping[c]
    permuted = replace(
        case,
        y_true=mapping[case.y_true],
        y_pred=mapping[case.y_pred],
        other_pred=mapping[case.other_pred],
    )
    spec = METRICS[name]
    original, result = _evaluate(spec, case), _evaluate(spec, permuted)
    if spec.output == "per_class":
        _assert_same(result[mapping], original)
    else:
        _assert_same(result[np.ix_(mapping, mapping)], original)
