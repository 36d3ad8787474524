"""The audit engine: a folder of runs in the prediction format -> tidy tables.

The tables are those of docs/ARCHITECTURE.md, "Audit output".

:func:`audit_runs` reads every run's metadata first (an unknown role or a condition with too few seeds fails
before any prediction is loaded), loads the reference run (first teacher seed), builds one kNN graph for
individual fairness, then streams over the runs -- one run's probabilities in memory per worker -- keeping
only scalars, class accuracies and predicted labels. From these it computes the seed summaries, the Welch
class tests (#SC: NDS vs DS, #TC: teacher vs DS, SPEC §4) and the seed-paired disagreement matrices.
:func:`kdfair.audit.write.write_audit` writes the tables into a temporary folder and renames it into place,
so a failed audit leaves no partial output.

The options that change what is audited (:class:`kdfair.audit.options.AuditOptions`) are checked before any
file is read and recorded in ``audit.json`` ``options``, the keyword arguments of :func:`audit_runs` that
repeat the audit (``kdfair report RUNS_DIR`` does, :mod:`kdfair.report.source`).

AUROC (``auroc=``, ``kdfair audit --auroc always|auto|never``): ``auto`` (the default) computes it only for
tasks with at most ``AUROC_MAX_CLASSES`` (100) classes -- BIRD's tasks have 2-10; on 1,000 classes its
1,000 one-vs-rest rankings cost about a second per run, a minute for a 60-run sweep. When it is left out,
``run_metrics.csv`` has no ``auroc`` rows and ``audit.json`` says so once, in ``auroc``
(``{"mode", "computed", "note"}``), rather than in a warning per run.

Large sweeps (more than ``PARALLEL_THRESHOLD`` logit values, or ``jobs`` > 1) use a pool of forked workers,
one torch thread each, for the kNN graph and the runs (:mod:`kdfair.audit.parallel`).

Run health -- degenerate predictors (from each run's predicted labels), convergence (from each run folder's
``epochs.csv``) and the learning curves -- is :mod:`kdfair.audit.health`'s, added in ``_aggregate``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from kdfair import __version__
from kdfair.audit import tables
from kdfair.audit.conditions import Condition, group_conditions, reference_conditions
from kdfair.audit.counterfactual import counterfactual_info, individual_fairness_info
from kdfair.audit.health import audit_health
from kdfair.audit.inputs import Reference, resolve_representation
from kdfair.audit.noise import noise_info, noise_tables, null_plans
from kdfair.audit.options import AuditOptions, relative_run_dirs, representation_option
from kdfair.audit.parallel import stream_parallel
from kdfair.audit.runmetrics import RunContext, RunResult, audit_run
from kdfair.audit.write import write_audit
from kdfair.discovery import SkippedRun
from kdfair.errors import KdfairError, KdfairWarning
from kdfair.metrics.individual import BLOCK_ROWS, KnnProblem, knn_rows, prepare_knn
from kdfair.metrics.noise import DEFAULT_PERMUTATIONS
from kdfair.predictions import RunMeta, RunPredictions, load_predictions, read_run_meta

# Above this many logit values (runs x samples x classes) the audit uses a process pool by default.
PARALLEL_THRESHOLD = 200_000_000
AUROC_MAX_CLASSES = 100  # --auroc auto computes AUROC up to this many classes (BIRD's tasks have 2-10)


@dataclass
class AuditResult:
    """Everything :func:`~kdfair.audit.write.write_audit` writes; column meanings in docs/ARCHITECTURE.md,
    "Audit output"."""

    info: dict[str, Any]  # audit.json
    run_metrics: pd.DataFrame
    summary: pd.DataFrame
    class_accuracy: pd.DataFrame
    class_tests: pd.DataFrame
    significance_counts: pd.DataFrame
    disagreement: dict[str, np.ndarray]  # condition id -> (C, C) seed-averaged counts, rows = teacher
    disagreement_rate: pd.DataFrame
    # run_health, condition_health, learning_curves (kdfair.audit.health): file stem -> table
    health: dict[str, pd.DataFrame] = field(default_factory=dict)
    # noise_floor, noise_floor_summary, fairness_tests (kdfair.audit.noise): file stem -> table
    noise: dict[str, pd.DataFrame] = field(default_factory=dict)
    # wall seconds of the stages (context: reference run + representation; knn; runs; aggregate)
    # and summed per-run seconds over all processes (load, metrics); not written (timings vary)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return list(self.info["warnings"])

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the audit by file stem (``summary`` is ``summary.csv``), in the order written."""
        return {
            "run_metrics": self.run_metrics,
            "summary": self.summary,
            "class_accuracy": self.class_accuracy,
            "class_tests": self.class_tests,
            "significance_counts": self.significance_counts,
            "disagreement_rate": self.disagreement_rate,
            **self.health,
            **self.noise,
        }

    def write(self, out_dir: str | Path) -> Path:
        """Write the audit folder that ``kdfair audit`` writes (:func:`write_audit`); returns ``out_dir``."""
        return write_audit(self, out_dir)


