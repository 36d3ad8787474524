"""``kdfair report AUDIT_OR_RUNS_DIR [--out DIR]``: tables, figures and one HTML page, from files only."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kdfair.report.figures import TOP_K_CLASSES
from kdfair.runfolder import AUDIT_JSON


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type): ``--top-k 0`` would show no class at all."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` command to the ``kdfair`` dispatcher."""
    parser = subparsers.add_parser(
        "report",
        help="render tables, figures and an HTML page from an audit folder or a runs folder",
        description="Render the papers' tables (Markdown, LaTeX, CSV), figures (PNG, SVG) and one "
        "self-contained index.html from an audit folder (the output of `kdfair audit`). Given a runs folder "
        "instead, the report uses <runs_dir>/audit: reused as it is when it is up to date with the runs "
        "(so options such as `kdfair audit --level` are kept); written with `kdfair audit`'s defaults when "
        "absent; audited again with the options recorded in it when runs were added or changed. One line "
        "on stderr says which audit was used.",
    )
    parser.add_argument(
        "audit_dir",
        type=Path,
        metavar="AUDIT_OR_RUNS_DIR",
        help="an audit folder (holds audit.json) or a runs folder (run folders with run.json below it)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: report/ beside the audit folder, or inside the runs folder)",
    )
    parser.add_argument(
        "--top-k",
        type=positive_int,
        default=TOP_K_CLASSES,
        help=f"classes shown in the class-wise figure when there are more (default {TOP_K_CLASSES})",
    )
    parser.add_argument("--no-figures", action="store_true", help="tables and the page only (fast)")
    parser.add_argument(
        "--skip-incomplete",
        action="store_true",
        help="for a runs folder: skip incomplete run folders (a predictions file without run.json, run.json "
        "without predictions, or unreadable) instead of failing; each is named on stderr and in audit.json",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the report and print the path of index.html."""
    from kdfair.report import build_report

    source = args.audit_dir.resolve()
    default = source.parent / "report" if (source / AUDIT_JSON).is_file() else source / "report"
    out = args.out if args.out is not None else default
    index = build_report(
        args.audit_dir,
        out,
        top_k=args.top_k,
        figures=not args.no_figures,
        skip_incomplete=args.skip_incomplete,
    )
    print(index)
    return 0
