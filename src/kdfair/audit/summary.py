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
         "dpd": {attribute: mean}, "eod": {attribute: mean}}
      ],
      "summary": [...],                     # the rows of summary.csv, as objects
      "significance_counts": [...]          # the rows of significance_counts.csv, as objects
    }
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from kdfair.audit.engine import AuditResult

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
        rows.append(row)
    return rows


def _percent(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if std is None else f"{100 * value:.2f}±{100 * std:.2f}"


def format_table(result: AuditResult) -> str:
    """A plain-text table of :func:`summary_rows`; accuracy, DPD and EOD in percent."""
    attributes = list(result.info["attributes"])
    header = ["condition", "seeds", "acc %", "#SC", "#SC bh", "#TC", "#TC bh"]
    header += [f"DPD {a} %" for a in attributes] + [f"EOD {a} %" for a in attributes]
    lines = [header]
    for row in summary_rows(result):
        std = row["accuracy_std"] if row["accuracy_std"] is not None else float("nan")
        cells = [row["condition"], str(row["n_seeds"]), _percent(row["accuracy_mean"], std)]
        cells += ["-" if row[k] is None else str(row[k]) for k in ("sc", "sc_bh", "tc", "tc_bh")]
        cells += [_percent(row["dpd"][a]) for a in attributes] + [_percent(row["eod"][a]) for a in attributes]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    return "\n".join([text[0], "-" * len(text[0]), *text[1:]])


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
    }
