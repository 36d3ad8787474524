"""Per-run metrics: load one run, check it against the reference, compute metrics, drop its probabilities.

This is the unit of work the audit streams over (optionally in a process pool): a run's probabilities live
only inside :func:`audit_run`; what comes back is a :class:`RunResult` of scalars, class accuracies and the
predicted labels (kept for the disagreement matrices).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdfair.audit.counterfactual import run_pair_metrics
from kdfair.audit.inputs import Reference
from kdfair.audit.noise import run_nulls
from kdfair.errors import KdfairWarning
from kdfair.metrics import classwise, group
from kdfair.predictions import RunMeta, RunPredictions, load_predictions


@dataclass(frozen=True)
class RunContext:
    """What every run's metrics need besides the run itself (shared by all workers)."""

    reference: Reference
    representation: np.ndarray | None  # (N, d), reference order, or None: no individual fairness
    neighbors: tuple[np.ndarray, np.ndarray] | None  # kNN graph (indices, distances) of the representation
    k: int
    description: str = "none"  # where the representation came from (audit.json individual_fairness)
    auroc: bool = True  # compute AUROC (the engine resolves ``--auroc auto`` from the number of classes)
    option: str = "auto"  # the representation as asked for (--representation)
    # per attribute, the within-class permutations of the noise floor (kdfair.audit.noise); None: no floor
    null_plans: dict[str, Any] | None = None


@dataclass
class RunResult:
    """One run's results. ``scalars``: (metric, attribute or "", value) with values as fractions."""

    condition: str
    seed: int
    run_dir: Path
    accuracy: float
    scalars: list[tuple[str, str, float]]
    class_accuracy: np.ndarray  # (C,)
    normalized_accuracy: np.ndarray  # (C,)
    y_pred: np.ndarray  # (N,) in reference order; int16 when C fits
    warnings: list[str]
    seconds: tuple[float, float] = (0.0, 0.0)  # (loading, metrics) in this process
    # what the audit keeps about the run's pairs (kdfair.audit.counterfactual): "counterfactual", "knn_pairs"
    extras: dict[str, Any] = field(default_factory=dict)
    # (attribute, metric) -> the value and its permutation null (kdfair.audit.noise); and its seconds
    nulls: dict[tuple[str, str], Any] = field(default_factory=dict)
    null_seconds: float = 0.0


def _label_dtype(n_classes: int) -> type[np.integer]:
    return np.int16 if n_classes <= np.iinfo(np.int16).max else np.int32


def run_metrics(probs: np.ndarray, y_pred: np.ndarray, ctx: RunContext) -> list[tuple[str, str, float]]:
    """Every per-run metric of SPEC §4-§6 (fractions), in the audit's long format (metric, attribute, value).

    ``probs`` (N, C, float32 from :func:`~kdfair.predictions.load_predictions`) and ``y_pred`` (N,) are in
    the reference's row order. AUROC is left out when ``ctx.auroc`` is false.
    """
    ref = ctx.reference
    y_true, n_classes = ref.y_true, ref.n_classes
    rows: list[tuple[str, str, float]] = [("accuracy", "", float(np.mean(y_pred == y_true)))]
    if ctx.auroc:
        rows.append(("auroc", "", classwise.auroc(y_true, probs)))
    rows.append(("f1", "", classwise.f1(y_true, y_pred, n_classes)))
    if ctx.representation is not None:
        from kdfair.metrics import individual

        rows.append(
            (
                "individual_unfairness",
                "",
                individual.individual_unfairness(
                    probs, ctx.representation, ctx.k, neighbors=ctx.neighbors, validated=True
                ),
            )
        )
        rows.append(
            (
                "consistency",
                "",
                individual.consistency(
                    y_pred, ctx.representation, ctx.k, neighbors=ctx.neighbors, n_classes=n_classes
                ),
            )
        )
    for name, codes in ref.attributes.items():
        kw = {"sensitive_features": codes, "n_classes": n_classes}
        rows.append(("dpd", name, group.demographic_parity_difference(y_true, y_pred, **kw)))
        rows.append(("eod", name, group.equalized_odds_difference(y_true, y_pred, **kw)))
        rows.append(("deo_mean", name, group.deo(y_true, y_pred, agg="mean", **kw)))
        rows.append(("deo_max", name, group.deo(y_true, y_pred, agg="max", **kw)))
    return [(metric, attr, float(value)) for metric, attr, value in rows]


def audit_run(
    run_dir: Path, meta: RunMeta, condition: str, ctx: RunContext, run: RunPredictions | None = None
) -> RunResult:
    """Load ``run_dir`` (unless ``run`` is given), validate it against the reference and compute its metrics.

    Every :class:`KdfairWarning` raised on the way is returned in ``warnings``, prefixed by the run's folder
    name. Raises :class:`~kdfair.errors.PredictionFormatError` on a run that breaks the format or disagrees
    with the reference.
    """
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KdfairWarning)
        run = run if run is not None else load_predictions(run_dir, meta)
        loaded = time.perf_counter()
        ref = ctx.reference
        index = ref.alignment(run.sample_id, str(run_dir))
        ref.check_run(run, index)
        probs = run.probs if index is None else run.probs[index]
        y_pred = np.asarray(probs.argmax(axis=1), dtype=np.int64)
        scalars = run_metrics(probs, y_pred, ctx)
        pair_rows, extras = run_pair_metrics(run_dir, probs, ctx)  # counterfactual twins, kNN pair shares
        scalars += pair_rows
        nulls, null_seconds = run_nulls(y_pred, ctx.null_plans)  # noise floor of DPD, EOD, DEO
        class_acc = classwise.class_accuracy(ref.y_true, y_pred, ref.n_classes)
        normalized = classwise.normalized_class_accuracy(ref.y_true, y_pred, ref.n_classes)
    messages = [f"{run_dir.name}: {w.message}" for w in caught if issubclass(w.category, KdfairWarning)]
    for w in caught:
        if not issubclass(w.category, KdfairWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return RunResult(
        condition=condition,
        seed=meta.seed,
        run_dir=run_dir,
        accuracy=scalars[0][2],
        scalars=scalars,
        class_accuracy=class_acc,
        normalized_accuracy=normalized,
        y_pred=y_pred.astype(_label_dtype(ref.n_classes)),
        warnings=messages,
        seconds=(loaded - start, time.perf_counter() - loaded),
        extras=extras,
        nulls=nulls,
        null_seconds=null_seconds,
    )
