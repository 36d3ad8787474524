"""The ``kdfair`` command line: ``audit``, ``convert``, ``report``, ``sweep``, ``data`` and ``demo``.

Each command lives in its own module, which exposes ``add_parser(subparsers)``; the parser it adds sets
``func(args) -> int``. A :class:`~kdfair.errors.KdfairError` is printed as one line and exits with status 2,
as is a missing optional dependency, with the extra that installs it (:mod:`kdfair.extras`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kdfair import __version__
from kdfair.errors import KdfairError
from kdfair.extras import missing_extra

# command name -> module that defines it (imported only when needed, so --help stays fast)
COMMANDS: dict[str, str] = {
    "demo": "kdfair.demo",
    "sweep": "kdfair.sweep.cli",
    "audit": "kdfair.audit.cli",
    "convert": "kdfair.convert",
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
    except (KdfairError, ModuleNotFoundError) as exc:
        # a module of an extra that is not installed becomes one line naming the extra
        error = exc if isinstance(exc, KdfairError) else missing_extra(exc)
        if error is None:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"kdfair {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdfair: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
