"""``kdfair audit RUNS_DIR``: audit a folder of runs and write the tables (docs/audit.md).

Prints a summary table per condition (seeds, accuracy mean ± std in %, #SC/#TC raw and after
Benjamini-Hochberg, DPD and EOD per protected attribute in %) and where the files are. With ``--json`` it
prints one JSON document instead and nothing else on stdout (schema: :mod:`kdfair.audit.summary`); the
progress bar goes to stderr. With ``--skip-incomplete`` each skipped run folder is named in one line first
(on stderr with ``--json``) and in ``audit.json`` ``skipped_runs``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kdfair.runfolder import AUDIT_FOLDER, AUDIT_JSON


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``audit`` command to the ``kdfair`` parser."""
    parser = subparsers.add_parser(
        "audit",
        help="compute class-wise bias and fairness metrics from saved predictions",
        description="Audit a folder of runs in the prediction format (run.json and predictions.npz, "
        "predictions.parquet or predictions.csv per run; README, 'Prediction format').",
    )
    parser.add_argument("runs_dir", metavar="RUNS_DIR", type=Path, help="folder searched for run folders")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUNS_DIR/audit)")
    parser.add_argument("--level", type=float, default=0.05, help="significance level of the Welch tests")
    parser.add_argument(
        "--representation",
        default="auto",
        help="kNN representation for individual fairness: auto (default: the first teacher seed's features; "
        "skipped with a note without them), teacher (an error without them), input (RUNS_DIR/"
        "representation.npz, the standardised test inputs), none, or PATH.npz with arrays sample_id and x",
    )
    parser.add_argument("--k", type=int, default=5, help="neighbours per sample for individual fairness")
    parser.add_argument(
        "--jobs", type=int, default=None, help="worker processes over runs (default: automatic)"
    )
    parser.add_argument(
        "--auroc",
        choices=("always", "auto", "never"),
        default="auto",
        help="compute AUROC: always, never, or auto (default: only with at most 100 classes; the note in "
        "audit.json says when it was left out)",
    )
    parser.add_argument(
        "--permutations",
        type=int,
        default=None,
        metavar="B",
        help="within-class permutations of each protected attribute for the noise floor of DPD, EOD and "
        "DEO (default 999: p-values down to 0.001; 0 skips it)",
    )
    parser.add_argument(
        "--skip-incomplete",
        action="store_true",
        help="skip incomplete run folders (a predictions file without run.json, run.json without "
        "predictions, or unreadable) instead of failing; each is named on the console and in audit.json "
        "skipped_runs",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document to stdout instead of a table"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the audit, write its files, print the summary; 0 on success (errors raise KdfairError)."""
    from kdfair.audit.counterfactual import console_lines
    from kdfair.audit.engine import audit_runs  # heavy imports only when the command runs
    from kdfair.audit.summary import format_table, json_document
    from kdfair.audit.write import write_audit

    out_dir = args.out if args.out is not None else args.runs_dir / AUDIT_FOLDER
    result = audit_runs(
        args.runs_dir,
        level=args.level,
        representation=args.representation,
        k=args.k,
        jobs=args.jobs,
        progress=True,
        auroc=args.auroc,
        skip_incomplete=args.skip_incomplete,
        **({} if args.permutations is None else {"permutations": args.permutations}),
    )
    write_audit(result, out_dir)
    for skipped in result.info["skipped_runs"]:  # --skip-incomplete (kdfair.discovery)
        line = f"skipped incomplete run folder {skipped['folder']}: {skipped['reason']}"
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(json_document(result, out_dir), indent=2, default=str))
        return 0
    print(format_table(result))
    print()
    print(
        f"{result.info['n_runs']} runs, {len(result.info['conditions'])} conditions; "
        f"tables written to {out_dir}"
    )
    if result.info["auroc"]["note"]:
        print(result.info["auroc"]["note"])
    for line in console_lines(result.info):  # kNN space and pair shares, twins (kdfair.audit.counterfactual)
        print(line)
    if result.warnings:
        print(
            f"{len(result.warnings)} warning(s) about undefined quantities, listed in {out_dir / AUDIT_JSON}:"
        )
        for message in result.warnings[:5]:
            print(f"  - {message}")
        if len(result.warnings) > 5:
            print(f"  ... and {len(result.warnings) - 5} more")
    return 0
