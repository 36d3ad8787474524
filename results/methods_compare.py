"""The fair-method comparison of RESULTS.md section 3, from an audit folder.

Usage: ``python results/methods_compare.py AUDIT_DIR [--attribute race] [--reference kd] [--out FILE.md]``

Per condition (teacher, NDS, one DS per method): accuracy, AUROC, mean-DEO and max-DEO for the attribute
(mean ± std over seeds, %), each DS's difference from the reference method's DS with the two-sided Welch
t-test over seeds (``scipy.stats.ttest_ind(equal_var=False)``), the largest predicted-class share of any
seed, the degenerate seeds and the converged seeds (``run_health.csv``). Reads only the audit's CSV files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ttest_ind

METRICS = [
    ("Acc. (%)", "accuracy", False),
    ("AUROC (%)", "auroc", False),
    ("mean-DEO (%)", "deo_mean", True),
    ("max-DEO (%)", "deo_max", True),
]


def _values(metrics: pd.DataFrame, condition: str, metric: str, attribute: str | None) -> np.ndarray:
    rows = metrics[(metrics["condition"] == condition) & (metrics["metric"] == metric)]
    rows = rows[rows["attribute"] == attribute] if attribute else rows[rows["attribute"].isna()]
    return rows.sort_values("seed")["value"].to_numpy() * 100


def compare(audit: Path, attribute: str, reference: str) -> str:
    metrics = pd.read_csv(audit / "run_metrics.csv")
    health = pd.read_csv(audit / "run_health.csv")
    conditions = list(dict.fromkeys(metrics["condition"]))
    refs = [c for c in conditions if c.startswith(f"ds_{reference}_T")]
    if len(refs) != 1:
        raise SystemExit(f"expected one DS condition of method {reference!r}, found {refs}")
    ref = refs[0]
    head = ["condition"]
    for label, _, _ in METRICS:
        head += [label, f"{label.split(' ')[0]} vs {reference} (p)"]
    head += ["max top share", "degenerate seeds", "converged"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for condition in conditions:
        cells = [condition]
        for _, metric, per_attribute in METRICS:
            a = attribute if per_attribute else None
            v, k = _values(metrics, condition, metric, a), _values(metrics, ref, metric, a)
            cells.append(f"{v.mean():.2f} ± {v.std(ddof=1):.2f}")
            if condition.startswith("ds_") and condition != ref:
                p = ttest_ind(v, k, equal_var=False).pvalue
                shown = "<0.001" if p < 0.001 else f"{p:.3f}"
                cells.append(f"{v.mean() - k.mean():+.2f} ({shown})")
            else:
                cells.append("-")
        runs = health[health["condition"] == condition]
        cells += [
            f"{runs['top_share'].max():.2f}",
            str(int(runs["degenerate"].sum())),
            f"{int(runs['converged'].sum())}/{len(runs)}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audit", type=Path)
    parser.add_argument("--attribute", default="race")
    parser.add_argument(
        "--reference", default="kd", help="the DS method every other method is tested against"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = compare(args.audit, args.attribute, args.reference)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text, end="")


if __name__ == "__main__":
    main()
