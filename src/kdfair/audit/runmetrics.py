"""Per-run metrics: load one run, check it against the reference, compute metrics, drop its probabilities.

Which metrics, in which order, and from which inputs: the table :data:`kdfair.metrics.table.METRICS`.

This is the unit of work the audit streams over (optionally in a process pool): a run's probabilities live
only inside :func:`audit_run`; what comes back is a :class:`RunResult` of scalars, class accuracies and the
predicted labels (kept for the disagreement matrices).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kdfair.audit.counterfactual import run_pairs
from kdfair.audit.inputs import Reference
from kdfair.audit.noise import run_nulls
from kdfair.errors import KdfairWarning
from kdfair.metrics import classwise
from kdfair.metrics.table import METRICS, MetricInputs, TwinPairs
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


def run_metrics(
    probs: np.ndarray, y_pred: np.ndarray, ctx: RunContext, twins: dict[str, TwinPairs] | None = None
) -> list[tuple[str, str, float]]:
    """Every per-run metric of the table :data:`~kdfair.metrics.table.METRICS` (SPEC §4-§6, fractions), in
    the audit's long format (metric, attribute, value).

    ``probs`` (N, C, float32 from :func:`~kdfair.predictions.load_predictions`) and ``y_pred`` (N,) are in
    the reference's row order; ``twins``: the run's counterfactual twins per attribute changed. Rows: the
    whole-run metrics in table order, then per protected attribute its metrics, then per attribute the
    twins change the twin metrics. A metric whose inputs are absent is left out: without a representation
    (``needs_features``), without twins (``needs_twins``), and AUROC when ``ctx.auroc`` is false.
    """
    ref = ctx.reference
    common = MetricInputs(
        y_true=ref.y_true,
        y_pred=y_pred,
        n_classes=ref.n_classes,
        probs=probs,
        features=ctx.representation,
        neighbors=ctx.neighbors,
        k=ctx.k,
        validated=True,
    )
    skipped = set() if ctx.auroc else {"auroc"}  # --auroc (the engine resolves auto by the classes)
    chosen = [
        m
        for m in METRICS.values()
        if m.name not in skipped and (ctx.representation is not None or not m.needs_features)
    ]
    rows = [(m.name, "", m.compute(common)) for m in chosen if not m.per_attribute]
    for name, codes in ref.attributes.items():
        inputs = replace(common, sensitive_features=codes)
        rows += [(m.name, name, m.compute(inputs)) for m in chosen if m.per_attribute and not m.needs_twins]
    for name, pairs in (twins or {}).items():
        inputs = replace(common, twins=pairs)
        rows += [(m.name, name, m.compute(inputs)) for m in chosen if m.needs_twins]
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
        twins, extras = run_pairs(run_dir, ctx)  # counterfactual twins, kNN pair shares
        scalars = run_metrics(probs, y_pred, ctx, twins)
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
        accuracy=next(value for metric, _, value in scalars if metric == "accuracy"),
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
