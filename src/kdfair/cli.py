"""The ``kdfair`` command line: ``audit``, ``report``, ``sweep``, ``data`` and ``demo``.

Each command lives in its own module, which exposes ``add_parser(subparsers)``; the parser it adds sets
``func(args) -> int``. A :class:`~kdfair.errors.KdfairError` is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kdfair import __version__
from kdfair.errors import KdfairError

# command name -> module that defines it (imported only when needed, so --help stays fast)
COMMANDS: dict[str, str] = {
    "demo": "kdfair.demo",
    "sweep": "kdfair.sweep.cli",
    "audit": "kdfair.audit.cli",
    "report": "kdfair.report.cli",
    "data": "kdfair.data.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdfair",
        description=(
            "Measure, and reduce, what knowledge distillation does to a model's class-wise bias and "
            "fairness. Pipeline: sweep (train teacher, NDS, DS) -> audit (metrics from predictions) -> "
            "report."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kdfair {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command whose module is not built yet
            if exc.name != module_name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KdfairError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"kdfair {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdfair: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
