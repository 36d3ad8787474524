"""Counterfactual individual fairness (SPEC §6) and the diagnostics of kNN pairs.

Counterfactual pairs: each test sample ``x`` with its twins ``x_cf`` that differ from it in one protected
attribute only. A model that ignores the attribute predicts the same for both.

- :func:`counterfactual_unfairness`: ``I_cf(f) = mean over pairs of TV(f(x), f(x_cf))``, the total variation
  distance of the predicted probability vectors (0.5 x L1), a fraction in [0, 1]; lower is fairer.
- :func:`counterfactual_flip_rate`: the share of pairs whose predicted class differs, in [0, 1].
- :func:`counterfactual_by_attribute`: both, per protected attribute changed.

kNN pairs (the fallback where no twins exist) measure fairness only when the neighbours are alike in what
the task depends on: :func:`knn_pair_diagnostics` gives the share of pairs with the same true label and with
the same protected group.

Signatures follow fairlearn: the model's outputs first, options keyword-only. ``source_index[j]`` is the row
of ``probs`` (or ``y_pred``) of the sample that twin ``j`` is a twin of; None pairs row j with row j.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kdfair.errors import DataError
from kdfair.metrics.classwise import as_labels, as_probabilities

PROBS_ROW_TOLERANCE = 1e-3  # |row sum - 1| allowed for probability vectors
BLOCK_ROWS = 65_536  # twin rows per block of the TV computation


def _probabilities(values: Any, name: str) -> np.ndarray:
    scores = as_probabilities(values)
    if np.any(scores < 0) or np.any(np.abs(scores.sum(axis=1) - 1.0) > PROBS_ROW_TOLERANCE):
        raise DataError(f"{name} rows must be probability vectors (non-negative, summing to 1)")
    return scores


def _source_rows(source_index: Any, n_twins: int, n_sources: int) -> np.ndarray:
    if source_index is None:
        if n_twins != n_sources:
            raise DataError(
                f"without source_index, twins and originals pair row by row: got {n_twins} twins and "
                f"{n_sources} originals"
            )
        return np.arange(n_twins, dtype=np.int64)
    rows = np.asarray(source_index)
    if rows.ndim != 1 or len(rows) != n_twins or (n_twins and rows.dtype.kind not in "iu"):
        raise DataError(f"source_index must be {n_twins} integer rows, got shape {rows.shape}")
    if n_twins and (rows.min() < 0 or rows.max() >= n_sources):
        raise DataError(f"source_index must lie in [0, {n_sources})")
    return rows.astype(np.int64)


def pair_total_variation(probs: Any, counterfactual_probs: Any, *, source_index: Any = None) -> np.ndarray:
    """``TV(f(x_source(j)), f(x_cf_j))`` for every twin j: (M,) float64 in [0, 1]."""
    original = _probabilities(probs, "probs")
    twins = _probabilities(counterfactual_probs, "counterfactual_probs")
    if original.shape[1] != twins.shape[1]:
        raise DataError(f"probs have {original.shape[1]} classes, counterfactual_probs {twins.shape[1]}")
    rows = _source_rows(source_index, len(twins), len(original))
    out = np.empty(len(twins), dtype=np.float64)
    for start in range(0, len(twins), BLOCK_ROWS):
        block = slice(start, start + BLOCK_ROWS)
        gaps = np.abs(original[rows[block]] - twins[block])
        out[block] = 0.5 * gaps.sum(axis=1, dtype=np.float64)
    return out


def counterfactual_unfairness(probs: Any, counterfactual_probs: Any, *, source_index: Any = None) -> float:
    """Mean total variation distance between ``f(x)`` and ``f(x_cf)`` over the pairs (SPEC §6), in [0, 1].

    ``probs`` (N, C): predicted probabilities of the originals; ``counterfactual_probs`` (M, C): of the
    twins; ``source_index`` (M,): the row of ``probs`` each twin pairs with. 0 for a model whose output does
    not change with the attribute; 1 when every pair gets disjoint predictions. NaN with no pairs.
    """
    distances = pair_total_variation(probs, counterfactual_probs, source_index=source_index)
    return float(distances.mean()) if len(distances) else float("nan")


def counterfactual_flip_rate(y_pred: Any, y_pred_counterfactual: Any, *, source_index: Any = None) -> float:
    """Share of pairs whose predicted class differs between ``x`` and ``x_cf``, in [0, 1]; NaN with no pairs.

    ``y_pred`` (N,) and ``y_pred_counterfactual`` (M,): predicted class indices; ``source_index`` as in
    :func:`counterfactual_unfairness`.
    """
    original = as_labels(y_pred, "y_pred")
    twins = as_labels(y_pred_counterfactual, "y_pred_counterfactual")
    rows = _source_rows(source_index, len(twins), len(original))
    return float(np.mean(original[rows] != twins)) if len(twins) else float("nan")


def counterfactual_by_attribute(
    probs: Any, counterfactual_probs: Any, *, source_index: Any = None, changed_attribute: Any
) -> dict[str, dict[str, float]]:
    """Per protected attribute changed: ``{"unfairness": I_cf, "flip_rate": flips, "n_pairs": M_a}``.

    ``changed_attribute`` (M,): the name of the attribute twin j changes. Values as in
    :func:`counterfactual_unfairness` and :func:`counterfactual_flip_rate`, over that attribute's pairs.
    """
    original = _probabilities(probs, "probs")
    twins = _probabilities(counterfactual_probs, "counterfactual_probs")
    rows = _source_rows(source_index, len(twins), len(original))
    changed = np.asarray(changed_attribute).astype(str)
    if changed.shape != (len(twins),):
        raise DataError(f"changed_attribute must have {len(twins)} entries, got shape {changed.shape}")
    distances = pair_total_variation(original, twins, source_index=rows)
    flipped = original.argmax(axis=1)[rows] != twins.argmax(axis=1)
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(changed.tolist()):
        mine = changed == name
        out[name] = {
            "unfairness": float(distances[mine].mean()),
            "flip_rate": float(flipped[mine].mean()),
            "n_pairs": float(mine.sum()),
        }
    return out


def knn_pair_diagnostics(
    neighbors: np.ndarray, y_true: Any, *, sensitive_features: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the kNN pairs share: ``{"n_pairs", "same_label", "same_group": {attribute: share}}``.

    ``neighbors`` (N, k): neighbour indices of each sample (pairs are (i, neighbors[i, j])); ``y_true``
    (N,) true labels; ``sensitive_features``: attribute name -> (N,) group codes. Shares are fractions of
    the N x k pairs. Pairs that mostly differ in label measure accuracy, not fairness (SPEC §6).
    """
    indices = np.asarray(neighbors)
    labels = np.asarray(y_true)
    if indices.ndim != 2 or len(indices) != len(labels):
        raise DataError(f"neighbors must be (N={len(labels)}, k) indices, got shape {indices.shape}")
    groups = {
        name: float(np.mean(np.asarray(codes)[indices] == np.asarray(codes)[:, None]))
        for name, codes in (sensitive_features or {}).items()
    }
    return {
        "n_pairs": int(indices.size),
        "same_label": float(np.mean(labels[indices] == labels[:, None])),
        "same_group": groups,
    }
