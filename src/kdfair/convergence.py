"""Did a run's training converge? A documented criterion on its per-epoch training loss (``epochs.csv``).

Pure functions on numbers: no torch, no files. The trainer records the result in ``run.json``
``settings["convergence"]`` and the audit recomputes it from each run's ``epochs.csv``.

**The criterion.** Let ``L_1..L_E`` be the mean training loss of each epoch (the method's own objective:
cross-entropy for a teacher or NDS, the KD mixture for a DS) and ``R = max(L) - min(L)`` its range over the
run (at least ``min_scale`` (5 %) x ``max |L|``, so a loss that never moved is not judged on its noise). The
change over a window of the last ``w`` epochs is the mean loss over the ``w`` epochs before the window minus
the mean loss over the window, divided by ``R``: positive while the loss is still falling, and the mean of
``w`` epochs smooths the per-epoch noise. A run has converged when both hold:

1. **flat at the end**: over the last ``tail_fraction`` (10 %) of the epochs (at least ``min_window`` = 2),
   ``|change| <= tail_tolerance`` (0.02: the loss moved by at most 2 % of its range). Both windows of this
   test lie inside the *final lr segment* (the trailing epochs at the last epoch's lr) when that segment
   holds at least ``2 * min_window`` epochs: the windows shrink to half the segment where needed. Otherwise
   a step decay a few epochs before the end falls between the two windows, and the one-off drop that any
   lr step gives reads as a loss still falling (measured: UTKFace students with milestones [80, 84] of 96
   epochs were flagged with 2-5 % while their loss at the final lr moved 0.2 % of its range; RESULTS.md 3).
   A cosine schedule, whose lr changes every epoch, keeps the plain windows;
2. **flat before the anneal**: over the last ``late_fraction`` (25 %, at least 2) of the *high-lr epochs*,
   ``|change| <= late_tolerance`` (0.05). The high-lr epochs are those up to the last epoch whose lr is at
   least ``high_lr_fraction`` (0.5) of the peak lr: every epoch for a constant lr (or when no lr is
   given), the first half of a cosine schedule, the epochs before a step schedule's first decay. When they
   are fewer than ``2 * min_window``, the window is taken from all epochs.

Why the second test: a schedule that anneals the lr to 0 (cosine, steps) flattens the loss at the end
whatever the model's state, because the steps shrink; the end of such a run is flat even when it stopped
learning too early. The second test asks that the loss had levelled off while the steps were still large.

Limitations (stated, not hidden): the annealing itself lowers the training loss (less SGD noise), and a
loss that still drifts down during the high-lr epochs of a long cosine schedule counts as change; so under
annealed schedules the criterion errs on the side of "not converged". A training loss says nothing about
overfitting: there is no held-out split in the run folder, so validation accuracy is not used. Fewer than
``2 * min_window`` (4) epochs are too few to judge and count as not converged. A non-finite loss is not
converged.

Calibration: on curves ``L_e = L_inf + A exp(-e / tau)`` at a constant lr, the defaults pass from
``E = 5 tau`` (the loss within 0.7 % of ``A`` of its limit) and flag ``E <= 4 tau`` (1.8 % or more left),
for ``tau`` from 3 to 20 epochs (tests/test_convergence.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TAIL_FRACTION = 0.10  # the end window: last 10 % of the epochs ...
MIN_WINDOW = 2  # ... and at least 2 epochs (each window mean averages at least 2 epochs)
TAIL_TOLERANCE = 0.02  # |change| over the end window, as a fraction of the loss range
LATE_FRACTION = 0.25  # the late window: last 25 % of the high-lr epochs
LATE_TOLERANCE = 0.05  # |change| over the late window, as a fraction of the loss range
HIGH_LR_FRACTION = 0.5  # high-lr epochs: lr >= half the peak lr
MIN_SCALE = 0.05  # the loss range counts as at least 5 % of max |loss| (a loss that never moved)


@dataclass(frozen=True)
class Convergence:
    """The verdict and the numbers behind it (changes are fractions of the loss range, unitless)."""

    converged: bool
    epochs: int
    tail_change: float  # change over the end window (NaN when too short to judge)
    tail_epochs: int  # its width in epochs
    late_change: float  # change over the late window (NaN when too short to judge)
    late_epochs: int  # its width in epochs
    late_end_epoch: int  # the late window's last epoch (1-based); E when the lr never fell below half
    final_lr_ratio: float  # the last epoch's lr / the peak lr (NaN without an lr)
    reason: str  # one line, e.g. "converged" or "loss still falling at the end: 6.1% of its range ..."

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN becomes None; floats rounded to 6 decimals."""
        out = {}
        for key, value in asdict(self).items():
            if isinstance(value, float):
                value = None if not math.isfinite(value) else round(value, 6)
            out[key] = value
        return out


def window_change(loss: np.ndarray, width: int, scale: float) -> float:
    """(mean of the ``width`` epochs before the last ``width``) - (mean of the last ``width``), / ``scale``.

    Positive while the loss is falling; NaN when ``loss`` has fewer than ``2 * width`` epochs.
    """
    n = len(loss)
    if width < 1 or 2 * width > n:
        return float("nan")
    return float((loss[n - 2 * width : n - width].mean() - loss[n - width :].mean()) / scale)


