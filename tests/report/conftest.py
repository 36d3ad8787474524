"""Shared fixtures: a small synthetic audit with hand-set values, reported once per session, and a small
sweep in the prediction format for tests that run the real audit engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_sweep import make_real_sweep
from report_synthetic import SyntheticAudit, write_synthetic_audit

from kdfair.report import build_report

# Hand-worked cells (docs/report.md, "Number formatting"):
#   teacher accuracy seeds 0.70, 0.72, 0.74 -> mean 72.00 %, std (ddof 1) 2.00 %  -> "72.00 ± 2.00"
#   NDS EOD (color) 0.05, 0.06, 0.07         -> "6.00 ± 1.00"
#   DS T=2 individual unfairness 0.1, 0.2, 0.3 -> "0.2000 ± 0.1000" (unitless, 4 decimals)
OVERRIDES = {
    ("teacher", "accuracy", ""): [0.70, 0.72, 0.74],
    ("nds", "eod", "color"): [0.05, 0.06, 0.07],
    ("ds_kd_T2_a0.8", "individual_unfairness", ""): [0.1, 0.2, 0.3],
}
WARNINGS = [
    "class 7: Welch test undefined (zero variance in both groups)",
    "group <b>: no positives & left out",
]


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticAudit, Path]:
    """A 10-class audit (teacher, NDS, DS at T = 1, 2, 4; 3 seeds; attribute 'color') and its report."""
    root = tmp_path_factory.mktemp("report_small")
    audit = write_synthetic_audit(root / "audit", overrides=OVERRIDES, warnings=WARNINGS)
    index = build_report(root / "audit", root / "report")
    return audit, index


@pytest.fixture(scope="session")
def real_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine sweep (report_sweep.make_real_sweep); copy it (``copy_sweep``) before auditing into it."""
    return make_real_sweep(tmp_path_factory.mktemp("real_sweep") / "sweep")
