"""Time ``kdfair audit`` on an ImageNet-sized synthetic sweep and record it in BENCHMARKS.md ("## Audit").

The sweep: 1,000 classes, 50,000 test samples, 60 runs (5 seeds x {teacher, NDS, DS at T = 1..10}), one
binary protected attribute, float16 logits, 16-d features and representation. It is generated once into
``--workdir`` (about 6 GB, several minutes) and reused. The timed part is ``audit_runs`` + ``write_audit``,
exactly what ``kdfair audit`` does, with the noise floor of DPD, EOD and DEO (``--permutations``, default
the audit's 999 within-class permutations per attribute); the split reports the null's share of the time.
``--small`` checks that the script works on a 100-class, 5,000-sample, 12-run sweep and writes nothing to
BENCHMARKS.md. Usage::

    python benchmarks/bench_audit.py [--workdir DIR] [--jobs N] [--repeat 1] [--permutations B] [--no-write]
    python benchmarks/bench_audit.py --small
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kdfair.audit.engine import audit_runs, write_audit
from kdfair.io import write_text_atomic
from kdfair.metrics.noise import DEFAULT_PERMUTATIONS
from kdfair.synthetic import make_synthetic_sweep

N_CLASSES, N_SAMPLES, SEEDS, TEMPERATURES = 1000, 50_000, range(5), list(range(1, 11))
SMALL = {"n_classes": 100, "n_samples": 5000, "seeds": [0, 1], "temperatures": [1, 2, 4, 8]}  # --small
TARGET_SECONDS = 30.0
BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SECTION = "## Audit"


def ensure_sweep(workdir: Path, small: bool = False) -> Path:
    """Generate the sweep (``SMALL`` with ``small``) into ``workdir`` unless a complete one is there (marker
    file ``COMPLETE``)."""
    marker = workdir / "COMPLETE"
    size = SMALL if small else {"n_classes": N_CLASSES, "n_samples": N_SAMPLES, "seeds": list(SEEDS)}
    size.setdefault("temperatures", TEMPERATURES)
    if not marker.exists():
        print(f"generating the synthetic sweep into {workdir} (once) ...", file=sys.stderr)
        start = time.perf_counter()
        make_synthetic_sweep(
            workdir,
            **size,
            attributes={"group": 2},
            logit_dtype="float16",
            feature_dim=16,
        )
        write_text_atomic(marker, "ok\n")
        print(f"generated in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return workdir


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        match = re.search(r"Model name:\s*(.+)", out)
        return match.group(1).strip() if match else platform.processor()
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_audit(workdir: Path, jobs: int | None, permutations: int) -> tuple[float, int, dict[str, float]]:
    """Seconds for audit_runs + write_audit on ``workdir``, the number of runs, and the time split.

    The split: wall seconds of the reference run + kNN graph (``context``, of which ``knn``), the runs,
    the aggregation (Welch tests and tables) and writing; summed per-run load and metrics seconds, and of
    these the noise floor's null (``null_total``), plus drawing its permutations (``null_setup``); the null's
    share of the summed per-run seconds; the 1-minute load average just after the run.
    """
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    result = audit_runs(workdir, jobs=jobs, progress=True, permutations=permutations)
    written = time.perf_counter()
    write_audit(result, workdir / "audit")
    seconds = time.perf_counter() - start
    split = dict(result.timings, write=time.perf_counter() - written, load_average=os.getloadavg()[0])
    split["cpu"] = cpu_seconds() - cpu_start
    per_run = split["load_total"] + split["metrics_total"]  # wall seconds in the processes, like null_total
    split["null_share"] = 100 * split["null_total"] / max(per_run, 1e-9)
    return seconds, int(result.info["n_runs"]), split


def split_text(splits: list[dict[str, float]]) -> list[str]:
    """One table row per repeat: the time split of :func:`time_audit`."""
    keys = ("load_average", "cpu", "context", "knn", "runs", "load_total", "metrics_total", "null_setup")
    keys += ("null_total", "null_share", "aggregate", "write")
    rows = [
        "| load average after | CPU s (all processes) | reference run | kNN graph | runs | load (summed over "
        "runs) | metrics (summed over runs) | null: drawing the permutations | null (summed over runs, part "
        "of metrics) | null share of per-run time (%) | Welch + tables | writing |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    return rows + ["| " + " | ".join(f"{split[key]:.1f}" for key in keys) + " |" for split in splits]


def section_text(
    times: list[float],
    n_runs: int,
    jobs: int | None,
    command: str,
    splits: list[dict[str, float]],
    permutations: int = DEFAULT_PERMUTATIONS,
) -> str:
    median = statistics.median(times)
    loads = ", ".join(f"{split['load_average']:.1f}" for split in splits)
    verdict = "meets" if median < TARGET_SECONDS else "MISSES"
    return "\n".join(
        [
            SECTION,
            "",
            f"Full `kdfair audit` (audit_runs + write_audit) of a synthetic ImageNet-sized sweep: "
            f"{n_runs} runs "
            f"({len(SEEDS)} seeds x teacher, NDS, DS at T = 1..10), {N_CLASSES:,} classes, "
            f"{N_SAMPLES:,} test samples, float16 logits, one binary attribute, 16-d representation; "
            f"noise floor of DPD, EOD and DEO with {permutations} within-class permutations.",
            "",
            "| date | machine | load average (1 min, after each repeat) | jobs | runs "
            "| seconds (each repeat) | median | target (median) |",
            "|---|---|---|---|---|---|---|---|",
            f"| {datetime.date.today().isoformat()} | {cpu_model()}, {os.cpu_count()} cores (shared) | "
            f"{loads} | "
            f"{jobs if jobs else 'auto'} | {n_runs} | {', '.join(f'{t:.1f}' for t in times)} | "
            f"{median:.1f} | "
            f"< {TARGET_SECONDS:.0f} s: {verdict} |",
            "",
            "Time split per repeat (seconds; load and metrics are summed over the worker processes):",
            "",
            *split_text(splits),
            "",
            f"Command: `{command}`",
            "",
        ]
    )


def write_section(text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace this file's ``## Audit`` section (up to the next ``## `` heading), or append it."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    write_text_atomic(path, new)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "kdfair-bench-audit")
    parser.add_argument("--jobs", type=int, default=None, help="audit worker processes (default: automatic)")
    parser.add_argument("--repeat", type=int, default=1, help="timed repeats (the first may read from disk)")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument(
        "--permutations", type=int, default=DEFAULT_PERMUTATIONS, help="noise-floor permutations (0: none)"
    )
    parser.add_argument("--small", action="store_true", help="a small sweep to check the script; no write")
    args = parser.parse_args()
    if args.small:
        args.no_write = True
        if args.workdir == parser.get_default("workdir"):
            args.workdir = Path(tempfile.gettempdir()) / "kdfair-bench-audit-small"
    workdir = ensure_sweep(args.workdir, small=args.small)
    times, splits, n_runs = [], [], 0
    for _ in range(args.repeat):
        seconds, n_runs, split = time_audit(workdir, args.jobs, args.permutations)
        times.append(seconds)
        splits.append(split)
        print(f"audit: {seconds:.1f} s for {n_runs} runs", file=sys.stderr)
    niceness = os.nice(0)
    command = (f"nice -n {niceness} " if niceness else "") + ".venv/bin/python benchmarks/bench_audit.py"
    command += f" --jobs {args.jobs}" if args.jobs else ""
    command += f" --repeat {args.repeat}" if args.repeat != 1 else ""
    command += f" --permutations {args.permutations}" if args.permutations != DEFAULT_PERMUTATIONS else ""
    command += " --small" if args.small else ""
    text = section_text(times, n_runs, args.jobs, command, splits, args.permutations)
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
