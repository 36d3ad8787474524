"""Before and after training a (sub-)sweep: a conflict check; the audit and the report.

Before: a run folder whose ``config.json`` differs from the planned run belongs to another sweep; that stops
the sweep at once (rather than failing unit by unit). After: ``kdfair.audit`` writes ``<sweep>/audit`` and
``kdfair.report`` writes ``<sweep>/report``. Both are imported lazily; a stage whose module is not installed
is skipped with a message.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from kdfair.errors import ConfigError
from kdfair.sweep.expand import RUNS, SubSweep
from kdfair.train.config import comparable_config

AUDIT_DIR = "audit"
REPORT_DIR = "report"
REPRESENTATION_NPZ = "representation.npz"  # written by the trainer (kdfair.train.rundir)


def check_existing_runs(sub: SubSweep) -> None:
    """Every existing ``runs/<run_id>/config.json`` equals the planned run's config, else ConfigError."""
    for unit in sub.units:
        for run in unit.runs:
            path = sub.out_dir / RUNS / run.run_id / "config.json"
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


def audit_representation(sub: SubSweep) -> str | None:
    """The ``representation`` argument of the audit for this sub-sweep's config."""
    choice = sub.config.audit.representation
    if choice == "input":
        return str(sub.out_dir / REPRESENTATION_NPZ)
    return choice


def finish_subsweep(sub: SubSweep, *, audit: bool, report: bool, log: Callable[[str], None] = print) -> None:
    """Audit the runs of ``sub`` into ``<sweep>/audit`` and build ``<sweep>/report`` from it."""
    if not audit:
        log(f"audit skipped (--no-audit); audit later with: kdfair audit {sub.out_dir}")
        return
    try:
        from kdfair.audit.engine import audit_runs, write_audit
    except ImportError as exc:
        log(f"audit skipped: kdfair.audit is not available ({exc})")
        return
    audit_dir = sub.out_dir / AUDIT_DIR
    result = audit_runs(sub.out_dir, level=sub.config.audit.level, representation=audit_representation(sub))
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
