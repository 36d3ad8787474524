"""Grouping runs into experimental conditions (docs/ARCHITECTURE.md, "Conditions").

Runs with the same ``(role, method, temperature, alpha)`` are seeds of one condition. Condition ids are
``teacher``, ``nds`` and ``ds_<method>_T<temperature:g>_a<alpha:g>``; a teacher or NDS trained with a method
other than ``ce`` gets ``_<method>`` appended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdfair.errors import PredictionFormatError
from kdfair.predictions import RunMeta

ROLE_ORDER = {"teacher": 0, "nds": 1, "ds": 2}


def condition_id(meta: RunMeta) -> str:
    """The condition id of a run, e.g. ``teacher``, ``nds``, ``ds_kd_T4_a0.8``, ``nds_bird``."""
    if meta.role == "ds":
        return f"ds_{meta.method}_T{meta.temperature:g}_a{meta.alpha:g}"
    return meta.role if meta.method == "ce" else f"{meta.role}_{meta.method}"


@dataclass
class Condition:
    """One experimental condition: its identity and its runs, ordered by seed."""

    id: str
    role: str
    method: str
    temperature: float | None
    alpha: float | None
    label: str
    seeds: list[int] = field(default_factory=list)
    run_dirs: list[Path] = field(default_factory=list)
    metas: list[RunMeta] = field(default_factory=list)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def identity(self) -> dict[str, Any]:
        """Leading columns of the per-condition audit tables: condition, role, method, temperature, alpha."""
        return {
            "condition": self.id,
            "role": self.role,
            "method": self.method,
            "temperature": self.temperature,
            "alpha": self.alpha,
        }

    def describe(self) -> dict[str, Any]:
        """The condition's entry in ``audit.json``'s ``conditions`` list."""
        return {
            "id": self.id,
            "role": self.role,
            "method": self.method,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "label": self.label,
            "seeds": list(self.seeds),
            "run_dirs": [str(p) for p in self.run_dirs],
        }


def group_conditions(runs: list[tuple[Path, RunMeta]]) -> list[Condition]:
    """Group runs into conditions, sorted teacher, NDS, then DS by method, temperature and alpha.

    Two runs of one condition with the same seed raise :class:`PredictionFormatError` naming both.
    """
    by_id: dict[str, Condition] = {}
    for run_dir, meta in runs:
        cid = condition_id(meta)
        cond = by_id.get(cid)
        if cond is None:
            cond = Condition(cid, meta.role, str(meta.method), meta.temperature, meta.alpha, meta.label)
            by_id[cid] = cond
        if meta.seed in cond.seeds:
            other = cond.run_dirs[cond.seeds.index(meta.seed)]
            raise PredictionFormatError(
                f"runs {other} and {run_dir} are both seed {meta.seed} of condition '{cid}'"
            )
        cond.seeds.append(meta.seed)
        cond.run_dirs.append(run_dir)
        cond.metas.append(meta)
    for cond in by_id.values():
        order = sorted(range(cond.n_seeds), key=lambda i: cond.seeds[i])
        cond.seeds = [cond.seeds[i] for i in order]
        cond.run_dirs = [cond.run_dirs[i] for i in order]
        cond.metas = [cond.metas[i] for i in order]
    return sorted(
        by_id.values(),
        key=lambda c: (ROLE_ORDER[c.role], c.method, c.temperature or 0.0, c.alpha or 0.0, c.id),
    )


def reference_conditions(conditions: list[Condition]) -> tuple[Condition | None, Condition | None]:
    """The teacher and NDS conditions DS runs are compared with (plain ``teacher`` and ``nds`` first)."""
    teachers = [c for c in conditions if c.role == "teacher"]
    students = [c for c in conditions if c.role == "nds"]
    pick = {c.id: c for c in conditions}
    teacher = pick.get("teacher", teachers[0] if teachers else None)
    nds = pick.get("nds", students[0] if students else None)
    return teacher, nds