def high_lr_epochs(lr: Sequence[float] | None, n_epochs: int, fraction: float = HIGH_LR_FRACTION) -> int:
    """How many leading epochs count as high-lr: up to the last epoch with lr >= ``fraction`` x peak."""
    if lr is None:
        return n_epochs
    rates = np.asarray(lr, dtype=np.float64)
    if len(rates) != n_epochs or not np.all(np.isfinite(rates)) or rates.max() <= 0:
        return n_epochs
    return int(np.nonzero(rates >= fraction * rates.max())[0][-1]) + 1


def final_lr_segment(lr: Sequence[float] | None, n_epochs: int, rtol: float = 1e-6) -> int:
    """How many trailing epochs ran at the last epoch's lr (``n_epochs`` without a usable lr)."""
    if lr is None:
        return n_epochs
    rates = np.asarray(lr, dtype=np.float64)
    if len(rates) != n_epochs or n_epochs == 0 or not np.all(np.isfinite(rates)):
        return n_epochs
    same = np.isclose(rates, rates[-1], rtol=rtol, atol=0.0)
    differs = np.nonzero(~same)[0]
    return n_epochs if len(differs) == 0 else n_epochs - 1 - int(differs[-1])


def _width(fraction: float, n: int, min_window: int) -> int:
    return max(min_window, math.ceil(fraction * n - 1e-9))


def assess_convergence(
    train_loss: Sequence[float],
    lr: Sequence[float] | None = None,
    *,
    tail_fraction: float = TAIL_FRACTION,
    tail_tolerance: float = TAIL_TOLERANCE,
    late_fraction: float = LATE_FRACTION,
    late_tolerance: float = LATE_TOLERANCE,
    high_lr_fraction: float = HIGH_LR_FRACTION,
    min_window: int = MIN_WINDOW,
    min_scale: float = MIN_SCALE,
) -> Convergence:
    """Judge one run's convergence from its per-epoch mean training loss (module docstring).

    ``train_loss``: one value per epoch, in order. ``lr``: the lr of each epoch (optional; without it the
    late window is taken from all epochs). Thresholds are fractions of the loss range (unitless).
    """
    loss = np.asarray(train_loss, dtype=np.float64)
    n = len(loss)
    rates = None if lr is None else np.asarray(lr, dtype=np.float64)
    final_lr = float("nan")
    if rates is not None and len(rates) == n and n and np.isfinite(rates).all() and rates.max() > 0:
        final_lr = float(rates[-1] / rates.max())

    def verdict(ok: bool, tail: float, tw: int, late: float, lw: int, end: int, why: str) -> Convergence:
        return Convergence(ok, n, tail, tw, late, lw, end, final_lr, why)

    if n < 2 * min_window:
        return verdict(False, math.nan, 0, math.nan, 0, n, f"only {n} epoch(s): too few to judge")
    if not np.all(np.isfinite(loss)):
        return verdict(False, math.nan, 0, math.nan, 0, n, "the training loss is not finite")
    scale = max(float(loss.max() - loss.min()), min_scale * float(np.abs(loss).max()), 1e-12)
    segment = final_lr_segment(rates, n)
    tail_span = segment if segment >= 2 * min_window else n
    tail_width = min(_width(tail_fraction, n, min_window), tail_span // 2)
    tail = window_change(loss, tail_width, scale)
    high = high_lr_epochs(rates, n, high_lr_fraction)
    late_n = high if high >= 2 * min_window else n
    late_width = min(_width(late_fraction, late_n, min_window), late_n // 2)
    late = window_change(loss[:late_n], late_width, scale)
    problems = []
    if abs(tail) > tail_tolerance:
        problems.append(
            f"loss still {'falling' if tail > 0 else 'rising'} at the end: {100 * abs(tail):.1f}% of its "
            f"range over the last {tail_width} epochs (tolerance {100 * tail_tolerance:g}%)"
        )
    if abs(late) > late_tolerance:
        where = f"epochs {late_n - late_width + 1}-{late_n}" + (" (before the lr fell)" if late_n < n else "")
        problems.append(
            f"loss moved {100 * abs(late):.1f}% of its range over {where} "
            f"(tolerance {100 * late_tolerance:g}%)"
        )
    why = "; ".join(problems) if problems else "converged"
    return verdict(not problems, tail, tail_width, late, late_width, late_n, why)


CRITERION = (
    f"training loss flat at the end (change over the last {TAIL_FRACTION:.0%} of epochs, at least "
    f"{MIN_WINDOW}, within the epochs at the final lr when they are {2 * MIN_WINDOW} or more, "
    f"<= {TAIL_TOLERANCE:.0%} of the loss range) and before the lr fell below "
    f"{HIGH_LR_FRACTION:.0%} of its peak (change over the last {LATE_FRACTION:.0%} of those epochs "
    f"<= {LATE_TOLERANCE:.0%}); see kdfair.convergence"
)


def criterion_info() -> dict[str, Any]:
    """The criterion and its default thresholds, as recorded in ``audit.json``."""
    return {
        "criterion": CRITERION,
        "tail_fraction": TAIL_FRACTION,
        "tail_tolerance": TAIL_TOLERANCE,
        "late_fraction": LATE_FRACTION,
        "late_tolerance": LATE_TOLERANCE,
        "high_lr_fraction": HIGH_LR_FRACTION,
        "min_window": MIN_WINDOW,
        "min_scale": MIN_SCALE,
    }
