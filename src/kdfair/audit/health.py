"""Run health in the audit: degenerate predictors (:mod:`kdfair.degenerate`) and training convergence
(:mod:`kdfair.convergence`), per run and per condition, and the learning curves.

Files written by the audit (docs/ARCHITECTURE.md, "Audit output"):

- ``run_health.csv``: one row per run: ``condition, seed, top_class, top_share, top_true_share,
  pred_entropy, true_entropy, entropy_ratio, classes_predicted, degenerate, degenerate_reason, epochs,
  converged, tail_change, late_change, final_lr_ratio, convergence_reason``. ``epochs`` and the convergence
  columns are empty for a run folder without ``epochs.csv``.
- ``condition_health.csv``: one row per condition: ``condition, role, method, temperature, alpha, n_seeds,
  degenerate_seeds, degenerate, max_top_share, min_entropy_ratio, seeds_with_curves, converged_seeds,
  converged`` (``converged`` empty when no seed has a curve).
- ``learning_curves.csv`` (only when some run has ``epochs.csv``): ``condition, seed, epoch, train_loss,
  train_acc, lr`` (``train_acc`` and ``lr`` empty when the file lacks them).
- ``audit.json`` ``degenerate``: the rule and thresholds, and ``conditions``: {condition id:
  {``degenerate_seeds``: [seeds], ``n_seeds``}} for the degenerate conditions only; ``convergence``: the
  criterion and thresholds, and ``conditions``: {condition id: {``converged_seeds``, ``seeds_with_curves``,
  ``n_seeds``, ``unconverged_seeds``: [seeds]}} for every condition with curves.

``epochs.csv`` (the audit reads it when a run folder has one; runs trained elsewhere may supply it): a CSV
with a header and one row per epoch; columns ``epoch`` (1-based) and ``train_loss`` (the epoch's mean
training loss) are required, ``train_acc`` (fraction) and ``lr`` are optional (``lr`` lets the criterion
find the epochs before the lr fell). A file without the required columns, or unreadable, is skipped with a
warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdfair.audit.conditions import Condition
from kdfair.audit.runmetrics import RunResult
from kdfair.convergence import Convergence, assess_convergence, criterion_info
from kdfair.degenerate import Concentration, prediction_concentration, rule_info
from kdfair.errors import KdfairWarning
from kdfair.runfolder import EPOCHS_CSV

CURVE_COLUMNS = ["condition", "seed", "epoch", "train_loss", "train_acc", "lr"]
RUN_COLUMNS = [
    "condition",
    "seed",
    "top_class",
    "top_share",
    "top_true_share",
    "pred_entropy",
    "true_entropy",
    "entropy_ratio",
    "classes_predicted",
    "degenerate",
    "degenerate_reason",
    "epochs",
    "converged",
    "tail_change",
    "late_change",
    "final_lr_ratio",
    "convergence_reason",
]
CONDITION_COLUMNS = [
    "condition",
    "role",
    "method",
    "temperature",
    "alpha",
    "n_seeds",
    "degenerate_seeds",
    "degenerate",
    "max_top_share",
    "min_entropy_ratio",
    "seeds_with_curves",
    "converged_seeds",
    "converged",
]
HEALTH_FILES = ("run_health.csv", "condition_health.csv", "learning_curves.csv")


@dataclass
class Health:
    """The health tables and the ``audit.json`` entries (``degenerate``, ``convergence``)."""

    runs: pd.DataFrame
    conditions: pd.DataFrame
    curves: pd.DataFrame  # empty when no run has epochs.csv
    info: dict[str, Any]

    def tables(self) -> dict[str, pd.DataFrame]:
        """File stem -> table to write (``learning_curves`` only when there are curves)."""
        out = {"run_health": self.runs, "condition_health": self.conditions}
        if len(self.curves):
            out["learning_curves"] = self.curves
        return out


def read_learning_curve(run_dir: Path) -> pd.DataFrame | None:
    """``run_dir/epochs.csv`` as ``epoch, train_loss, train_acc, lr`` sorted by epoch; None when absent.

    A file without ``epoch`` and ``train_loss``, or unreadable, gives None and a :class:`KdfairWarning`.
    """
    path = Path(run_dir) / EPOCHS_CSV
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        warnings.warn(
            f"{path}: unreadable ({type(exc).__name__}); convergence not assessed",
            KdfairWarning,
            stacklevel=2,
        )
        return None
    missing = [c for c in ("epoch", "train_loss") if c not in frame.columns]
    if missing or not len(frame):
        what = f"lacks the column(s) {', '.join(missing)}" if missing else "has no rows"
        warnings.warn(f"{path}: {what}; convergence not assessed", KdfairWarning, stacklevel=2)
        return None
    curve = pd.DataFrame({"epoch": pd.to_numeric(frame["epoch"], errors="coerce")})
    for column in ("train_loss", "train_acc", "lr"):
        present = column in frame.columns
        curve[column] = pd.to_numeric(frame[column], errors="coerce") if present else np.nan
    return curve.sort_values("epoch", kind="stable").reset_index(drop=True)


def run_convergence(curve: pd.DataFrame) -> Convergence:
    """:func:`kdfair.convergence.assess_convergence` on one curve (its lr used when every epoch has one)."""
    lr = curve["lr"].to_numpy(dtype=float)
    return assess_convergence(
        curve["train_loss"].to_numpy(dtype=float), lr if np.isfinite(lr).all() else None
    )


def _run_row(cid: str, r: RunResult, conc: Concentration, conv: Convergence | None) -> dict[str, Any]:
    row: dict[str, Any] = {"condition": cid, "seed": r.seed}
    row.update({k: v for k, v in conc.as_dict().items() if k != "reason"})
    row["degenerate_reason"] = conc.reason
    row.update(epochs=None, converged=None, tail_change=None, late_change=None, final_lr_ratio=None)
    row["convergence_reason"] = ""
    if conv is not None:
        row.update(
            epochs=conv.epochs,
            converged=conv.converged,
            tail_change=conv.tail_change,
            late_change=conv.late_change,
            final_lr_ratio=conv.final_lr_ratio,
            convergence_reason=conv.reason,
        )
    return row


def _condition_row(cond: Condition, rows: list[dict[str, Any]]) -> dict[str, Any]:
    judged = [r for r in rows if r["converged"] is not None]
    n_converged = sum(bool(r["converged"]) for r in judged)
    return {
        **cond.identity(),
        "n_seeds": len(rows),
        "degenerate_seeds": sum(bool(r["degenerate"]) for r in rows),
        "degenerate": any(r["degenerate"] for r in rows),
        "max_top_share": max(r["top_share"] for r in rows),
        "min_entropy_ratio": min(r["entropy_ratio"] for r in rows),
        "seeds_with_curves": len(judged),
        "converged_seeds": n_converged,
        "converged": (n_converged == len(judged)) if judged else None,
    }


def _info(conditions: list[Condition], runs: pd.DataFrame, by_cond: pd.DataFrame) -> dict[str, Any]:
    degenerate: dict[str, Any] = {}
    convergence: dict[str, Any] = {}
    for cond, row in zip(conditions, by_cond.to_dict(orient="records"), strict=True):
        mine = runs[runs["condition"] == cond.id]
        if row["degenerate"]:
            seeds = mine.loc[mine["degenerate"].astype(bool), "seed"]
            degenerate[cond.id] = {"degenerate_seeds": [int(s) for s in seeds], "n_seeds": row["n_seeds"]}
        if row["seeds_with_curves"]:
            bad = mine[mine["converged"].notna() & ~mine["converged"].astype(bool)]["seed"]
            convergence[cond.id] = {
                "converged_seeds": row["converged_seeds"],
                "seeds_with_curves": row["seeds_with_curves"],
                "n_seeds": row["n_seeds"],
                "unconverged_seeds": [int(s) for s in bad],
            }
    return {
        "degenerate": {**rule_info(), "conditions": degenerate},
        "convergence": {**criterion_info(), "conditions": convergence},
    }


def audit_health(
    conditions: list[Condition], results: dict[str, list[RunResult]], y_true: np.ndarray, n_classes: int
) -> Health:
    """Degenerate flags (from each run's predicted labels, reference order) and convergence (from each run
    folder's ``epochs.csv``) per run and per condition, plus the learning curves (module docstring)."""
    run_rows: list[dict[str, Any]] = []
    cond_rows: list[dict[str, Any]] = []
    curves: list[pd.DataFrame] = []
    for cond in conditions:
        mine = []
        for r in results[cond.id]:
            conc = prediction_concentration(y_true, r.y_pred, n_classes=n_classes)
            curve = read_learning_curve(r.run_dir)
            conv = run_convergence(curve) if curve is not None else None
            if curve is not None:
                curves.append(curve.assign(condition=cond.id, seed=r.seed)[CURVE_COLUMNS])
            mine.append(_run_row(cond.id, r, conc, conv))
        run_rows += mine
        cond_rows.append(_condition_row(cond, mine))
    runs = pd.DataFrame(run_rows, columns=RUN_COLUMNS)
    by_cond = pd.DataFrame(cond_rows, columns=CONDITION_COLUMNS)
    curve_table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    return Health(runs, by_cond, curve_table, _info(conditions, runs, by_cond))


def health_lines(info: dict[str, Any], labels: dict[str, str] | None = None) -> list[str]:
    """One warning line per degenerate condition and per condition with unconverged seeds (console, HTML)."""
    labels = labels or {}
    lines = []
    for cid, entry in (info.get("degenerate") or {}).get("conditions", {}).items():
        seeds = entry["degenerate_seeds"]
        lines.append(
            f"{labels.get(cid, cid)}: DEGENERATE predictor in {len(seeds)} of {entry['n_seeds']} seed(s) "
            f"(seeds {', '.join(map(str, seeds))}): its DPD/EOD/DEO are pulled toward 0 without being fair"
        )
    for cid, entry in (info.get("convergence") or {}).get("conditions", {}).items():
        bad = entry["unconverged_seeds"]
        if bad:
            lines.append(
                f"{labels.get(cid, cid)}: NOT CONVERGED in {len(bad)} of {entry['seeds_with_curves']} "
                f"seed(s) with learning curves (seeds {', '.join(map(str, bad))})"
            )
    return lines
