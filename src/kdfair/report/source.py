"""Which audit folder the report reads (docs/report.md, "Input").

Given an audit folder (it holds ``audit.json``), the report reads it. Given a runs folder (run folders with
``run.json`` below it), the audit folder is ``<runs_dir>/audit``:

- **up to date**: ``audit.json`` lists exactly the run folders found now, and is newer than each run's
  ``run.json`` and ``predictions.npz`` and than ``<runs_dir>/representation.npz``. It is reused as it is, so
  an audit made with ``kdfair audit --level 0.01 ...`` keeps its options.
- **absent**: the runs are audited with ``kdfair audit``'s defaults into ``<runs_dir>/audit``.
- **out of date**: the runs are audited again into ``<runs_dir>/audit`` with the options recorded in the old
  ``audit.json`` (level, k, representation, AUROC mode, noise-floor permutations), so a custom ``--level``
  is not lost.

Which of the three happened is reported through ``log`` (by default one line on stderr).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdfair.errors import KdfairError
from kdfair.report.load import AUDIT_JSON

AUDIT_FOLDER = "audit"  # <runs_dir>/audit, where `kdfair audit RUNS_DIR` writes by default
RUN_INPUTS = ("run.json", "predictions.npz", "counterfactual.npz")  # what the audit reads from each run
REPRESENTATION_NPZ = "representation.npz"

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"kdfair report: {message}", file=sys.stderr)


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("run.json"))


def staleness(audit_dir: Path, root: Path, run_dirs: list[Path]) -> str | None:
    """Why ``audit_dir`` does not describe the runs ``run_dirs`` under ``root`` (None: it is up to date)."""
    meta = json.loads((audit_dir / AUDIT_JSON).read_text(encoding="utf-8"))
    recorded_root = Path(meta.get("runs_dir", root))
    try:
        recorded = {
            Path(d).relative_to(recorded_root)
            for c in meta.get("conditions") or []
            for d in c.get("run_dirs") or []
        }
    except ValueError:
        return "its run folders are not below its runs folder"
    found = {d.relative_to(root) for d in run_dirs}
    added, removed = len(found - recorded), len(recorded - found)
    if added or removed:
        return f"{added} run folder(s) added and {removed} removed since the audit"
    audited = (audit_dir / AUDIT_JSON).stat().st_mtime
    inputs = [d / name for d in run_dirs for name in RUN_INPUTS] + [root / REPRESENTATION_NPZ]
    newer = [p for p in inputs if p.is_file() and p.stat().st_mtime > audited]
    if newer:
        return f"{len(newer)} input file(s) changed since the audit, e.g. {newer[0]}"
    return None


def recorded_options(audit_dir: Path, root: Path) -> dict[str, Any]:
    """The ``audit_runs`` options an audit folder was made with, as far as ``audit.json`` records them."""
    meta = json.loads((audit_dir / AUDIT_JSON).read_text(encoding="utf-8"))
    fairness = meta.get("individual_fairness") or {}
    described = str(fairness.get("representation", "auto"))
    if described == "none" or described.startswith("teacher features"):
        representation = described.split(" ")[0]
    elif (
        described == str(Path(meta.get("runs_dir", root)) / REPRESENTATION_NPZ)
        or not Path(described).is_file()
    ):
        representation = "auto"
    else:
        representation = described
    representation = str(fairness.get("option", representation))  # as asked for (audits since the twins)
    return {
        "level": float(meta.get("level", 0.05)),
        "k": int(fairness.get("k", 5)),
        "representation": representation,
        "auroc": str((meta.get("auroc") or {}).get("mode", "auto")),
        # B of the noise floor (kdfair.audit.noise), when the audit recorded one
        **{k: int(v) for k, v in (meta.get("noise_floor") or {}).items() if k == "permutations"},
    }


def _audit(root: Path, audit_dir: Path, options: dict[str, Any]) -> None:
    try:
        from kdfair.audit.engine import audit_runs, write_audit
    except ImportError as exc:  # the audit engine is a separate module
        raise KdfairError(
            f"{root}: a runs folder needs the audit engine (kdfair.audit.engine): {exc}"
        ) from exc
    write_audit(audit_runs(root, **options), audit_dir)


def resolve_audit_dir(audit_or_runs_dir: str | Path, log: Log | None = None) -> Path:
    """The audit folder to report for an audit folder or a runs folder (module docstring); a runs folder's
    audit is reused when up to date, else written into ``<runs_dir>/audit``. ``log`` gets one line saying
    which audit is used (default: printed on stderr)."""
    log = _stderr if log is None else log
    root = Path(audit_or_runs_dir)
    if (root / AUDIT_JSON).is_file():
        return root
    if not root.is_dir():
        raise KdfairError(f"{root}: no such folder")
    run_dirs = _run_dirs(root)
    if not run_dirs:
        raise KdfairError(
            f"{root}: neither an audit folder (no {AUDIT_JSON}) nor a runs folder (no run.json)"
        )
    audit_dir = root / AUDIT_FOLDER
    if not (audit_dir / AUDIT_JSON).is_file():
        if audit_dir.exists() and any(audit_dir.iterdir()):
            raise KdfairError(
                f"{audit_dir} exists but is not an audit folder (no {AUDIT_JSON}); move it away"
            )
        log(f"auditing the {len(run_dirs)} runs in {root} into {audit_dir} (kdfair audit's defaults)")
        _audit(root, audit_dir, {})
        return audit_dir
    reason = staleness(audit_dir, root, run_dirs)
    if reason is None:
        log(f"using the existing audit {audit_dir} (up to date with the {len(run_dirs)} runs)")
        return audit_dir
    options = recorded_options(audit_dir, root)
    shown = ", ".join(f"{k} {v}" for k, v in options.items())
    log(f"{audit_dir} is out of date ({reason}); auditing the runs again into it with its options ({shown})")
    _audit(root, audit_dir, options)
    return audit_dir