@dataclass(frozen=True)
class RunSet:
    """The runs of one audit: each run's folder and metadata, and where they came from.

    ``root``: the runs folder (an in-memory audit's is the label ``<memory>``). ``preloaded``: each run's
    validated predictions by run folder when they are already in memory (:mod:`kdfair.audit.api`); else each
    run is loaded from its folder when it is audited. ``skipped``: incomplete folders left out
    (:mod:`kdfair.discovery`), recorded in ``audit.json`` ``skipped_runs``.
    """

    root: Path
    metas: list[tuple[Path, RunMeta]]
    preloaded: dict[Path, RunPredictions] | None = None
    skipped: list[SkippedRun] = field(default_factory=list)

    def load(self, run_dir: Path, meta: RunMeta) -> RunPredictions:
        """The predictions of ``run_dir``: from memory, else read and validated from the folder."""
        if self.preloaded is not None:
            return self.preloaded[run_dir]
        return load_predictions(run_dir, meta)


def audit_runs(
    runs_dir: str | Path,
    *,
    level: float = 0.05,
    representation: str | Path | None = None,
    k: int = 5,
    jobs: int | None = None,
    progress: bool = False,
    auroc: str = "auto",
    permutations: int = DEFAULT_PERMUTATIONS,
    skip_incomplete: bool = False,
    run_dirs: Sequence[str | Path] | None = None,
) -> AuditResult:
    """Audit every run folder under ``runs_dir``, or those of ``run_dirs`` (module docstring); nothing is
    written.

    ``level``: significance level of the Welch tests (raw and Benjamini-Hochberg). ``representation``:
    ``None``/``"auto"``, ``"teacher"``, ``"none"`` or a path to an npz (see
    :func:`kdfair.audit.inputs.resolve_representation`). ``k``: neighbours for individual fairness.
    ``jobs``: worker processes over runs (default: 1 for small sweeps, else up to 2). Every
    :class:`KdfairWarning` raised is recorded, deduplicated, in ``info["warnings"]``. ``auroc``:
    ``"always"``, ``"never"`` or ``"auto"`` (computed only for at most ``AUROC_MAX_CLASSES`` classes: on
    1,000 classes it costs about a second per run); whether it was computed, and why not, is recorded in
    ``info["auroc"]``. ``permutations``: B of the noise floor of DPD, EOD and DEO (0: none; recorded in
    ``info["noise_floor"]``, :mod:`kdfair.audit.noise`). ``skip_incomplete``: leave out incomplete run
    folders (:mod:`kdfair.discovery`) instead of failing; each is named in ``info["skipped_runs"]``.
    ``run_dirs``: audit only these run folders (relative to ``runs_dir``, or absolute below it; a sweep's
    finished runs), each checked as a found one; None: every run folder below ``runs_dir``. Every option but
    ``jobs`` and ``progress`` is recorded in ``info["options"]`` (:mod:`kdfair.audit.options`). User errors
    raise :class:`~kdfair.errors.KdfairError` subclasses.
    """
    options = AuditOptions(
        level=level,
        representation=representation_option(representation),
        k=k,
        auroc=auroc,
        permutations=permutations,
        skip_incomplete=skip_incomplete,
        run_dirs=relative_run_dirs(runs_dir, run_dirs),
    )
    found = options.find_runs(runs_dir)
    metas = [(run_dir, read_run_meta(run_dir)) for run_dir in found.run_dirs]
    runs = RunSet(Path(runs_dir), metas, skipped=found.skipped)
    return audit_run_set(runs, options, jobs=jobs, progress=progress)


