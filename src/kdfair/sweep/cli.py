"""``kdfair sweep CONFIG.yaml``: train a whole sweep, then audit it and build its report.

The config is validated first (a bad key, name, value or missing file stops it with one line, exit 2). The
plan is made from the config and from what is on disk, so re-running the same command skips finished runs
and resumes interrupted ones. A failed unit is reported and the others go on; the exit status is 1 then.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from kdfair.errors import ConfigError
from kdfair.extras import require
from kdfair.io import environment_info, write_json_atomic, write_text_atomic
from kdfair.runfolder import write_environment
from kdfair.sweep.config import SweepConfig, load_sweep_config
from kdfair.sweep.executors import UnitResult, run_units
from kdfair.sweep.expand import Plan, expand
from kdfair.sweep.finish import check_existing_runs, finish_subsweep

SWEEP_YAML = "sweep.yaml"
DEFAULT_OUT = Path("sweeps")  # <DEFAULT_OUT>/<config name> when --out is not given

EPILOG = """\
examples:
  kdfair sweep configs/demo.yaml --dry-run          print the plan (units, runs, what is done already)
  kdfair sweep configs/demo.yaml --out out/demo     train, audit, report; re-run to resume
  kdfair sweep configs/demo.yaml --workers 4        4 local worker processes (one GPU each on a GPU machine)
  kdfair sweep configs/demo.yaml --executor ray --address auto    Ray tasks on a running cluster

Output: <out>/sweep.yaml, environment.json, representation.npz, teacher_features_s<seed>.npz (a checkpoint
teacher's test features), runs/<run_id>/ (DONE marks a finished run),
audit/ and report/. A grid over data sets or model pairs writes one such folder per
<data>__<teacher>-<student>. The config schema is in docs/sweeps.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to the ``kdfair`` command line."""
    parser = subparsers.add_parser(
        "sweep",
        help="train a sweep (teacher, NDS, DS over temperatures and seeds), then audit and report it",
        description=(
            "Train the sweep {teacher, NDS, DS(method, T, alpha)} x seeds described by CONFIG (YAML), then "
            "audit the predictions and build the report. Finished runs are skipped and interrupted runs "
            "resume from their last epoch, so re-running the same command continues a sweep."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, metavar="CONFIG.yaml", help="the sweep config (docs/sweeps.md)")
    parser.add_argument("--out", type=Path, help="output folder (default: sweeps/<config name>)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="units trained at once (default 1: in this process)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local worker processes (default) or Ray tasks",
    )
    parser.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    parser.add_argument(
        "--no-lockstep",
        action="store_true",
        help="train every DS run on its own instead of all DS runs of a seed together",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit without training")
    parser.add_argument(
        "--export-runs",
        type=Path,
        metavar="DIR",
        help="write every planned run's resolved config to DIR/<run_id>.json and exit (for torchrun/DDP)",
    )
    parser.add_argument(
        "--no-audit", action="store_true", help="do not audit (and so do not report) at the end"
    )
    parser.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), help="training device (default: cuda if available, else cpu)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``kdfair sweep``; returns the exit status (0 ok, 1 some unit failed)."""
    return sweep(
        args.config,
        args.out,
        workers=args.workers,
        executor=args.executor,
        address=args.address,
        lockstep=not args.no_lockstep,
        dry_run=args.dry_run,
        export_runs=args.export_runs,
        audit=not args.no_audit,
        report=not args.no_report,
        device=args.device,
    )


def sweep(
    config_path: Path,
    out: Path | None = None,
    *,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    lockstep: bool = True,
    dry_run: bool = False,
    export_runs: Path | None = None,
    audit: bool = True,
    report: bool = True,
    device: str | None = None,
) -> int:
    """Train every run of the sweep at ``config_path`` into ``out``, then audit and report.

    Returns 0 when every unit finished, 1 when some failed (re-running resumes). ``kdfair demo`` uses it too.
    """
    require("torch", "training")  # the config checks already need the model registry: fail first, in one line
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if address and executor != "ray":
        raise ConfigError("--address needs --executor ray")
    config = load_sweep_config(config_path)
    out = out if out is not None else DEFAULT_OUT / config.name
    plan = expand(config, out, lockstep=lockstep)
    if dry_run:
        print(format_plan(plan))
        return 0
    if export_runs is not None:
        for run_config in plan.runs:
            write_json_atomic(export_runs / f"{run_config.run_id}.json", run_config.model_dump(mode="json"))
        print(f"wrote {len(plan.runs)} run configs to {export_runs}")
        return 0
    for sub in plan.subsweeps:
        check_existing_runs(sub)
    write_sweep_files(plan, device)
    print(f"sweep {config.name}: {len(plan.runs)} runs in {len(plan.units)} units -> {out}", flush=True)
    started = time.monotonic()
    results = run_units(
        plan.units,
        executor=executor,
        workers=workers,
        address=address,
        device=device,
        log=lambda line: print(line, flush=True),
    )
    failed = _summarise(results, time.monotonic() - started)
    if failed:
        print("sweep incomplete: audit and report skipped; re-run the same command to retry", file=sys.stderr)
        return 1
    from kdfair.train.twins import add_missing_counterfactuals  # torch: only once training is over

    for sub in plan.subsweeps:
        # finished runs made before twins existed get counterfactual.npz from checkpoint.pt (docs/sweeps.md)
        add_missing_counterfactuals(sub.out_dir, device=device, log=lambda line: print(line, flush=True))
        finish_subsweep(sub, audit=audit, report=config.report and audit and report)
    return 0


def write_sweep_files(plan: Plan, device: str | None) -> None:
    """``sweep.yaml`` (the resolved config) and ``environment.json`` in the sweep folder and sub-sweeps."""
    environment = environment_info(device)
    folders = [(plan.out_dir, plan.config)] + [(s.out_dir, s.config) for s in plan.subsweeps if s.key]
    for folder, config in folders:
        write_text_atomic(folder / SWEEP_YAML, dump_config(config))
        write_environment(folder, environment)


def dump_config(config: SweepConfig) -> str:
    """The resolved config as YAML (every default written out), loadable by ``load_sweep_config``."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, default_flow_style=None)


def format_plan(plan: Plan) -> str:
    """The plan as text: one line per unit with its status on disk, its runs and what it waits for."""
    units = plan.units
    lines = [f"sweep {plan.config.name}: {len(plan.runs)} runs in {len(units)} units -> {plan.out_dir}"]
    for sub in plan.subsweeps:
        if sub.key:
            lines.append(f"sub-sweep {sub.key} -> {sub.out_dir}")
    for index, unit in enumerate(units, start=1):
        after = f"  (after {', '.join(unit.depends_on)})" if unit.depends_on else ""
        lines.append(
            f"[{index}/{len(units)}] {unit.status():<7} {unit.unit_id}: {', '.join(unit.run_ids)}{after}"
        )
    return "\n".join(lines)


def _summarise(results: list[UnitResult], seconds: float) -> list[UnitResult]:
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed", "blocked")}
    blocked = f", {counts['blocked']} not started (their teacher failed)" if counts["blocked"] else ""
    print(
        f"units: {counts['done']} trained, {counts['skipped']} done already, {counts['failed']} failed"
        f"{blocked} in {seconds:.1f} s",
        flush=True,
    )
    failed = [r for r in results if not r.ok]
    for result in failed:
        if result.details:
            print(result.details, file=sys.stderr)
        print(f"failed: {result.unit_id}: {result.error}", file=sys.stderr)
    return failed
