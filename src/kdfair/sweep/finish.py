"""Before and after training a (sub-)sweep: a conflict check; the audit and the report.

Before: a run folder whose ``config.json`` differs from the planned run belongs to another sweep; that stops
the sweep at once (rather than failing unit by unit). After: ``kdfair.audit`` writes ``<sweep>/audit`` and
``kdfair.report`` writes ``<sweep>/report``. Both are imported lazily; a stage whose module is not installed
is skipped with a message.

The sweep's audit reads the finished runs of its own plan (``runs/<run_id>`` with ``DONE``), named in
``audit.json`` ``options.run_dirs``, and nothing else below the sweep folder. A planned run without ``DONE``
(not trained yet, or the half-written folder of a failed unit: the trainer writes ``predictions.npz``, then
``run.json``, then ``DONE``) and a folder under ``runs/`` that the plan does not hold (a run of an earlier
config) are left out by name: one log line each kind, and an entry in ``audit.json`` ``skipped_runs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kdfair.discovery import NOT_FINISHED, NOT_PLANNED, SkippedRun
from kdfair.errors import ConfigError
from kdfair.runfolder import AUDIT_FOLDER, CONFIG_JSON, RUNS, is_done, run_path
from kdfair.sweep.expand import SubSweep
from kdfair.train.config import comparable_config

REPORT_DIR = "report"


def check_existing_runs(sub: SubSweep) -> None:
    """Every existing ``runs/<run_id>/config.json`` equals the planned run's config, else ConfigError."""
    for unit in sub.units:
        for run in unit.runs:
            path = run_path(sub.out_dir, run.run_id) / CONFIG_JSON
            if not path.is_file():
                continue
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # unreadable: the trainer rewrites it
            if comparable_config(previous) != comparable_config(json.loads(run.model_dump_json())):
                raise ConfigError(
                    f"{path}: holds a different config for run '{run.run_id}'; the sweep config changed "
                    f"since this folder was written; use a new --out"
                )


def planned_runs(sub: SubSweep) -> tuple[list[Path], list[SkippedRun]]:
    """The run folders of ``sub``'s plan that are finished (``DONE``), and the folders its audit leaves out:
    the planned runs without ``DONE`` and the folders under ``runs/`` that the plan does not hold."""
    planned = [unit.run_dir(run_id) for unit in sub.units for run_id in unit.run_ids]
    finished = [run_dir for run_dir in planned if is_done(run_dir)]
    left_out = [SkippedRun(run_dir, NOT_FINISHED) for run_dir in planned if run_dir not in finished]
    runs_folder = sub.out_dir / RUNS
    if runs_folder.is_dir():
        others = sorted(p for p in runs_folder.iterdir() if p.is_dir() and p not in set(planned))
        left_out += [SkippedRun(folder, NOT_PLANNED) for folder in others]
    return finished, left_out


def _log_left_out(left_out: list[SkippedRun], log: Callable[[str], None]) -> None:
    for reason in (NOT_FINISHED, NOT_PLANNED):
        names = [s.folder.name for s in left_out if s.reason == reason]
        if names:
            log(f"audit: {len(names)} run folder(s) left out, {reason}: {', '.join(names)}")


def finish_subsweep(sub: SubSweep, *, audit: bool, report: bool, log: Callable[[str], None] = print) -> None:
    """Audit the finished runs of ``sub``'s plan into ``<sweep>/audit`` (module docstring) and build
    ``<sweep>/report`` from it."""
    if not audit:
        log(f"audit skipped (--no-audit); audit later with: kdfair audit {sub.out_dir}")
        return
    try:
        from kdfair.audit.engine import audit_runs
        from kdfair.audit.write import write_audit
    except ImportError as exc:
        log(f"audit skipped: kdfair.audit is not available ({exc})")
        return
    finished, left_out = planned_runs(sub)
    _log_left_out(left_out, log)
    if not finished:
        log(f"audit skipped: none of the planned runs in {sub.out_dir / RUNS} is finished")
        return
    audit_dir = sub.out_dir / AUDIT_FOLDER
    result = audit_runs(
        sub.out_dir,
        level=sub.config.audit.level,
        representation=sub.config.audit.representation,  # "input": <sweep>/representation.npz
        run_dirs=[run_dir.relative_to(sub.out_dir) for run_dir in finished],  # audit_runs: below out_dir
    )
    result.info["skipped_runs"] += [entry.as_dict() for entry in left_out]
    write_audit(result, audit_dir)
    log(f"audit: {audit_dir}")
    from kdfair.audit.health import health_lines

    for line in health_lines(result.info):  # degenerate students and unconverged training (docs/audit.md)
        log(f"warning: {line}")
    if not report:
        return
    try:
        from kdfair.report import build_report
    except ImportError as exc:
        log(f"report skipped: kdfair.report.build_report is not available ({exc})")
        return
    report_dir = sub.out_dir / REPORT_DIR
    build_report(audit_dir, report_dir)
    log(f"report: {report_dir}")