def audit_run_set(
    runs: RunSet, options: AuditOptions | None = None, *, jobs: int | None = None, progress: bool = False
) -> AuditResult:
    """The audit of :func:`audit_runs` on runs already found, with ``options`` (default: the defaults;
    recorded in ``info["options"]``); ``jobs`` and ``progress`` as there. The one code path of
    ``kdfair audit`` and the Python API (:mod:`kdfair.audit.api`)."""
    options = AuditOptions() if options is None else options
    level, k, auroc = options.level, options.k, options.auroc
    runs_dir = runs.root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KdfairWarning)
        conditions = group_conditions(runs.metas)
        timings = {"start": time.perf_counter()}
        ctx, problem, first = _context(runs, conditions, options.representation, k, auroc)
        timings["null_setup"] = time.perf_counter()
        ctx = replace(ctx, null_plans=null_plans(ctx.reference, options.permutations))  # shared by every run
        timings["runs"] = time.perf_counter()
        timings["null_setup"] = timings["runs"] - timings["null_setup"]
        results = list(_stream(conditions, ctx, problem, first, jobs, progress, timings, runs.preloaded))
        timings["aggregate"] = time.perf_counter()
        result = _aggregate(runs_dir, conditions, ctx, results, options)
        timings["end"] = time.perf_counter()
    result.info["auroc"] = _auroc_info(auroc, ctx)
    result.info["noise_floor"] = noise_info(options.permutations, result.noise["noise_floor_summary"], level)
    result.info["skipped_runs"] = [skipped.as_dict() for skipped in runs.skipped]  # kdfair.discovery
    result.timings = _timings(timings, results)
    messages = [m for r in results for m in r.warnings]
    messages += [str(w.message) for w in caught if issubclass(w.category, KdfairWarning)]
    result.info["warnings"] = list(dict.fromkeys(messages))
    for w in caught:  # other warnings (numpy, pandas) are passed on, not swallowed
        if not issubclass(w.category, KdfairWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _auroc_info(mode: str, ctx: RunContext) -> dict[str, Any]:
    """``audit.json``'s ``auroc``: the mode, whether AUROC was computed and, if not, a note saying why."""
    note = None
    if not ctx.auroc:
        note = (
            f"AUROC left out: {ctx.reference.n_classes} classes > {AUROC_MAX_CLASSES} (--auroc auto); "
            "use --auroc always to compute it"
            if mode == "auto"
            else "AUROC left out (--auroc never)"
        )
    return {"mode": mode, "computed": ctx.auroc, "note": note}


def _timings(marks: dict[str, float], results: list[RunResult]) -> dict[str, float]:
    return {
        "context": marks["runs"] - marks["start"] - marks["null_setup"],
        "null_setup": marks["null_setup"],  # drawing the noise floor's permutations (parent process)
        "knn": marks.get("knn", 0.0),
        "runs": marks["aggregate"] - marks["runs"] - marks.get("knn", 0.0),
        "aggregate": marks["end"] - marks["aggregate"],
        "load_total": sum(r.seconds[0] for r in results),
        "metrics_total": sum(r.seconds[1] for r in results),
        "null_total": sum(r.null_seconds for r in results),  # of which the noise floor's null
    }


def _context(
    runs: RunSet,
    conditions: list[Condition],
    representation: str,
    k: int,
    auroc: str,
) -> tuple[RunContext, KnnProblem | None, tuple[Path, RunMeta, Any]]:
    """Load the reference run and resolve the representation; the kNN graph is left to :func:`_stream`."""
    teacher, _ = reference_conditions(conditions)
    first_cond = teacher if teacher is not None else conditions[0]
    first_dir, first_meta = first_cond.run_dirs[0], first_cond.metas[0]
    first_run = runs.load(first_dir, first_meta)
    ref = Reference.from_run(first_run)
    name, x = resolve_representation(representation, runs.root, first_run if teacher else None, ref)
    problem = None
    if x is not None:
        if len(x) <= k:
            raise KdfairError(f"--k {k} needs more than {k} test samples, got {len(x)}")
        problem = prepare_knn(x, k=k)
    with_auroc = auroc == "always" or (auroc == "auto" and ref.n_classes <= AUROC_MAX_CLASSES)
    ctx = RunContext(ref, x, None, k, description=name, auroc=with_auroc, option=representation)
    return ctx, problem, (first_dir, first_meta, first_run)


def _default_jobs(n_runs: int, ref: Reference) -> int:
    size = n_runs * len(ref.y_true) * ref.n_classes
    if size < PARALLEL_THRESHOLD or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(2, os.cpu_count() or 1, n_runs - 1))


