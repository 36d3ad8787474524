"""Run a sweep's units: in this process (``serial``), in local worker processes, or as Ray tasks.

All three share one scheduler (:func:`run_units`): a unit starts once every unit it depends on (its teacher)
has finished; units already done on disk are skipped; a failed unit is reported with the runs it left
unfinished and its error, its dependents are skipped, and every other unit still runs. The caller turns any
failure into a non-zero exit.

Local workers are spawned processes (``spawn``: safe with torch and CUDA); each sets torch's intra-op threads
to ``max(1, cores // workers)`` and, on a GPU machine, sees one GPU through ``CUDA_VISIBLE_DEVICES``: an
entry of this process's own mask when it has one, else index ``i mod #GPUs``
(:func:`kdfair.sweep.worker.worker_gpu_masks`). Ray tasks run the same function
(:func:`kdfair.sweep.worker.run_unit`) on a local Ray instance or a cluster.

Progress: every unit logs a start line and a finish line (``[5/6] finished ds_s0 in 12.3 s (5/6 units done,
40 s elapsed)``). How the rest looks depends on where stderr goes (:func:`progress_style`):

- a terminal: in this process (one worker) each epoch shows a tqdm bar; worker processes and Ray tasks print
  one line per epoch instead, and the sweep shows an overall bar over units on stderr;
- a file or a pipe (``kdfair sweep ... 2> log``): no bar is redrawn. Every unit, here or in a worker, prints
  one line per epoch (and one a minute within a long epoch), and the sweep prints a plain line on stderr,
  ``progress: 5/12 units finished (42%) in 2 min 5 s, about 2 min 55 s left``, at most every
  ``PROGRESS_LINE_SECONDS`` and when the last unit finishes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tqdm.auto import tqdm

from kdfair.errors import ConfigError
from kdfair.sweep.expand import Unit
from kdfair.sweep.worker import (
    VISIBLE_DEVICES,
    gpu_count,
    run_unit,
    threads_per_worker,
    worker_gpu_masks,
)

Log = Callable[[str], None]
ExecutorName = Literal["serial", "local", "ray"]
Style = Literal["bar", "lines"]  # redrawn tqdm bars (a terminal) or plain lines (a log file)
PROGRESS_LINE_SECONDS = 30.0  # the sweep's plain progress lines: at most one per 30 s, and the last one


def progress_style(progress: bool | Style, stream: Any = None) -> Style | None:
    """How progress is shown: ``True`` picks ``"bar"`` when ``stream`` (default: stderr) is a terminal and
    ``"lines"`` otherwise (a log stays readable: no carriage returns); ``False`` gives None (no progress)."""
    if progress is not True:
        return progress or None
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "lines"


@dataclass(frozen=True)
class UnitResult:
    """What became of one unit."""

    unit_id: str
    status: Literal["done", "skipped", "failed", "blocked"]  # skipped: done already; blocked: teacher failed
    seconds: float = 0.0
    error: str | None = None  # one line: "<ExceptionType>: <message>"
    details: str | None = None  # the full traceback, for the log
    unfinished: tuple[str, ...] = ()  # run ids left without DONE

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped")


class Backend(Protocol):
    capacity: int  # units it runs at once; the scheduler submits no more

    def submit(self, unit: Unit) -> Any: ...

    def wait(self, handles: list[Any]) -> list[tuple[Any, BaseException | None]]: ...

    def close(self) -> None: ...


def run_units(
    units: Sequence[Unit],
    *,
    executor: ExecutorName = "serial",
    workers: int = 1,
    address: str | None = None,
    device: str | None = None,
    progress: bool | Style = True,
    log: Log = print,
) -> list[UnitResult]:
    """Run ``units`` (in plan order) with dependencies; returns one result per unit, in plan order.

    ``progress`` (:func:`progress_style`; True: by whether stderr is a terminal): with ``"bar"``, units
    trained in this process show a bar per epoch; with worker processes or Ray, units print a line per epoch
    and the sweep shows a bar over units (on stderr). With ``"lines"``, every unit prints lines per epoch and
    the sweep a plain progress line on stderr now and then. False: unit start and finish lines only.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    style = progress_style(progress)
    backend = _make_backend(executor, workers, address, device, style)
    serial = isinstance(backend, _SerialBackend)  # its bar per epoch and a bar over units would collide
    try:
        return schedule(units, backend, log, progress=None if serial and style == "bar" else style)
    finally:
        backend.close()


def _make_backend(
    executor: ExecutorName, workers: int, address: str | None, device: str | None, style: Style | None
) -> Backend:
    lines: Literal["lines", False] = "lines" if style else False  # workers' stderr is no terminal of theirs
    if executor == "serial" or (executor == "local" and workers == 1):
        return _SerialBackend(device, True if style == "bar" else lines)
    if executor == "local":
        return _LocalBackend(workers, device, lines)
    if executor == "ray":
        from kdfair.extras import require

        require("ray", "--executor ray")
        from kdfair.sweep.ray_backend import RayBackend

        return RayBackend(workers, address, device, lines)
    raise ConfigError(f"unknown executor '{executor}'; valid executors: local, ray, serial")


