"""``kdfair demo``: the README's main job.

It trains the demo sweep (``kdfair/demo.yaml``: Trifeature at 32 x 32, ResNet-20 -> LeNet-5, a teacher, a
non-distilled student and distilled students at T = 1..10 over 3 seeds), audits it, writes the report and
prints where the report is. It runs the same code as ``kdfair sweep``, so re-running it resumes.
"""

from __future__ import annotations

import argparse
import os
import time
from importlib import resources
from pathlib import Path

from kdfair.io import write_text_atomic

DEFAULT_OUT = Path("demo_out")


def demo_config_text() -> str:
    """The demo sweep config shipped with the package."""
    return resources.files("kdfair").joinpath("demo.yaml").read_text(encoding="utf-8")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="train, audit and report the built-in Trifeature demo sweep (a few minutes on a CPU)",
        description=(
            "Train a teacher (ResNet-20), a non-distilled student and distilled students (LeNet-5) at "
            "T = 1..10 over 3 seeds on Trifeature (built in, 32 x 32), audit the predictions and write "
            "the HTML report. Re-running resumes; finished runs are not redone."
        ),
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: demo_out)")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        metavar="N",
        help="worker processes, one thread each (default: 2, or 1 on a 1-core machine)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the demo sweep config (YAML) and exit"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.print_config:
        print(demo_config_text(), end="")
        return 0
    from kdfair.sweep.cli import sweep

    config_path = args.out / "demo.yaml"
    write_text_atomic(config_path, demo_config_text())
    started = time.monotonic()
    status = sweep(config_path, args.out, workers=args.workers)
    if status == 0:
        report = (args.out / "report" / "index.html").resolve()
        minutes = (time.monotonic() - started) / 60
        print(f"\ndemo finished in {minutes:.1f} min. Open the report: {report}")
    return status
