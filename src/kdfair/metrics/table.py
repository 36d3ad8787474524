"""The table of per-run metrics (fairlearn's generated metrics, scikit-learn's ``test_common``): ONE entry per
metric the audit computes for every run, the only place its name, inputs, direction and display are spelled.

The table drives:

* the audit (:func:`kdfair.audit.runmetrics.run_metrics`): which metrics a run gets, in this order, as rows
  ``(name, attribute, value)`` of ``run_metrics.csv``;
* the report (:mod:`kdfair.report`): column labels, units, decimals and "lower/higher is fairer" words;
* the property tests (``tests/metrics/test_common.py``): invariance to sample order, to relabelling the
  groups and to permuting the classes, and the value of a predictor that is always right.

Adding a metric: one plain function (fairlearn-style signature, in a module of :mod:`kdfair.metrics`), one
entry below, and one hand-worked test of the function. The audit, the report's labels and the property tests
pick the entry up.

Each entry's ``compute`` reads a :class:`MetricInputs` (labels always; probabilities, the kNN graph, one
attribute's groups or one attribute's counterfactual twins as the entry says) and returns a fraction (or a
unitless number, ``unit`` ""). Values are stored as fractions; the report multiplies ``unit`` "%" by 100.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kdfair.metrics import classwise, counterfactual, group, individual


@dataclass(frozen=True)
class TwinPairs:
    """One protected attribute's counterfactual twins (SPEC §6): the twins' predicted probabilities (M, C)
    and, per twin, the row of the original it is a twin of (M,)."""

    probs: np.ndarray
    source_index: np.ndarray


@dataclass(frozen=True)
class MetricInputs:
    """What a metric may read; every per-sample array in one row order (N samples, C classes)."""

    y_true: np.ndarray  # (N,) true class indices
    y_pred: np.ndarray  # (N,) predicted class indices (the argmax of ``probs`` in the audit)
    n_classes: int
    probs: np.ndarray | None = None  # (N, C) predicted probabilities: needs_probabilities
    features: np.ndarray | None = None  # (N, d) representation of the kNN pairs: needs_features
    neighbors: tuple[np.ndarray, np.ndarray] | None = None  # its kNN graph (indices, distances), (N, >= k)
    k: int = 5  # neighbours per sample (consistency counts the sample itself among them)
    sensitive_features: np.ndarray | None = None  # (N,) one attribute's groups: per_attribute
    twins: TwinPairs | None = None  # one attribute's twins: needs_twins
    validated: bool = False  # probs already checked to be finite probability vectors (the audit's loader)


@dataclass(frozen=True)
class Metric:
    """One per-run metric. ``name`` is its key in ``run_metrics.csv``, ``summary.csv`` and the report."""

    name: str
    compute: Callable[[MetricInputs], float]  # calls the plain metric function on the inputs
    kind: Literal["performance", "fairness"]  # fairness numbers of a degenerate predictor are marked (†)
    direction: Literal["lower", "higher"]  # which values are fairer (fairness) or better (performance)
    column: str  # the report's table column, e.g. "EOD" -> "EOD (%)"
    display: str  # the name in prose and on figure axes
    unit: Literal["%", ""]  # "%": a fraction shown in percent, 2 decimals; "": shown as is, 4 decimals
    per_attribute: bool = False  # one value per protected attribute (twins: per attribute changed)
    needs_probabilities: bool = False
    needs_features: bool = False  # the kNN pairs of a representation (individual fairness)
    needs_twins: bool = False  # counterfactual twins (the run's counterfactual.npz)
    noise_floor: bool = False  # has a within-class permutation null (kdfair.metrics.noise)
    perfect: float | None = None  # the value when every prediction is right (one-hot probs); None: it varies
    positive_class_only: bool = False  # binary tasks score class 1 only: swapping the two classes changes it

    @property
    def scale(self) -> float:
        """Display units per stored unit: 100 for percent, else 1."""
        return 100.0 if self.unit == "%" else 1.0

    @property
    def decimals(self) -> int:
        """Decimals shown in the report's tables."""
        return 2 if self.unit == "%" else 4


def _grouped(function: Callable[..., float], **options: object) -> Callable[[MetricInputs], float]:
    """``function(y_true, y_pred, *, sensitive_features, n_classes, **options)`` on the inputs."""
    return lambda m: function(
        m.y_true, m.y_pred, sensitive_features=m.sensitive_features, n_classes=m.n_classes, **options
    )


def _twin_flips(m: MetricInputs) -> float:
    twins = m.twins
    assert twins is not None
    return counterfactual.counterfactual_flip_rate(
        m.y_pred, np.asarray(twins.probs).argmax(axis=1), source_index=twins.source_index
    )