def schedule(
    units: Sequence[Unit], backend: Backend, log: Log, *, progress: Style | None = None
) -> list[UnitResult]:
    """Run ``units`` on ``backend``, each once its dependencies succeeded; results in plan order.

    ``progress``: ``"bar"`` shows a tqdm bar over units on stderr (cleared around each log line);
    ``"lines"`` prints a plain progress line on stderr at most every ``PROGRESS_LINE_SECONDS`` and when the
    last unit finishes (:func:`progress_line`); None shows neither.
    """
    unknown = sorted({d for u in units for d in u.depends_on} - {u.unit_id for u in units})
    if unknown:
        raise ValueError(f"units depend on units not in the plan: {', '.join(unknown)}")
    return _Scheduler(units, backend, log, progress).run()


def duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min 5 s"``, ``"3 h 25 min"``: a time span for a log line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def progress_line(results: Sequence[UnitResult], total: int, elapsed: float) -> str:
    """``progress: 5/12 units finished (42%) in 2 min 5 s, about 2 min 55 s left`` (plus ``, 1 failed``).

    The estimate extrapolates the mean time of the units trained so far (not those done already) to the
    units still to come; it is left out until a unit has been trained.
    """
    finished, failed = len(results), sum(not r.ok for r in results)
    trained = sum(r.status == "done" for r in results)
    share = 100 * finished // max(total, 1)
    line = f"progress: {finished}/{total} units finished ({share}%) in {duration(elapsed)}"
    if failed:
        line += f", {failed} failed"
    if trained and finished < total:
        line += f", about {duration(elapsed / trained * (total - finished))} left"
    return line


class _Scheduler:
    def __init__(self, units: Sequence[Unit], backend: Backend, log: Log, progress: Style | None) -> None:
        self.units, self.backend, self.printer = list(units), backend, log
        self.position = {u.unit_id: f"[{i}/{len(units)}]" for i, u in enumerate(units, start=1)}
        self.results: dict[str, UnitResult] = {}
        self.running: dict[Any, tuple[Unit, float]] = {}
        self.waiting = list(units)
        self.started = time.monotonic()
        self.bar = tqdm(
            total=len(units), desc="units", unit="unit", disable=progress != "bar", dynamic_ncols=True
        )
        self.lines = progress == "lines"
        self.last_line = (self.started, 0)  # when the last progress line was printed, and at what count

    def run(self) -> list[UnitResult]:
        try:
            while self.waiting or self.running:
                progressed = self._start_ready()
                if self.running:
                    self._collect()
                elif self.waiting and not progressed:
                    raise ValueError(
                        f"dependency cycle among units: {', '.join(u.unit_id for u in self.waiting)}"
                    )
                self._progress_line()
        finally:
            self.bar.close()
        return [self.results[u.unit_id] for u in self.units]

    def _progress_line(self) -> None:
        """In ``"lines"`` mode, a plain progress line on stderr: when a unit has finished since the last line
        and ``PROGRESS_LINE_SECONDS`` have passed, or when every unit has finished."""
        now, count = time.monotonic(), len(self.results)
        due = count > self.last_line[1] and now - self.last_line[0] >= PROGRESS_LINE_SECONDS
        if self.lines and (due or (count == len(self.units) and count > self.last_line[1])):
            self.last_line = (now, count)
            print(
                progress_line(list(self.results.values()), len(self.units), now - self.started),
                file=sys.stderr,
                flush=True,
            )

    def log(self, line: str) -> None:
        self.bar.clear()
        self.printer(line)
        self.bar.refresh()

    def _record(self, result: UnitResult) -> None:
        self.results[result.unit_id] = result
        self.bar.update(1)

    def _done_so_far(self) -> str:
        done = sum(r.ok for r in self.results.values())
        return f"{done}/{len(self.units)} units done, {time.monotonic() - self.started:.0f} s elapsed"

    def _start_ready(self) -> bool:
        """Start (or skip, or block) every waiting unit whose dependencies have finished."""
        progressed = False
        for unit in list(self.waiting):
            deps = [self.results.get(d) for d in unit.depends_on]
            if any(r is None for r in deps) and all(r is None or r.ok for r in deps):
                continue
            if all(r is not None for r in deps) and len(self.running) >= self.backend.capacity:
                break  # keep plan order: later units wait for a free slot too
            progressed = True
            self.waiting.remove(unit)
            where = self.position[unit.unit_id]
            failed = [r.unit_id for r in deps if r is not None and not r.ok]
            if failed:
                self._record(UnitResult(unit.unit_id, "blocked", error=f"{failed[0]} failed"))
                self.log(f"{where} not started {unit.unit_id}: {failed[0]}, which it needs, failed")
            elif unit.status() == "done":
                self._record(UnitResult(unit.unit_id, "skipped"))
                self.log(f"{where} done already: {unit.unit_id}")
            else:
                self.log(f"{where} start {unit.unit_id} ({_describe(unit)})")
                started = time.monotonic()
                self.running[self.backend.submit(unit)] = (unit, started)
        return progressed

    def _collect(self) -> None:
        """Wait for at least one running unit and record how it ended."""
        for handle, error in self.backend.wait(list(self.running)):
            unit, started = self.running.pop(handle)
            result = _result(unit, time.monotonic() - started, error)
            self._record(result)
            where = self.position[unit.unit_id]
            if result.status == "done":
                self.log(f"{where} finished {unit.unit_id} in {result.seconds:.1f} s ({self._done_so_far()})")
            else:
                unfinished = ", ".join(result.unfinished) or "none"
                self.log(f"{where} FAILED {unit.unit_id} (unfinished runs: {unfinished}): {result.error}")


