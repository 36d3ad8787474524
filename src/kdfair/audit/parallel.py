"""The audit's process pool: the kNN graph and the runs, both spread over forked workers.

Large sweeps (``jobs`` > 1) fork ``jobs`` workers once, each with one torch thread (the workers already
occupy every core; more threads would oversubscribe them). The workers first build the kNN graph of
individual fairness, each a share of its rows, into arrays in shared memory that every process sees
(the graph is built before any run needs it, so its rows are complete when the runs start); then they audit
the runs, one run's probabilities in memory per worker. The parent audits the reference run, already loaded,
while the workers start on the others.
"""

from __future__ import annotations

import mmap
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from kdfair.audit.runmetrics import RunContext, RunResult, audit_run
from kdfair.extras import optional
from kdfair.metrics.individual import KnnProblem, knn_rows
from kdfair.predictions import RunMeta, RunPredictions

KNN_SHARES_PER_WORKER = 4  # row ranges per worker: an even finish when one worker is slowed down

# the context, the kNN problem and in-memory runs (or None), set in the parent before forking
_STATE: dict[str, Any] = {}


def shared_array(shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """A zeroed array in anonymous shared memory: writes in forked children are seen by every process."""
    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(1, count * np.dtype(dtype).itemsize))
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def _init_worker() -> None:
    torch = optional("torch")  # absent in the core install: the kNN graph then runs in numpy
    if torch is not None:
        torch.set_num_threads(1)


def _knn_share(bounds: tuple[int, int]) -> None:
    indices, distances = _STATE["ctx"].neighbors
    knn_rows(_STATE["problem"], bounds[0], bounds[1], indices, distances)


def _audit_task(task: tuple[Path, RunMeta, str]) -> RunResult:
    preloaded = _STATE["preloaded"]  # inherited from the parent at the fork: no copy
    return audit_run(*task, _STATE["ctx"], run=None if preloaded is None else preloaded[task[0]])


def row_shares(n: int, block_rows: int, shares: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into at most ``shares`` consecutive ranges, each a whole number of ``block_rows``."""
    per_share = -(-n // max(1, shares))
    per_share = -(-per_share // block_rows) * block_rows
    return [(start, min(start + per_share, n)) for start in range(0, n, per_share)]


def stream_parallel(
    ctx: RunContext,
    problem: KnnProblem | None,
    first: tuple[Path, RunMeta, str, Any],
    tasks: list[tuple[Path, RunMeta, str]],
    jobs: int,
    timings: dict[str, float],
    preloaded: dict[Path, RunPredictions] | None = None,
) -> Iterator[RunResult]:
    """Build the kNN graph of ``problem`` (if any) and audit the reference run ``first`` (directory, meta,
    condition, loaded predictions) and ``tasks`` in a pool of ``jobs`` forked workers; results in order,
    the reference run first. The graph's wall seconds go to ``timings["knn"]``. ``preloaded``: the runs'
    predictions by folder when they are in memory, else each worker loads its runs."""
    if problem is not None:
        shape = (problem.n, problem.k)
        ctx = replace(ctx, neighbors=(shared_array(shape, np.int64), shared_array(shape, np.float64)))
    _STATE.update(ctx=ctx, problem=problem, preloaded=preloaded)
    try:
        with multiprocessing.get_context("fork").Pool(jobs, initializer=_init_worker) as pool:
            if problem is not None:
                start = time.perf_counter()
                shares = row_shares(problem.n, problem.block_rows, jobs * KNN_SHARES_PER_WORKER)
                pool.map(_knn_share, shares, chunksize=1)
                timings["knn"] = time.perf_counter() - start
            pending = pool.imap(_audit_task, tasks)
            yield audit_run(first[0], first[1], first[2], ctx, run=first[3])
            yield from pending
    finally:
        _STATE.clear()
