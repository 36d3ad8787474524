"""Which audit folder the report reads (docs/report.md, "Input").

Given an audit folder (it holds ``audit.json``), the report reads it. Given a runs folder (run folders below
it, :mod:`kdfair.discovery`), the audit folder is ``<runs_dir>/audit``:

- **up to date**: ``audit.json`` lists exactly the run folders its options select now (every run folder
  below ``runs_dir``, or its recorded ``run_dirs``), names every incomplete folder skipped now, and is newer
  than each of those runs' input files (``run.json``, the predictions file -- npz, Parquet or CSV --,
  ``counterfactual.npz``, ``epochs.csv``) and than the kNN representation it read. It is reused as it is,
  so an audit made with ``kdfair audit --level 0.01 ...`` keeps its options.
- **absent**: the runs are audited with ``kdfair audit``'s defaults into ``<runs_dir>/audit``.
- **out of date**: the runs are audited again into ``<runs_dir>/audit`` by
  :func:`kdfair.audit.engine.audit_runs` with the options recorded in the old ``audit.json`` ``options``,
  read back as data (:class:`kdfair.audit.options.AuditOptions`), so a custom ``--level`` is not lost. An
  ``audit.json`` of an older kdfair, without ``options``, gives what it records as data, the defaults for
  the rest, and a note through ``log``. The folders a sweep's audit left out by its plan (a planned run not
  finished, a folder the plan does not hold; :mod:`kdfair.sweep.finish`) are named again in the new
  ``skipped_runs``, since an audit of the recorded ``run_dirs`` cannot find them.

An incomplete run folder (a predictions file without ``run.json``, ``run.json`` without predictions, an
unreadable folder) is an error naming it, as in ``kdfair audit``, unless ``skip_incomplete`` (``kdfair
report --skip-incomplete``, or an audit made with ``kdfair audit --skip-incomplete``); each skipped folder
is named through ``log``. Which of the three cases happened is reported through ``log`` (by default one
line on stderr).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from kdfair.audit.options import AuditOptions
from kdfair.discovery import FINISHED_LATER, NOT_FINISHED, NOT_PLANNED, RunFolders, SkippedRun
from kdfair.errors import KdfairError
from kdfair.runfolder import (
    AUDIT_FOLDER,
    AUDIT_JSON,
    COUNTERFACTUAL_NPZ,
    EPOCHS_CSV,
    PREDICTION_FILES,
    REPRESENTATION_NPZ,
    RUN_JSON,
    is_done,
    teacher_features_files,
)

# what the audit reads from each run folder (epochs.csv: for convergence): a change to any of them makes
# the audit out of date
RUN_INPUTS = (RUN_JSON, *PREDICTION_FILES, COUNTERFACTUAL_NPZ, EPOCHS_CSV)

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"kdfair report: {message}", file=sys.stderr)


def _read_meta(audit_dir: Path) -> dict[str, Any]:
    path = audit_dir / AUDIT_JSON
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise KdfairError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise KdfairError(f"{path}: not a JSON object")
    return meta


def recorded_options(audit_dir: Path) -> tuple[AuditOptions, str | None]:
    """The options ``audit_dir`` was made with, read back from its ``audit.json``, and a note when that
    file predates the recorded ``options`` (:meth:`AuditOptions.from_audit_json`)."""
    return AuditOptions.from_audit_json(_read_meta(audit_dir), str(audit_dir / AUDIT_JSON))


def staleness(audit_dir: Path, root: Path, found: RunFolders, options: AuditOptions) -> str | None:
    """Why ``audit_dir`` does not describe the runs ``found`` under ``root`` with ``options`` (None: it is up
    to date; module docstring)."""
    meta = _read_meta(audit_dir)
    recorded_root = Path(meta.get("runs_dir", root))
    try:
        recorded = {
            Path(d).relative_to(recorded_root)
            for c in meta.get("conditions") or []
            for d in c.get("run_dirs") or []
        }
    except ValueError:
        return "its run folders are not below its runs folder"
    now = {d.relative_to(root) for d in found.run_dirs}
    added, removed = len(now - recorded), len(recorded - now)
    if added or removed:
        return f"{added} run folder(s) added and {removed} removed since the audit"
    named = {
        _relative(Path(s["folder"]), recorded_root)
        for s in meta.get("skipped_runs") or []
        if isinstance(s, dict) and "folder" in s
    }
    unnamed = [s.folder for s in found.skipped if _relative(s.folder, root) not in named]
    if unnamed:
        return f"{len(unnamed)} incomplete run folder(s) it does not name, e.g. {unnamed[0]}"
    audited = (audit_dir / AUDIT_JSON).stat().st_mtime
    inputs = [d / name for d in found.run_dirs for name in RUN_INPUTS]
    inputs += [root / REPRESENTATION_NPZ, *teacher_features_files(root)]
    if options.representation not in ("auto", "teacher", "input", "none"):
        inputs.append(Path(options.representation))  # an npz given by path
    newer = [p for p in inputs if p.is_file() and p.stat().st_mtime > audited]
    if newer:
        return f"{len(newer)} input file(s) changed since the audit, e.g. {newer[0]}"
    return None


def _relative(folder: Path, root: Path) -> Path:
    """``folder`` relative to ``root`` when below it (a moved runs folder keeps its names), else as is."""
    try:
        return folder.relative_to(root)
    except ValueError:
        return folder


def _holds_runs(root: Path) -> bool:
    """Whether some folder below ``root`` holds ``run.json`` or a predictions file (a runs folder)."""
    wanted = {RUN_JSON, *PREDICTION_FILES}
    return any(wanted.intersection(files) for _, _, files in os.walk(root))


def _carried_skips(meta: dict[str, Any], root: Path, options: AuditOptions) -> list[SkippedRun]:
    """The folders a sweep's audit left out by its plan (planned but not finished, not planned), from the old
    ``audit.json``: a re-audit of its recorded ``run_dirs`` cannot find them again. Relative to ``root`` when
    recorded below the old runs folder; a planned run that has finished since says so."""
    if options.run_dirs is None:  # every folder is found again
        return []
    recorded_root = Path(meta.get("runs_dir", root))
    carried = []
    for entry in meta.get("skipped_runs") or []:
        if not isinstance(entry, dict) or entry.get("reason") not in (NOT_FINISHED, NOT_PLANNED):
            continue
        folder = Path(entry.get("folder", ""))
        below = _relative(folder, recorded_root)
        moved = below if below.is_absolute() else root / below
        reason = FINISHED_LATER if entry["reason"] == NOT_FINISHED and is_done(moved) else entry["reason"]
        carried.append(SkippedRun(moved, reason))
    return carried


def _audit(
    root: Path, audit_dir: Path, options: AuditOptions, log: Log, carried: list[SkippedRun] | None = None
) -> None:
    """``audit_runs(root, **options)`` written into ``audit_dir``, with the ``carried`` entries of a sweep's
    earlier audit added to ``skipped_runs``; each skipped folder named in ``log``."""
    from kdfair.audit.engine import audit_runs  # torch (the kNN graph): only when a runs folder is audited
    from kdfair.audit.write import write_audit

    result = audit_runs(root, **options.as_dict())
    named = {Path(s["folder"]) for s in result.info["skipped_runs"]}
    result.info["skipped_runs"] += [s.as_dict() for s in carried or [] if s.folder not in named]
    write_audit(result, audit_dir)
    _log_skipped([SkippedRun(Path(s["folder"]), s["reason"]) for s in result.info["skipped_runs"]], log)


def _log_skipped(skipped: list[SkippedRun], log: Log) -> None:
    for entry in skipped:
        log(f"skipped incomplete run folder {entry.folder}: {entry.reason}")


def resolve_audit_dir(
    audit_or_runs_dir: str | Path, log: Log | None = None, *, skip_incomplete: bool = False
) -> Path:
    """The audit folder to report for an audit folder or a runs folder (module docstring); a runs folder's
    audit is reused when up to date, else written into ``<runs_dir>/audit``. ``log`` gets one line saying
    which audit is used, a note for an ``audit.json`` without recorded options, and one line per skipped
    incomplete folder (default: printed on stderr). ``skip_incomplete``: skip incomplete run folders by name
    instead of failing (also when the audit recorded it)."""
    log = _stderr if log is None else log
    root = Path(audit_or_runs_dir)
    if (root / AUDIT_JSON).is_file():
        return root
    if not root.is_dir():
        raise KdfairError(f"{root}: no such folder")
    if not _holds_runs(root):
        raise KdfairError(
            f"{root}: neither an audit folder (no {AUDIT_JSON}) nor a runs folder (no {RUN_JSON})"
        )
    audit_dir = root / AUDIT_FOLDER
    if not (audit_dir / AUDIT_JSON).is_file():
        if audit_dir.exists() and any(audit_dir.iterdir()):
            raise KdfairError(
                f"{audit_dir} exists but is not an audit folder (no {AUDIT_JSON}); move it away"
            )
        options = AuditOptions(skip_incomplete=skip_incomplete)
        found = options.find_runs(root)  # an incomplete folder is an error before anything is written
        log(f"auditing the {len(found.run_dirs)} runs in {root} into {audit_dir} (kdfair audit's defaults)")
        _audit(root, audit_dir, options, log)
        return audit_dir
    options, note = recorded_options(audit_dir)
    if note is not None:
        log(note)
    if skip_incomplete:
        options = replace(options, skip_incomplete=True)
    found = options.find_runs(root)
    reason = staleness(audit_dir, root, found, options)
    if reason is None:
        log(f"using the existing audit {audit_dir} (up to date with the {len(found.run_dirs)} runs)")
        _log_skipped(found.skipped, log)
        return audit_dir
    shown = ", ".join(f"{k} {v}" for k, v in options.as_dict().items() if k != "run_dirs")
    if options.run_dirs is not None:
        shown += f", the {len(options.run_dirs)} run folders it audited"
    log(f"{audit_dir} is out of date ({reason}); auditing the runs again into it with its options ({shown})")
    carried = _carried_skips(_read_meta(audit_dir), root, options)  # read before the audit is rewritten
    _audit(root, audit_dir, options, log, carried)
    return audit_dir
