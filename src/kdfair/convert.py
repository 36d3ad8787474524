"""``kdfair convert PATH...``: predictions.csv or predictions.parquet -> predictions.npz.

A table (:mod:`kdfair.prediction_tables`) is read, checked as the audit checks it (the same one-line
errors; with the run's ``run.json`` beside it, its ``class_names`` too) and written as ``predictions.npz``
in the same folder, with the same arrays: ``sample_id``, ``y_true``, ``logits`` or ``probs`` as stored (no
softmax), ``attr_<name>`` with their values (not codes), ``features``. The npz loads faster and is the form
kdfair's own runs have. A run folder must hold one predictions file, so the table is kept only without
``--replace`` and the command then says which folders hold both.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kdfair.errors import KdfairError
from kdfair.io import save_npz_atomic
from kdfair.predictions import predictions_from_arrays, read_run_meta, validate_arrays
from kdfair.runfolder import PREDICTIONS_CSV, PREDICTIONS_NPZ, PREDICTIONS_PARQUET, RUN_JSON

TABLES = (PREDICTIONS_PARQUET, PREDICTIONS_CSV)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``convert`` command to the ``kdfair`` parser."""
    parser = subparsers.add_parser(
        "convert",
        help="write predictions.npz from predictions.csv or predictions.parquet",
        description="Check predictions.csv or predictions.parquet files as kdfair audit does (the same\n"
        "one-line errors) and write each as predictions.npz beside it, with the same arrays.\n"
        "Columns: sample_id, y_true, logit_0..logit_<C-1> or prob_0..prob_<C-1> (or a list\n"
        "column logits or probs, Parquet only), attr_<name>, optional feature_<j>\n"
        "(README, 'Prediction format').",
        epilog="examples:\n"
        "  kdfair convert my_runs/ds_T4_s0/predictions.csv   one table -> my_runs/ds_T4_s0/predictions.npz\n"
        "  kdfair convert my_runs --replace                  every table below my_runs, tables deleted\n"
        "  kdfair convert scores.parquet --out run/predictions.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        metavar="PATH",
        nargs="+",
        type=Path,
        help="a predictions.csv or predictions.parquet file, or a folder (a run folder or a runs folder)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="the npz to write, for one input file only (default: predictions.npz beside the table)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="delete each table once its npz is written (a run folder may hold only one predictions file)",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing predictions.npz (default: refuse)"
    )
    parser.set_defaults(func=run)
    return parser


def find_tables(paths: list[Path]) -> list[Path]:
    """The tables named by ``paths``: files as given, folders searched for ``TABLES`` at any depth."""
    tables: list[Path] = []
    for path in paths:
        if path.is_file():
            if path.suffix not in (".csv", ".parquet"):
                raise KdfairError(f"{path}: not a .csv or .parquet file")
            tables.append(path)
        elif path.is_dir():
            found = sorted(Path(d) / f for d, _, files in os.walk(path) for f in files if f in TABLES)
            if not found:
                raise KdfairError(f"{path}: no {' or '.join(TABLES)} below it")
            tables += found
        else:
            raise KdfairError(f"{path}: no such file or folder")
    return tables


def convert_table(table: Path, out: Path | None = None, *, force: bool = False) -> tuple[Path, str]:
    """Check ``table`` and write its arrays to ``out`` (default ``predictions.npz`` beside it).

    Returns the npz written and a short description (samples, classes, scores, attributes). Raises
    :class:`PredictionFormatError` on a bad table, :class:`KdfairError` when ``out`` exists without ``force``.
    """
    from kdfair.prediction_tables import read_table  # pandas only when a table is converted

    out = out if out is not None else table.parent / PREDICTIONS_NPZ
    if out.exists() and not force:
        raise KdfairError(f"{out}: exists; pass --force to overwrite it")
    arrays = read_table(table)
    if (table.parent / RUN_JSON).is_file():  # the run's class_names must match the number of classes
        checked = vars(predictions_from_arrays(arrays, table, table.parent, read_run_meta(table.parent)))
    else:
        checked = validate_arrays(arrays, table)
    save_npz_atomic(out, **arrays)
    scores = "logits" if "logits" in arrays else "probs"
    n, n_classes = checked["probs"].shape
    attributes = ", ".join(checked["attributes"]) or "none"
    return out, f"{n} samples, {n_classes} classes, {scores}, attributes: {attributes}"


def run(args: argparse.Namespace) -> int:
    """Convert every table named by ``args.paths``; 0 on success (errors raise KdfairError)."""
    tables = find_tables(args.paths)
    if args.out is not None and len(tables) != 1:
        raise KdfairError(f"--out takes one input table, got {len(tables)}")
    both = []
    for table in tables:
        out, description = convert_table(table, args.out, force=args.force)
        if args.replace:
            table.unlink()
        elif out.parent == table.parent and out.name == PREDICTIONS_NPZ:
            both.append(table.parent)
        print(f"wrote {out} from {table.name} ({description}){'; removed the table' if args.replace else ''}")
    if both:
        print(
            f"note: {len(both)} folder(s) now hold a table and predictions.npz, e.g. {both[0]}; the audit "
            "reads one predictions file per run folder: remove the tables (or convert with --replace --force)"
        )
    return 0