def _serial(
    ctx: RunContext,
    problem: KnnProblem | None,
    first: tuple[Path, RunMeta, str, Any],
    tasks: list[tuple[Path, RunMeta, str]],
    timings: dict[str, float],
    preloaded: dict[Path, RunPredictions] | None,
) -> Iterator[RunResult]:
    """The kNN graph (torch's threads), then the runs one at a time in this process."""
    if problem is not None:
        start = time.perf_counter()
        indices = np.empty((problem.n, problem.k), dtype=np.int64)
        distances = np.empty((problem.n, problem.k), dtype=np.float64)
        knn_rows(problem, 0, problem.n, indices, distances, progress=problem.n > 4 * BLOCK_ROWS)
        ctx = replace(ctx, neighbors=(indices, distances))
        timings["knn"] = time.perf_counter() - start
    yield audit_run(first[0], first[1], first[2], ctx, run=first[3])
    for task in tasks:
        yield audit_run(*task, ctx, run=None if preloaded is None else preloaded[task[0]])


def _stream(
    conditions: list[Condition],
    ctx: RunContext,
    problem: KnnProblem | None,
    first: tuple[Path, RunMeta, Any],
    jobs: int | None,
    progress: bool,
    timings: dict[str, float],
    preloaded: dict[Path, RunPredictions] | None = None,
) -> Iterator[RunResult]:
    """Build the kNN graph and audit the runs (the reference run first, already loaded), in a pool of forked
    workers when ``jobs`` > 1 (:mod:`kdfair.audit.parallel`). ``preloaded``: the runs' predictions by folder
    when they are in memory (forked workers see them without a copy)."""
    first_dir, first_meta, first_run = first
    ids = {run_dir: c.id for c in conditions for run_dir in c.run_dirs}
    tasks = [
        (d, m, ids[d]) for c in conditions for d, m in zip(c.run_dirs, c.metas, strict=True) if d != first_dir
    ]
    jobs = _default_jobs(len(tasks) + 1, ctx.reference) if jobs is None else max(1, jobs)
    reference = (first_dir, first_meta, ids[first_dir], first_run)
    del first, first_run
    if jobs == 1 or len(tasks) < 2:
        results = _serial(ctx, problem, reference, tasks, timings, preloaded)
    else:
        results = stream_parallel(ctx, problem, reference, tasks, jobs, timings, preloaded)
    # disable=None: tqdm shows the bar only when stderr is a terminal
    with tqdm(total=len(tasks) + 1, desc="audit", unit="run", disable=None if progress else True) as bar:
        for result in results:
            yield result
            bar.update()


def _aggregate(
    runs_dir: Path,
    conditions: list[Condition],
    ctx: RunContext,
    results: list[RunResult],
    options: AuditOptions,
) -> AuditResult:
    ref = ctx.reference
    level = options.level
    by_condition = {c.id: [r for r in results if r.condition == c.id] for c in conditions}
    run_metrics = tables.run_metrics_table(conditions, by_condition)
    comparisons = tables.welch_comparisons(conditions, by_condition, level)
    disagreement, rates = tables.disagreements(conditions, by_condition, ref)
    info = {
        "kdfair_version": __version__,
        "runs_dir": str(runs_dir),
        "options": options.as_dict(),  # the keyword arguments of audit_runs (kdfair.audit.options)
        "n_runs": len(results),
        "n_classes": ref.n_classes,
        "class_names": ref.class_names,
        "attributes": ref.attribute_levels,
        "level": level,
        "n_seeds": {c.id: c.n_seeds for c in conditions},
        "conditions": [c.describe() for c in conditions],
        "settings": tables.collect_settings(conditions),
        "individual_fairness": individual_fairness_info(ctx, results, runs_dir),  # kNN space, pair shares
        "counterfactual": counterfactual_info(results),  # twin predictions (counterfactual.npz)
        "reference_run": str(ref.run_dir),
        "warnings": [],
    }
    health = audit_health(conditions, by_condition, ref.y_true, ref.n_classes)
    info.update(health.info)  # "degenerate" and "convergence" (kdfair.audit.health)
    noise = noise_tables(conditions, by_condition, level)  # noise floor, between-condition tests
    return AuditResult(
        info=info,
        run_metrics=run_metrics,
        summary=tables.summary_table(run_metrics),
        class_accuracy=tables.class_accuracy_table(conditions, by_condition),
        class_tests=comparisons[0],
        significance_counts=comparisons[1],
        disagreement=disagreement,
        disagreement_rate=rates,
        health=health.tables(),
        noise=noise,
    )
