"""Class-wise significance tests (SPEC §4): Welch's t-test on normalised class accuracy, Benjamini-Hochberg.

For each class c, the seed values of ``r_c = b_c / b_M`` of run group A (e.g. the NDS) are compared with those
of run group B (a DS) by a two-sided Welch t-test, as ``scipy.stats.ttest_ind(equal_var=False)``. #SC and #TC
are the number of classes with ``p <= level``; beside them kdfair reports the count after Benjamini-Hochberg
control at the same level and each class's mean change in ``r_c``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as scipy_stats

from kdfair.errors import DataError, KdfairError, KdfairWarning
from kdfair.metrics.classwise import format_names

CORRECTIONS: tuple[str | None, ...] = (None, "bh")


@dataclass(frozen=True)
class WelchResult:
    """Per-class Welch test of B against A; every array is (C,).

    ``p_values``: raw two-sided p (NaN where undefined); ``p_values_bh``: Benjamini-Hochberg adjusted p;
    ``significant``/``count``: ``p <= level`` on the raw or the adjusted p, following ``correction``;
    ``mean_change``: mean ``r_c`` of B minus mean ``r_c`` of A (unitless); ``undefined``: both groups have
    zero variance (or a NaN input), so the class counts as not affected (SPEC §4).
    """

    p_values: np.ndarray
    significant: np.ndarray
    count: int
    mean_change: np.ndarray
    undefined: np.ndarray
    p_values_bh: np.ndarray


def benjamini_hochberg(p_values: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up FDR control), same shape as ``p_values`` (1-D).

    ``scipy.stats.false_discovery_control(p, method="bh")`` on the non-NaN entries: NaN entries (undefined
    tests) stay NaN and do not count in the number of tests m.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise DataError(f"p_values must be 1-D, got shape {p.shape}")
    tested = ~np.isnan(p)
    if np.any((p[tested] < 0) | (p[tested] > 1)):
        raise DataError("p_values must lie in [0, 1]")
    adjusted = np.full_like(p, np.nan)
    if tested.any():
        adjusted[tested] = scipy_stats.false_discovery_control(p[tested], method="bh")
    return adjusted


def _normalized(class_acc: Any, overall_acc: Any, group: str) -> np.ndarray:
    """Seed x class values of ``r_c = b_c / b_M`` for one run group, validated."""
    per_class = np.asarray(class_acc, dtype=np.float64)
    overall = np.asarray(overall_acc, dtype=np.float64)
    if per_class.ndim != 2 or overall.ndim != 1 or len(overall) != len(per_class):
        raise DataError(
            f"group {group}: class accuracies must be (seeds, C) and overall accuracies (seeds,), "
            f"got {per_class.shape} and {overall.shape}"
        )
    if len(per_class) < 2:
        raise KdfairError(
            f"Welch test needs at least 2 seeds per group; got {len(per_class)} in group {group}"
        )
    if not np.all(np.isfinite(overall)) or np.any(overall <= 0) or np.any(overall > 1):
        raise DataError(f"group {group}: overall accuracies must be in (0, 1]")
    return per_class / overall[:, None]


def welch_class_test(
    class_acc_a: Any,
    overall_acc_a: Any,
    class_acc_b: Any,
    overall_acc_b: Any,
    *,
    level: float = 0.05,
    correction: Literal["bh"] | None = None,
) -> WelchResult:
    """Two-sided Welch t-test per class on the seed values of ``r_c`` of groups A and B (SPEC §4).

    Inputs: (seeds, C) class accuracies and (seeds,) overall accuracies per group, fractions. A class whose
    ``r_c`` is constant across seeds in both groups (or has a NaN) is undefined: p is NaN, it is not
    significant, and one :class:`KdfairWarning` names every such class.
    """
    if correction not in CORRECTIONS:
        raise DataError(f"unknown correction {correction!r}; valid: {', '.join(map(repr, CORRECTIONS))}")
    if not 0.0 < level < 1.0:
        raise DataError(f"level must be in (0, 1), got {level}")
    ratio_a = _normalized(class_acc_a, overall_acc_a, "A")
    ratio_b = _normalized(class_acc_b, overall_acc_b, "B")
    if ratio_a.shape[1] != ratio_b.shape[1]:
        raise DataError(f"class count differs between groups: {ratio_a.shape[1]} and {ratio_b.shape[1]}")
    constant = (np.ptp(ratio_a, axis=0) == 0) & (np.ptp(ratio_b, axis=0) == 0)
    undefined = constant | np.isnan(ratio_a).any(axis=0) | np.isnan(ratio_b).any(axis=0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        p_values = scipy_stats.ttest_ind(ratio_a, ratio_b, axis=0, equal_var=False).pvalue
    p_values = np.where(undefined, np.nan, np.asarray(p_values, dtype=np.float64))
    if undefined.any():
        names = format_names(np.flatnonzero(undefined).tolist())
        message = (
            f"Welch test undefined for {int(undefined.sum())} classes (zero variance in both groups or NaN "
            f"accuracy), counted as not affected: {names}"
        )
        warnings.warn(message, KdfairWarning, stacklevel=2)
    p_values_bh = benjamini_hochberg(p_values)
    tested = p_values_bh if correction == "bh" else p_values
    significant = np.nan_to_num(tested, nan=np.inf) <= level
    return WelchResult(
        p_values=p_values,
        significant=significant,
        count=int(significant.sum()),
        mean_change=ratio_b.mean(axis=0) - ratio_a.mean(axis=0),
        undefined=undefined,
        p_values_bh=p_values_bh,
    )
