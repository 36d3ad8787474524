"""Class-wise accuracy, normalised class accuracy and teacher-student disagreement (SPEC §4).

All functions take labels as class indices ``0..C-1`` (numpy arrays, lists or pandas Series) and return
fractions in [0, 1] (counts for :func:`disagreement_matrix`). The input checks shared by every metric module
(:func:`as_labels`, :func:`as_groups`, :func:`resolve_n_classes`, :func:`warn_left_out`) live here too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from kdfair.errors import DataError, KdfairWarning

MAX_NAMES_IN_WARNING = 10


def format_names(names: Sequence[Any], limit: int = MAX_NAMES_IN_WARNING) -> str:
    """``"a, b, c"``; with more than ``limit`` names, the first ``limit`` and ``"... (+n more)"``."""
    shown = ", ".join(str(name) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... (+{len(names) - limit} more)"


def warn_left_out(
    what: str, names: Sequence[Any], why: str, unit: str = "class", count: int | None = None
) -> None:
    """Issue ONE :class:`KdfairWarning` for the ``count`` (default ``len(names)``) units left out of ``what``.

    ``names`` may hold only the first few of them; nothing is issued when the count is 0.
    """
    count = len(names) if count is None else count
    if count == 0:
        return
    plural = unit if count == 1 else f"{unit}es" if unit.endswith("s") else f"{unit}s"
    shown = format_names(names) + (", ..." if len(names) < count else "")
    warnings.warn(f"{what}: left out {count} {plural} ({why}): {shown}", KdfairWarning, stacklevel=3)


def as_labels(values: Any, name: str, n_classes: int | None = None) -> np.ndarray:
    """``values`` as a 1-D int64 array of class indices; raise :class:`DataError` naming ``name`` if not."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.int64)
    elif array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise DataError(f"{name} must hold integer class indices, found non-integer values")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise DataError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and array.min() < 0:
        raise DataError(f"{name} holds a negative label ({array.min()})")
    if n_classes is not None and array.size and array.max() >= n_classes:
        raise DataError(f"{name} holds label {array.max()}, out of range for n_classes={n_classes}")
    return array


