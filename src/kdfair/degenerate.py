"""Degenerate predictors (SPEC §5): a model that predicts (almost) one class is not fair, it is useless.

Such a model has DPD, EOD and DEO near 0 -- every group gets the same (constant) prediction -- so a fairness
table would rank it fairest. The audit flags it, and the reports mark its fairness numbers.

**The rule.** From the predicted-class histogram ``p`` (share of test samples predicted as each class) and
the true-label histogram ``q`` of the same test set, with ``c* = argmax p``:

- ``top_share = p[c*]``, the largest predicted-class share, and ``top_true_share = q[c*]``, that class's
  share among the true labels;
- ``pred_entropy = H(p) / log C`` and ``true_entropy = H(q) / log C``, normalised entropies in [0, 1]
  (``C`` classes, ``0 log 0 = 0``); ``entropy_ratio = pred_entropy / true_entropy``.

A run is **degenerate** when either holds:

1. **concentrated**: ``top_share >= 0.9`` (``share_threshold``) *and* ``top_share`` is at least halfway
   from the class's true share to 1: ``top_share >= q[c*] + 0.5 (1 - q[c*])`` (``share_excess``);
2. **collapsed histogram**: ``entropy_ratio < 0.5`` (``entropy_ratio_threshold``): the predictions carry
   less than half the label entropy the test set has (e.g. 3 of 10 balanced classes: 0.48).

The second half of rule 1 and the ratio in rule 2 make the rule relative to the test set, so an imbalanced
task is not flagged for predicting its majority class at the majority's true rate. Worked cases:

- balanced, any number of classes: one class predicted for >= 90 % of samples is degenerate (two
  balanced classes: rule 2 already from 89 %, where the normalised entropy falls below 0.5);
- binary 95/5: the majority predicted for 95 % of samples (its true rate) is not (0.95 < 0.975, entropy
  ratio 1); a constant predictor is (share 1 >= 0.975; entropy ratio 0);
- binary 90/10: the majority predicted for 97 % is (0.97 >= 0.95, ratio 0.41): the minority class is
  predicted at a third of its rate, which compresses DPD and EOD just the same.

A condition is degenerate when **any** of its seeds is (a collapsed seed pulls the mean DEO toward 0); the
audit records how many seeds were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SHARE_THRESHOLD = 0.9  # rule 1: the largest predicted-class share is at least this ...
SHARE_EXCESS = 0.5  # ... and this fraction of the way from that class's true share to 1
ENTROPY_RATIO_THRESHOLD = 0.5  # rule 2: normalised prediction entropy below this fraction of the labels'
MARK = "†"  # how reports mark a fairness number of a degenerate run or condition


@dataclass(frozen=True)
class Concentration:
    """How concentrated one run's predictions are, and the verdict (shares and entropies in [0, 1])."""

    top_class: int
    top_share: float
    top_true_share: float
    pred_entropy: float
    true_entropy: float
    entropy_ratio: float
    classes_predicted: int
    degenerate: bool
    reason: str  # "" when not degenerate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalized_entropy(counts: np.ndarray) -> float:
    """Shannon entropy of the histogram ``counts`` divided by ``log C`` (``C = len(counts)``), in [0, 1]."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if len(counts) < 2 or total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return max(0.0, float(-(p * np.log(p)).sum() / np.log(len(counts))))  # max: no -0.0


def prediction_concentration(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_classes: int,
    share_threshold: float = SHARE_THRESHOLD,
    share_excess: float = SHARE_EXCESS,
    entropy_ratio_threshold: float = ENTROPY_RATIO_THRESHOLD,
) -> Concentration:
    """The predicted-class histogram's concentration and the degenerate verdict (module docstring).

    ``y_true``, ``y_pred``: (N,) integer labels in [0, ``n_classes``).
    """
    pred_counts = np.bincount(np.asarray(y_pred, dtype=np.int64), minlength=n_classes)[:n_classes]
    true_counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=n_classes)[:n_classes]
    n = max(int(pred_counts.sum()), 1)
    top = int(np.argmax(pred_counts))
    top_share = float(pred_counts[top] / n)
    top_true = float(true_counts[top] / max(int(true_counts.sum()), 1))
    pred_h, true_h = normalized_entropy(pred_counts), normalized_entropy(true_counts)
    ratio = pred_h / true_h if true_h > 0 else 1.0
    reasons = []
    bar = max(share_threshold, top_true + share_excess * (1.0 - top_true))
    if top_share >= bar - 1e-12:
        reasons.append(
            f"{100 * top_share:.1f}% of predictions are class {top} (true share {100 * top_true:.1f}%)"
        )
    if ratio < entropy_ratio_threshold:
        reasons.append(
            f"prediction entropy {pred_h:.2f} is {ratio:.2f} of the labels' {true_h:.2f} "
            f"(< {entropy_ratio_threshold:g})"
        )
    return Concentration(
        top_class=top,
        top_share=top_share,
        top_true_share=top_true,
        pred_entropy=pred_h,
        true_entropy=true_h,
        entropy_ratio=float(ratio),
        classes_predicted=int((pred_counts > 0).sum()),
        degenerate=bool(reasons),
        reason="; ".join(reasons),
    )


RULE = (
    f"degenerate when the largest predicted-class share is >= {SHARE_THRESHOLD:g} and at least "
    f"{SHARE_EXCESS:g} of the way from that class's true share to 1, or when the normalised entropy of the "
    f"predicted-class histogram is below {ENTROPY_RATIO_THRESHOLD:g} x that of the true labels; a condition "
    "is degenerate when any of its seeds is (see kdfair.degenerate)"
)


def rule_info() -> dict[str, Any]:
    """The rule and its thresholds, as recorded in ``audit.json``."""
    return {
        "rule": RULE,
        "share_threshold": SHARE_THRESHOLD,
        "share_excess": SHARE_EXCESS,
        "entropy_ratio_threshold": ENTROPY_RATIO_THRESHOLD,
        "mark": MARK,
    }
