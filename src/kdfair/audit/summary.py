"""The audit's console summary and its ``--json`` document.

``kdfair audit --json`` prints ONE JSON document to stdout (schema ``kdfair.audit.summary/1``, also in
docs/audit.md). Fractions are in [0, 1]; NaN (undefined) values are ``null``::

    {
      "schema": "kdfair.audit.summary/1",
      "out_dir": str,                       # the folder the files were written to
      "files": {name: path},                # every file written (audit.json, *.csv, disagreement/*.npy)
      "audit": {...},                       # the contents of audit.json
      "table": [                            # one row per condition, what the console table shows
        {"condition", "label", "role", "method", "temperature", "alpha", "n_seeds",
         "accuracy_mean", "accuracy_std",
         "sc", "sc_bh", "tc", "tc_bh",      # DS only, else null
         "dpd": {attribute: mean}, "eod": {attribute: mean},
         "dpd_null_mean", "dpd_p_value", "eod_null_mean", "eod_p_value": {attribute: value},  # noise floor
         "counterfactual_unfairness": {attribute: mean}, "counterfactual_flip_rate": {attribute: mean},
         "degenerate": bool, "degenerate_seeds": int,   # kdfair.degenerate: DPD/EOD near 0 are no fairness
         "converged": bool | null, "converged_seeds": int, "seeds_with_curves": int}  # null: no epochs.csv
      ],
      "summary": [...],                     # the rows of summary.csv, as objects
      "significance_counts": [...],         # the rows of significance_counts.csv, as objects
      "noise_floor": [...],                 # the rows of noise_floor_summary.csv (kdfair.audit.noise)
      "fairness_tests": [...]               # the rows of fairness_tests.csv
    }
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from kdfair.audit import counterfactual
from kdfair.audit.engine import AuditResult
from kdfair.audit.health import health_lines
from kdfair.audit.noise import console_mark, noise_lines, summary_entries
from kdfair.degenerate import MARK

SCHEMA = "kdfair.audit.summary/1"


def _clean(value: Any) -> Any:
    """A JSON-safe scalar: numpy scalars as Python numbers, NaN / NA as None."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as JSON-safe dicts."""
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def summary_rows(result: AuditResult) -> list[dict[str, Any]]:
    """Per condition: seeds, accuracy mean and std, #SC/#TC raw and BH, mean DPD and EOD per attribute."""
    summary, counts = result.summary, result.significance_counts.set_index("condition")
    attributes = list(result.info["attributes"])
    rows = []
    for cond in result.info["conditions"]:
        mine = summary[summary["condition"] == cond["id"]]

        def value(metric: str, attribute: str = "", column: str = "mean", _mine: pd.DataFrame = mine) -> Any:
            hit = _mine[(_mine["metric"] == metric) & (_mine["attribute"].fillna("") == attribute)]
            return _clean(hit[column].iloc[0]) if len(hit) else None

        row: dict[str, Any] = {k: cond[k] for k in ("label", "role", "method", "temperature", "alpha")}
        row = {"condition": cond["id"], **row, "n_seeds": len(cond["seeds"])}
        row["accuracy_mean"], row["accuracy_std"] = value("accuracy"), value("accuracy", column="std")
        for key in ("sc", "sc_bh", "tc", "tc_bh"):
            row[key] = _clean(counts.loc[cond["id"], key]) if cond["id"] in counts.index else None
        row["dpd"] = {a: value("dpd", a) for a in attributes}
        row["eod"] = {a: value("eod", a) for a in attributes}
        row.update(counterfactual.summary_entries(value, result.info))  # per attribute changed by the twins
        row.update(_health(result, cond["id"]))
        row.update(summary_entries(result.noise.get("noise_floor_summary"), cond["id"], attributes))
        rows.append(row)
    return rows


