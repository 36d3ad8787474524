"""Read an audit folder (docs/ARCHITECTURE.md, "Audit output") into memory for the report.

Only ``audit.json`` and ``summary.csv`` are required; every other file is optional and the table or figure
that needs it is left out with a note. All fractions stay in [0, 1] here; the report converts to percent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdfair.audit.noise import NOISE_RUNS_CSV
from kdfair.audit.write import AUDIT_FILES, SUMMARY_CSV
from kdfair.errors import KdfairError
from kdfair.runfolder import AUDIT_JSON

REQUIRED_FILES = (AUDIT_JSON, SUMMARY_CSV)
# every other table the audit writes (kdfair.audit.write.AUDIT_FILES; learning_curves.csv only when the runs
# had epochs.csv), except the per-run noise floor, which the report does not show
OPTIONAL_CSVS = tuple(
    name for name in AUDIT_FILES if name.endswith(".csv") and name not in (SUMMARY_CSV, NOISE_RUNS_CSV)
)
ROLE_ORDER = {"teacher": 0, "nds": 1, "ds": 2}


class AuditFormatError(KdfairError):
    """An audit folder is missing a required file or a file does not follow the audit schema."""


@dataclass(frozen=True)
class Condition:
    """One experimental condition of the audit (audit.json ``conditions`` entry)."""

    id: str
    role: str
    method: str
    temperature: float | None
    alpha: float | None
    label: str
    seeds: tuple[int, ...]

    @property
    def sort_key(self) -> tuple[int, str, float, float]:
        """Teacher, NDS, then DS grouped by method, alpha and ordered by temperature."""
        return (
            ROLE_ORDER.get(self.role, 3),
            self.method,
            self.alpha if self.alpha is not None else -1.0,
            self.temperature if self.temperature is not None else -1.0,
        )


@dataclass
class AuditData:
    """The contents of one audit folder; optional tables are None when their file is absent."""

    root: Path
    meta: dict[str, Any]
    conditions: list[Condition]
    summary: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return int(self.meta.get("n_classes", 0))

    @property
    def class_names(self) -> list[str]:
        names = self.meta.get("class_names") or []
        return (
            [str(n) for n in names]
            if len(names) == self.n_classes
            else [str(c) for c in range(self.n_classes)]
        )

    @property
    def attributes(self) -> list[str]:
        return list((self.meta.get("attributes") or {}).keys())

    @property
    def level(self) -> float:
        return float(self.meta.get("level", 0.05))

    @property
    def warnings(self) -> list[str]:
        return [str(w) for w in self.meta.get("warnings") or []]

    def table(self, name: str) -> pd.DataFrame | None:
        """The optional CSV ``name`` (without ``.csv``), or None when the audit did not write it."""
        return self.tables.get(name)

    def by_role(self, role: str) -> list[Condition]:
        return [c for c in self.conditions if c.role == role]

    def stat(self, condition: str, metric: str, attribute: str = "") -> tuple[float, float, int] | None:
        """``(mean, std, n_seeds)`` of one summary row, or None when the audit has no such row."""
        return self._summary_index.get((condition, metric, attribute))

    def has_metric(self, metric: str, attribute: str = "") -> bool:
        return any(k[1] == metric and k[2] == attribute for k in self._summary_index)

    def disagreement(self, condition: str) -> np.ndarray | None:
        """The seed-averaged C x C disagreement counts teacher (rows) vs ``condition``; None when absent."""
        path = self.root / "disagreement" / f"{condition}.npy"
        if not path.is_file():
            return None
        matrix = np.load(path).astype(np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise AuditFormatError(f"{path}: expected a square matrix, got shape {matrix.shape}")
        return matrix

    def __post_init__(self) -> None:
        index: dict[tuple[str, str, str], tuple[float, float, int]] = {}
        for row in self.summary.itertuples(index=False):
            index[(row.condition, row.metric, row.attribute)] = (
                float(row.mean),
                float(row.std),
                int(row.n_seeds),
            )
        self._summary_index = index


def _read_csv(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, keep_default_na=True, dtype={"condition": str, "attribute": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AuditFormatError(f"{path}: cannot read CSV ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise AuditFormatError(f"{path}: missing columns {missing}")
    if "attribute" in frame.columns:
        frame["attribute"] = frame["attribute"].fillna("").astype(str)
    return frame


def _condition(entry: dict[str, Any]) -> Condition:
    def _opt_float(value: Any) -> float | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return float(value)

    try:
        return Condition(
            id=str(entry["id"]),
            role=str(entry["role"]),
            method=str(entry.get("method") or ("kd" if entry["role"] == "ds" else "ce")),
            temperature=_opt_float(entry.get("temperature")),
            alpha=_opt_float(entry.get("alpha")),
            label=str(entry.get("label") or entry["id"]),
            seeds=tuple(int(s) for s in entry.get("seeds") or ()),
        )
    except KeyError as exc:
        raise AuditFormatError(f"audit.json: a condition lacks the key {exc}") from exc


def load_audit(audit_dir: str | Path) -> AuditData:
    """Read ``audit_dir`` (the output of ``kdfair audit``); raise AuditFormatError naming what is missing."""
    root = Path(audit_dir)
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise AuditFormatError(f"{root}: not an audit folder, missing {', '.join(missing)}")
    try:
        meta = json.loads((root / AUDIT_JSON).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AuditFormatError(f"{root / AUDIT_JSON}: invalid JSON ({exc})") from exc
    conditions = sorted((_condition(c) for c in meta.get("conditions") or []), key=lambda c: c.sort_key)
    if not conditions:
        raise AuditFormatError(f"{root / AUDIT_JSON}: no conditions listed")
    summary = _read_csv(root / SUMMARY_CSV, ("condition", "metric", "attribute", "n_seeds", "mean", "std"))
    tables = {
        name.removesuffix(".csv"): _read_csv(root / name) for name in OPTIONAL_CSVS if (root / name).is_file()
    }
    return AuditData(root=root, meta=meta, conditions=conditions, summary=summary, tables=tables)
