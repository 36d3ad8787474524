"""Group fairness: DPD, EOD (SPEC §5, fairlearn's definitions) and BIRD's DEO (Jung et al. 2021).

Signatures follow fairlearn: ``f(y_true, y_pred, *, sensitive_features, ...)``; results are fractions.

* Binary labels (values in {0, 1}, or ``n_classes=2``): the positive class is 1. DPD and EOD equal fairlearn's
  ``demographic_parity_difference`` / ``equalized_odds_difference`` (method "between_groups", agg
  "worst_case") wherever every group has positives and negatives.
* Multi-class labels (``n_classes > 2``, or ``max label + 1 > 2`` when ``n_classes`` is not given): the
  paper's Algorithm 1 -- for each class c binarise ``1[y = c]``, compute the binary metric, and average over
  classes, unweighted. Computed at once for all classes from per-(group, class) counts.

Undefined rates (SPEC §5): a group with no positives (negatives) has no TPR (FPR). kdfair leaves it out of
that max - min and warns naming it; fairlearn counts it as 0. A rate difference needs at least two groups
with a defined rate (one, if the data has one group); otherwise it is NaN. EOD is the max of its defined
components; a class whose metric is undefined is left out of the class average with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kdfair.errors import DataError
from kdfair.metrics.classwise import (
    MAX_NAMES_IN_WARNING,
    as_groups,
    as_labels,
    check_same_length,
    resolve_n_classes,
    warn_left_out,
)


@dataclass(frozen=True)
class GroupCounts:
    """Per-(group, class) counts, each (G, C) int64 except ``size`` (G,); ``groups`` holds the group names."""

    size: np.ndarray  # samples per group
    positives: np.ndarray  # y_true == c
    predicted: np.ndarray  # y_pred == c
    true_positives: np.ndarray  # y_true == c and y_pred == c
    groups: np.ndarray
    n_classes: int


def group_class_counts(
    y_true: Any, y_pred: Any, sensitive_features: Any, n_classes: int | None
) -> GroupCounts:
    """Validate the inputs and count, for every group g and class c, positives, predictions and hits."""
    true = as_labels(y_true, "y_true", n_classes)
    pred = as_labels(y_pred, "y_pred", n_classes)
    n = check_same_length(y_true=true, y_pred=pred)
    n_classes = resolve_n_classes(n_classes, true, pred)
    codes, names = as_groups(sensitive_features, n)
    n_groups, cells = len(names), len(names) * n_classes
    offset = codes * n_classes
    hit = true == pred
    return GroupCounts(
        size=np.bincount(codes, minlength=n_groups),
        positives=np.bincount(offset + true, minlength=cells).reshape(n_groups, n_classes),
        predicted=np.bincount(offset + pred, minlength=cells).reshape(n_groups, n_classes),
        true_positives=np.bincount(offset[hit] + true[hit], minlength=cells).reshape(n_groups, n_classes),
        groups=names,
        n_classes=n_classes,
    )


def _rate_gaps(
    numerator: np.ndarray,
    denominator: np.ndarray,
    groups: np.ndarray,
    classes: np.ndarray,
    rate: str,
    why: str,
) -> np.ndarray:
    """Per column (class): max - min over groups of ``numerator / denominator`` where the denominator is > 0.

    Returns (K,) gaps, NaN where fewer than ``min(2, G)`` groups have a defined rate. Warns once, naming
    the first (group, class) cells left out and their count.
    """
    defined = denominator > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = numerator / np.maximum(denominator, 1)
    highest = np.where(defined, rates, -np.inf).max(axis=0)
    lowest = np.where(defined, rates, np.inf).min(axis=0)
    enough = defined.sum(axis=0) >= min(2, len(groups))
    class_index, group_index = np.nonzero(~defined.T)  # class-major: the warning lists class 0 first
    shown = zip(class_index[:MAX_NAMES_IN_WARNING], group_index[:MAX_NAMES_IN_WARNING], strict=True)
    if len(classes) == 1:
        cells, unit = [repr(groups[g].item()) for _, g in shown], "group"
    else:
        cells, unit = (
            [f"class {classes[c]} group {groups[g].item()!r}" for c, g in shown],
            "(class, group) cell",
        )
    warn_left_out(f"{rate} difference", cells, why, unit=unit, count=len(class_index))
    return np.where(enough, highest - lowest, np.nan)


def _positive_columns(counts: GroupCounts) -> np.ndarray:
    """The classes scored one-vs-rest: [1] for a binary task, every class otherwise."""
    return np.array([1]) if counts.n_classes == 2 else np.arange(counts.n_classes)


def _class_average(values: np.ndarray, classes: np.ndarray, what: str) -> float:
    """The value for a binary task; the unweighted mean over classes with a defined value otherwise."""
    undefined = np.isnan(values)
    if len(classes) > 1:
        warn_left_out(what, classes[undefined].tolist(), "metric undefined for the class")
    if undefined.all():
        warn_left_out(what, ["all"] if len(classes) > 1 else classes.tolist(), "result is NaN")
        return float("nan")
    return float(np.mean(values[~undefined]))


def demographic_parity_difference(
    y_true: Any, y_pred: Any, *, sensitive_features: Any, n_classes: int | None = None
) -> float:
    """DPD = max_a P(Yhat=1 | A=a) - min_a P(Yhat=1 | A=a), a fraction (SPEC §5; Algorithm 1 if C > 2)."""
    counts = group_class_counts(y_true, y_pred, sensitive_features, n_classes)
    classes = _positive_columns(counts)
    size = np.broadcast_to(counts.size[:, None], (len(counts.size), len(classes)))
    gaps = _rate_gaps(counts.predicted[:, classes], size, counts.groups, classes, "selection rate", "")
    return _class_average(gaps, classes, "demographic_parity_difference")


def equalized_odds_by_class(counts: GroupCounts) -> tuple[np.ndarray, np.ndarray]:
    """EOD per scored class (K,): max(TPR difference, FPR difference) of the defined ones; and the classes."""
    classes = _positive_columns(counts)
    positives = counts.positives[:, classes]
    true_positives = counts.true_positives[:, classes]
    negatives = counts.size[:, None] - positives
    false_positives = counts.predicted[:, classes] - true_positives
    tpr_gap = _rate_gaps(true_positives, positives, counts.groups, classes, "TPR", "no positives")
    fpr_gap = _rate_gaps(false_positives, negatives, counts.groups, classes, "FPR", "no negatives")
    return np.fmax(tpr_gap, fpr_gap), classes  # fmax: the defined component where one is NaN


def equalized_odds_difference(
    y_true: Any, y_pred: Any, *, sensitive_features: Any, n_classes: int | None = None
) -> float:
    """EOD = max(TPR difference, FPR difference), a fraction (SPEC §5; paper Algorithm 1 if C > 2)."""
    counts = group_class_counts(y_true, y_pred, sensitive_features, n_classes)
    eod, classes = equalized_odds_by_class(counts)
    return _class_average(eod, classes, "equalized_odds_difference")


def deo_gaps(
    y_true: Any, y_pred: Any, *, sensitive_features: Any, n_classes: int | None = None
) -> np.ndarray:
    """Per-class DEO gap (C,): ``max_g acc(g, l) - min_g acc(g, l)``, ``acc(g, l) = P(Yhat=l | Y=l, A=g)``.

    Jung et al. 2021 (BIRD's metric, SPEC §5); every class l, including class 0 of a binary task. Groups
    without class-l samples are left out (warning); NaN where fewer than two groups remain.
    """
    counts = group_class_counts(y_true, y_pred, sensitive_features, n_classes)
    classes = np.arange(counts.n_classes)
    return _rate_gaps(
        counts.true_positives, counts.positives, counts.groups, classes, "DEO", "no samples of the class"
    )


def deo(
    y_true: Any,
    y_pred: Any,
    *,
    sensitive_features: Any,
    agg: Literal["max", "mean"] = "max",
    n_classes: int | None = None,
) -> float:
    """max-DEO (``agg="max"``) or mean-DEO (``agg="mean"``) over classes with a defined gap, a fraction."""
    if agg not in ("max", "mean"):
        raise DataError(f"deo: unknown agg {agg!r}; valid: 'max', 'mean'")
    gaps = deo_gaps(y_true, y_pred, sensitive_features=sensitive_features, n_classes=n_classes)
    undefined = np.isnan(gaps)
    warn_left_out(f"deo ({agg})", np.flatnonzero(undefined).tolist(), "gap undefined for the class")
    if undefined.all():
        return float("nan")
    defined = gaps[~undefined]
    return float(defined.max() if agg == "max" else defined.mean())