def _health(result: AuditResult, condition: str) -> dict[str, Any]:
    """The condition's degenerate and convergence entries for the ``--json`` table (kdfair.audit.health)."""
    table = result.health.get("condition_health")
    hit = None if table is None else table[table["condition"] == condition]
    if hit is None or not len(hit):
        return {"degenerate": None, "degenerate_seeds": None, "converged": None}
    row = hit.iloc[0]
    return {
        "degenerate": bool(row["degenerate"]),
        "degenerate_seeds": int(row["degenerate_seeds"]),
        "converged": None if _clean(row["converged"]) is None else bool(row["converged"]),
        "converged_seeds": int(row["converged_seeds"]),
        "seeds_with_curves": int(row["seeds_with_curves"]),
    }


def _flags(row: dict[str, Any]) -> str:
    """The console's health column: e.g. ``DEGENERATE 2/3, unconverged 1/3``."""
    flags = [f"DEGENERATE {row['degenerate_seeds']}/{row['n_seeds']}"] if row.get("degenerate") else []
    if row.get("converged") is False:
        bad = row["seeds_with_curves"] - row["converged_seeds"]
        flags.append(f"unconverged {bad}/{row['seeds_with_curves']}")
    return ", ".join(flags)


def _percent(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if std is None else f"{100 * value:.2f}±{100 * std:.2f}"


def format_table(result: AuditResult) -> str:
    """A plain-text table of :func:`summary_rows`; accuracy, DPD and EOD in percent.

    DPD and EOD of a degenerate condition carry the mark ``†``; a ``health`` column (only when some condition
    is flagged) and one line per flagged condition below the table say which and why (kdfair.audit.health).
    """
    attributes = list(result.info["attributes"])
    header = ["condition", "seeds", "acc %", "#SC", "#SC bh", "#TC", "#TC bh"]
    header += [f"DPD {a} %" for a in attributes] + [f"EOD {a} %" for a in attributes]
    header += counterfactual.console_header(result.info)  # CF TV / CF flips per attribute, with twins only
    rows = summary_rows(result)
    flagged = any(_flags(row) for row in rows)
    header += ["health"] if flagged else []
    lines = [header]
    for row in rows:
        std = row["accuracy_std"] if row["accuracy_std"] is not None else float("nan")
        cells = [row["condition"], str(row["n_seeds"]), _percent(row["accuracy_mean"], std)]
        cells += ["-" if row[k] is None else str(row[k]) for k in ("sc", "sc_bh", "tc", "tc_bh")]
        mark = f" {MARK}" if row["degenerate"] else ""
        level = result.info["level"]  # n.s.: within the noise floor (kdfair.audit.noise)
        pairs = [(m, a) for m in ("dpd", "eod") for a in attributes]
        cells += [_percent(row[m][a]) + console_mark(row, m, a, level) + mark for m, a in pairs]
        cells += [c + mark if c != "-" else c for c in counterfactual.console_cells(row, result.info)]
        cells += [_flags(row)] if flagged else []
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    notes = health_lines(result.info)
    if any(row["degenerate"] for row in rows):
        notes.append(f"{MARK}: {result.info['degenerate']['rule']}")
    if any(row["converged"] is False for row in rows):
        notes.append(f"converged: {result.info['convergence']['criterion']}")
    notes += noise_lines(result.info)
    return "\n".join([text[0], "-" * len(text[0]), *text[1:], *([""] + notes if notes else [])])


def written_files(out_dir: Path) -> dict[str, str]:
    """Every file of an audit folder, by its path relative to the folder."""
    return {str(p.relative_to(out_dir)): str(p) for p in sorted(out_dir.rglob("*")) if p.is_file()}


def json_document(result: AuditResult, out_dir: Path) -> dict[str, Any]:
    """The ``--json`` document (schema in the module docstring)."""
    return {
        "schema": SCHEMA,
        "out_dir": str(out_dir),
        "files": written_files(out_dir),
        "audit": result.info,
        "table": summary_rows(result),
        "summary": records(result.summary),
        "significance_counts": records(result.significance_counts),
        "noise_floor": records(result.noise.get("noise_floor_summary", pd.DataFrame())),
        "fairness_tests": records(result.noise.get("fairness_tests", pd.DataFrame())),
    }
