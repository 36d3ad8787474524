"""Writing an audit folder (docs/ARCHITECTURE.md, "Audit output"), all or nothing.

This module owns the names of the audit folder's tables (``AUDIT_FILES``), which the report reads
(:mod:`kdfair.report.load`); the folder's own name and ``audit.json`` are :mod:`kdfair.runfolder`'s.

:func:`write_audit` writes the tables of an :class:`~kdfair.audit.engine.AuditResult` into a temporary
sibling folder and renames it onto the target only when every file is written: a failed or interrupted
write leaves the target as it was (absent, or the previous audit).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kdfair.audit.health import HEALTH_FILES
from kdfair.audit.noise import NOISE_FILES
from kdfair.io import write_bytes_atomic, write_json_atomic, write_text_atomic
from kdfair.runfolder import AUDIT_JSON

if TYPE_CHECKING:  # the engine imports this module (AuditResult.write)
    from kdfair.audit.engine import AuditResult

SUMMARY_CSV = "summary.csv"  # the one table the report requires
DISAGREEMENT_FOLDER = "disagreement"  # disagreement/<condition>.npy: seed-averaged (C, C) counts
AUDIT_FILES = (
    AUDIT_JSON,
    "run_metrics.csv",
    SUMMARY_CSV,
    "class_accuracy.csv",
    "class_tests.csv",
    "significance_counts.csv",
    "disagreement_rate.csv",
    *HEALTH_FILES,  # learning_curves.csv only when some run has epochs.csv
    *NOISE_FILES,
    f"{DISAGREEMENT_FOLDER}/",
)


def _write_tables(result: AuditResult, folder: Path) -> None:
    write_json_atomic(folder / AUDIT_JSON, result.info)
    for name, frame in result.tables.items():
        write_text_atomic(folder / f"{name}.csv", frame.to_csv(index=False))
    (folder / DISAGREEMENT_FOLDER).mkdir()
    for condition, matrix in result.disagreement.items():
        buffer = io.BytesIO()
        np.save(buffer, matrix)
        write_bytes_atomic(folder / DISAGREEMENT_FOLDER / f"{condition}.npy", buffer.getvalue())


def write_audit(result: AuditResult, out_dir: str | Path) -> Path:
    """Write the audit tables (``AUDIT_FILES``) to ``out_dir``, replacing a previous audit there.

    Files are written into a temporary sibling folder that is renamed onto ``out_dir`` only when complete:
    a failure leaves ``out_dir`` as it was (absent, or the previous audit). Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    staging.chmod(0o755)
    old = None
    try:
        _write_tables(result, staging)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not out_dir.exists():
            os.replace(old / out_dir.name, out_dir)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out_dir