def _describe(unit: Unit) -> str:
    runs = unit.run_ids
    return runs[0] if len(runs) == 1 else f"{len(runs)} runs in lockstep: {runs[0]} ... {runs[-1]}"


def _result(unit: Unit, seconds: float, error: BaseException | None) -> UnitResult:
    unfinished = tuple(unit.unfinished())
    if error is None and not unfinished:
        return UnitResult(unit.unit_id, "done", seconds)
    if error is None:
        message = "the trainer returned without writing DONE"
        return UnitResult(unit.unit_id, "failed", seconds, message, None, unfinished)
    first_line = (str(error).strip().splitlines() or [""])[0]
    message = f"{type(error).__name__}: {first_line}"
    details = "".join(traceback.format_exception(error))
    return UnitResult(unit.unit_id, "failed", seconds, message, details, unfinished)


class _SerialBackend:
    """Runs each unit in this process when it is submitted."""

    capacity = 1

    def __init__(self, device: str | None, progress: bool | Literal["lines"]) -> None:
        self.device = device
        self.progress = progress  # True: a bar per epoch; "lines": a line per epoch; False: off
        self.finished: list[tuple[int, BaseException | None]] = []
        self.count = 0

    def submit(self, unit: Unit) -> int:
        self.count += 1
        try:
            run_unit(unit, self.device, None, self.progress)
            self.finished.append((self.count, None))
        except Exception as exc:  # noqa: BLE001 - reported per unit; the sweep goes on
            self.finished.append((self.count, exc))
        return self.count

    def wait(self, handles: list[Any]) -> list[tuple[Any, BaseException | None]]:
        done, self.finished = self.finished, []
        return done

    def close(self) -> None:
        pass


# glibc malloc settings that keep large activations mapped between steps instead of page-faulting them in
# again every step: 1.2-1.4x on CPU training here (PERF-NOTES §1). Read by glibc when a process starts, so
# they are given to the spawned workers; KDFAIR_ALLOCATOR=default (or a GLIBC_TUNABLES of one's own) opts out.
ALLOCATOR_TUNABLES = (
    "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:"
    "glibc.malloc.trim_threshold=17179869184:glibc.malloc.top_pad=1073741824"
)


def _worker_environment() -> dict[str, str | None]:
    """Set the workers' allocator tunables in ``os.environ``; returns the previous values to restore."""
    if sys.platform != "linux" or os.environ.get("KDFAIR_ALLOCATOR") == "default":
        return {}
    if "GLIBC_TUNABLES" in os.environ:
        return {}
    os.environ["GLIBC_TUNABLES"] = ALLOCATOR_TUNABLES
    return {"GLIBC_TUNABLES": None}


class _LocalBackend:
    """A pool of ``workers`` spawned processes."""

    def __init__(self, workers: int, device: str | None, progress: bool | str = False) -> None:
        self.restore = _worker_environment()
        self.capacity = workers
        self.device = device
        self.progress = progress
        self.threads = threads_per_worker(workers)
        context = mp.get_context("spawn")
        gpus = gpu_count() if device in (None, "cuda") else 0
        slots = context.Queue()
        for mask in worker_gpu_masks(workers, gpus, os.environ.get(VISIBLE_DEVICES)):
            slots.put(mask)
        self.pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(slots,)
        )

    def submit(self, unit: Unit) -> Future[list[str]]:
        return self.pool.submit(run_unit, unit, self.device, self.threads, self.progress)

    def wait(self, handles: list[Any]) -> list[tuple[Any, BaseException | None]]:
        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        out: list[tuple[Any, BaseException | None]] = []
        for future in done:
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                error = RuntimeError("a worker process died (killed or out of memory)")
            out.append((future, error))
        return out

    def close(self) -> None:
        for key, value in self.restore.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(slots: Any) -> None:
    """Pin this worker to its GPU (if any) before torch initialises CUDA."""
    gpu = slots.get()
    if gpu is not None:
        os.environ[VISIBLE_DEVICES] = gpu