def _twin_unfairness(m: MetricInputs) -> float:
    twins = m.twins
    assert twins is not None
    return counterfactual.counterfactual_unfairness(m.probs, twins.probs, source_index=twins.source_index)


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric(
            "accuracy",
            lambda m: classwise.accuracy(m.y_true, m.y_pred, m.n_classes),
            kind="performance", direction="higher", column="Test Acc.", display="test accuracy", unit="%",
            perfect=1.0,
        ),
        Metric(
            "auroc",
            lambda m: classwise.auroc(m.y_true, m.probs),
            kind="performance", direction="higher", column="AUROC", display="AUROC", unit="%",
            needs_probabilities=True, perfect=1.0,
        ),
        Metric(
            "f1",
            lambda m: classwise.f1(m.y_true, m.y_pred, m.n_classes),
            kind="performance", direction="higher", column="F1", display="F1", unit="%",
            perfect=1.0, positive_class_only=True,
        ),
        Metric(
            "individual_unfairness",
            lambda m: individual.individual_unfairness(
                m.probs, m.features, m.k, neighbors=m.neighbors, validated=m.validated
            ),
            kind="fairness", direction="lower", column="Individual unfairness",
            display="individual unfairness", unit="", needs_probabilities=True, needs_features=True,
        ),
        Metric(
            "consistency",
            lambda m: individual.consistency(
                m.y_pred, m.features, m.k, neighbors=m.neighbors, n_classes=m.n_classes
            ),
            kind="fairness", direction="higher", column="Consistency", display="consistency", unit="%",
            needs_features=True,
        ),
        Metric(
            "dpd",
            _grouped(group.demographic_parity_difference),
            kind="fairness", direction="lower", column="DPD", display="DPD", unit="%",
            per_attribute=True, noise_floor=True,  # a perfect predictor's DPD is the groups' base-rate gap
        ),
        Metric(
            "eod",
            _grouped(group.equalized_odds_difference),
            kind="fairness", direction="lower", column="EOD", display="EOD", unit="%",
            per_attribute=True, noise_floor=True, perfect=0.0,
        ),
        Metric(
            "deo_mean",
            _grouped(group.deo, agg="mean"),
            kind="fairness", direction="lower", column="mean-DEO", display="mean-DEO", unit="%",
            per_attribute=True, noise_floor=True, perfect=0.0,
        ),
        Metric(
            "deo_max",
            _grouped(group.deo, agg="max"),
            kind="fairness", direction="lower", column="max-DEO", display="max-DEO", unit="%",
            per_attribute=True, noise_floor=True, perfect=0.0,
        ),
        Metric(
            "counterfactual_unfairness",
            _twin_unfairness,
            kind="fairness", direction="lower", column="CF unfairness",
            display="counterfactual unfairness (TV)", unit="", per_attribute=True,
            needs_probabilities=True, needs_twins=True, perfect=0.0,
        ),
        Metric(
            "counterfactual_flip_rate",
            _twin_flips,
            kind="fairness", direction="lower", column="Flips", display="prediction flips", unit="%",
            per_attribute=True, needs_twins=True, perfect=0.0,
        ),
    )
}  # fmt: skip


def metric(name: str) -> Metric:
    """The entry ``name``; a KeyError listing the valid names otherwise."""
    if name not in METRICS:
        raise KeyError(f"unknown metric '{name}'; valid: {', '.join(METRICS)}")
    return METRICS[name]


def noise_floor_metrics() -> tuple[str, ...]:
    """The metrics with a permutation noise floor, in table order."""
    return tuple(name for name, entry in METRICS.items() if entry.noise_floor)


def column_label(name: str, attribute: str = "") -> str:
    """A table column: ``"EOD (%)"``, ``"Individual unfairness"``; with ``attribute``: ``"Flips sex (%)"``."""
    entry = metric(name)
    text = f"{entry.column} {attribute}" if attribute else entry.column
    return f"{text} ({entry.unit})" if entry.unit else text


def better(name: str) -> str:
    """``"lower is fairer"``, ``"higher is better"``, ... for ``name``."""
    entry = metric(name)
    return f"{entry.direction} is {'fairer' if entry.kind == 'fairness' else 'better'}"


def axis_label(name: str, *, direction: bool = True) -> str:
    """A figure axis: ``"EOD (%), lower is fairer"``, ``"test accuracy (%)"`` (``direction=False``)."""
    entry = metric(name)
    text = f"{entry.display} ({entry.unit})" if entry.unit else entry.display
    return f"{text}, {better(name)}" if direction else text


def arrow_label(name: str) -> str:
    """A short panel title with the direction as an arrow: ``"AUROC (%) ↑"``, ``"max-DEO (%) ↓"``."""
    return f"{column_label(name)} {'↑' if metric(name).direction == 'higher' else '↓'}"