def check_same_length(**arrays: np.ndarray) -> int:
    """The common length of ``arrays``; raise :class:`DataError` naming them if lengths differ or are 0."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"length mismatch: {', '.join(f'{k}={v}' for k, v in lengths.items())}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise DataError(f"{', '.join(lengths)} are empty")
    return n


def resolve_n_classes(n_classes: int | None, *labels: np.ndarray) -> int:
    """``n_classes`` if given (>= 2), else ``max label + 1`` and at least 2 (labels are class indices)."""
    if n_classes is not None:
        if int(n_classes) != n_classes or n_classes < 2:
            raise DataError(f"n_classes must be an integer >= 2, got {n_classes}")
        return int(n_classes)
    return max(2, *(int(array.max()) + 1 for array in labels if array.size))


def as_groups(values: Any, n: int, name: str = "sensitive_features") -> tuple[np.ndarray, np.ndarray]:
    """Group codes ``(n,)`` int64 in ``0..G-1`` and the sorted group names ``(G,)`` of a 1-D attribute."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} must be 1-D (one attribute), got shape {array.shape}")
    if len(array) != n:
        raise DataError(f"length mismatch: {name} has {len(array)} values, labels have {n}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise DataError(f"{name} holds missing or non-finite values")
    if array.dtype == object and any(value is None or value != value for value in array):
        raise DataError(f"{name} holds missing values")
    try:
        names, codes = np.unique(array, return_inverse=True)
    except TypeError as error:
        raise DataError(f"{name} mixes values that cannot be compared ({error})") from None
    return codes.astype(np.int64).reshape(-1), names


def _checked_pair(y_true: Any, y_pred: Any, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    true = as_labels(y_true, "y_true", n_classes)
    pred = as_labels(y_pred, "y_pred", n_classes)
    check_same_length(y_true=true, y_pred=pred)
    return true, pred, resolve_n_classes(n_classes, true, pred)


def _per_class_share(y_true: np.ndarray, hits: np.ndarray, n_classes: int, what: str) -> np.ndarray:
    """Share of class-c samples with ``hits`` true, (C,); NaN plus one warning for absent classes."""
    totals = np.bincount(y_true, minlength=n_classes)
    counts = np.bincount(y_true, weights=hits.astype(np.float64), minlength=n_classes)
    absent = np.flatnonzero(totals == 0)
    warn_left_out(what, absent.tolist(), "no samples of the class in y_true; value is NaN")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)


def accuracy(y_true: Any, y_pred: Any, n_classes: int | None = None) -> float:
    """Overall accuracy ``b_M = P(y_pred = y_true)``, a fraction (SPEC §4)."""
    true, pred, _ = _checked_pair(y_true, y_pred, n_classes)
    return float(np.mean(true == pred))


def class_accuracy(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Class accuracy ``b_c = P(y_pred = c | y_true = c)`` for every class, shape (C,), fractions (SPEC §4).

    A class absent from ``y_true`` gets NaN and one :class:`KdfairWarning` names every such class.
    """
    true, pred, n_classes = _checked_pair(y_true, y_pred, n_classes)
    return _per_class_share(true, true == pred, n_classes, "class_accuracy")


def normalized_class_accuracy(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Normalised class accuracy ``r_c = b_c / b_M``, shape (C,) (SPEC §4); ``b_M`` = overall accuracy.

    Unitless ratio (1 = the class is as accurate as the model overall). With ``b_M = 0`` every ``r_c`` is
    undefined: NaN and a warning.
    """
    true, pred, n_classes = _checked_pair(y_true, y_pred, n_classes)
    overall = float(np.mean(true == pred))
    per_class = _per_class_share(true, true == pred, n_classes, "normalized_class_accuracy")
    if overall == 0.0:
        warnings.warn(
            "normalized_class_accuracy: overall accuracy is 0; r_c is NaN", KdfairWarning, stacklevel=2
        )
        return np.full(n_classes, np.nan)
    return per_class / overall


def disagreement_matrix(pred_a: Any, pred_b: Any, n_classes: int) -> np.ndarray:
    """Counts ``D[i, j]`` = #samples with ``pred_a = i`` and ``pred_b = j``, i != j; int64 (C, C) (SPEC §4).

    Rows are the first argument (the teacher), columns the second (the student); the diagonal is 0.
    """
    a = as_labels(pred_a, "pred_a", n_classes)
    b = as_labels(pred_b, "pred_b", n_classes)
    check_same_length(pred_a=a, pred_b=b)
    n_classes = resolve_n_classes(n_classes, a, b)
    counts = np.bincount(a * n_classes + b, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    np.fill_diagonal(counts, 0)
    return counts.astype(np.int64)


def disagreement_rate(y_true: Any, pred_a: Any, pred_b: Any, n_classes: int) -> np.ndarray:
    """Share of class-c samples (by ``y_true``) on which ``pred_a`` and ``pred_b`` differ, (C,) (SPEC §4).

    A class absent from ``y_true`` gets NaN and one warning names every such class.
    """
    true = as_labels(y_true, "y_true", n_classes)
    a = as_labels(pred_a, "pred_a", n_classes)
    b = as_labels(pred_b, "pred_b", n_classes)
    check_same_length(y_true=true, pred_a=a, pred_b=b)
    n_classes = resolve_n_classes(n_classes, true, a, b)
    return _per_class_share(true, a != b, n_classes, "disagreement_rate")


def as_probabilities(values: Any, name: str = "probs") -> np.ndarray:
    """``values`` as a finite (N, C) array, C >= 2; raise :class:`DataError` naming ``name``.

    float32 (and float16) inputs stay float32, without changing ties; anything else becomes float64.
    """
    array = np.asarray(values)
    array = array.astype(np.float32 if array.dtype in (np.float16, np.float32) else np.float64, copy=False)
    if array.ndim != 2 or array.shape[1] < 2:
        raise DataError(f"{name} must be 2-D (N, C) with C >= 2, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} holds non-finite values")
    return array


def _auc_one_column(scores: np.ndarray, ordered: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC of ``scores`` (``ordered``: sorted) for the ``positive`` mask, ties counted half."""
    n_pos = int(positive.sum())
    n_neg = len(scores) - n_pos
    hits = scores[positive]
    below = np.searchsorted(ordered, hits, side="left")
    at_or_below = np.searchsorted(ordered, hits, side="right")
    rank_sum = float(np.sum(below + (at_or_below - below + 1) / 2.0))
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auroc(y_true: Any, probs: Any) -> float:
    """Area under the ROC curve, a fraction (SPEC §5, BIRD's tables).

    Binary (``probs`` (N, 2)): the score is ``probs[:, 1]``, the positive class 1. Multi-class: one-vs-rest,
    macro average over classes. A class with no positives or no negatives in ``y_true`` is left out with one
    warning (NaN if nothing is left). Ties count one half, as in scikit-learn's ``roc_auc_score``.
    """
    scores = as_probabilities(probs)
    n_classes = scores.shape[1]
    true = as_labels(y_true, "y_true", n_classes)
    check_same_length(y_true=true, probs=scores)
    counts = np.bincount(true, minlength=n_classes)
    classes = np.array([1]) if n_classes == 2 else np.arange(n_classes)
    defined = (counts[classes] > 0) & (counts[classes] < len(true))
    warn_left_out("auroc", classes[~defined].tolist(), "no positives or no negatives in y_true")
    columns = np.ascontiguousarray(scores[:, classes[defined]].T)
    ordered = np.sort(columns, axis=1)  # one call for all classes
    areas = [_auc_one_column(columns[i], ordered[i], true == c) for i, c in enumerate(classes[defined])]
    return float(np.mean(areas)) if areas else float("nan")


def f1(y_true: Any, y_pred: Any, n_classes: int | None = None) -> float:
    """F1 = 2 TP / (2 TP + FP + FN), a fraction (SPEC §5): binary, of class 1; multi-class, macro average.

    A class absent from both ``y_true`` and ``y_pred`` has no F1 and is left out with a warning (NaN if
    nothing is left); scikit-learn's ``f1_score`` leaves such classes out of its macro average as well, but
    returns 0 for a binary task without positives.
    """
    true, pred, n_classes = _checked_pair(y_true, y_pred, n_classes)
    hit = true == pred
    true_positives = np.bincount(true[hit], minlength=n_classes)
    denominator = np.bincount(true, minlength=n_classes) + np.bincount(pred, minlength=n_classes)
    classes = np.array([1]) if n_classes == 2 else np.arange(n_classes)
    defined = denominator[classes] > 0
    warn_left_out("f1", classes[~defined].tolist(), "class absent from y_true and y_pred")
    if not defined.any():
        return float("nan")
    scored = classes[defined]
    return float(np.mean(2.0 * true_positives[scored] / denominator[scored]))
