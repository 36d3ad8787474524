"""``kdfair data``: list the registered data sets, or load one and print its sizes and balance.

kdfair data list
kdfair data inspect NAME --root DIR [--option key=value ...] [--attributes-only] [--seed N]
    [--no-decode] [--chunk-size N] [--progress auto|always|never] [--json]

``inspect`` reads every sample of every split in chunks, with a progress bar per split on stderr; images read
lazily from files are decoded through the split's reader, and unreadable files are listed (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from kdfair.data.base import Dataset
from kdfair.data.common import progress_mode
from kdfair.data.registry import DATASETS, dataset_spec, load_dataset
from kdfair.data.scan import CHUNK_SIZE, ScanResult, scan_split
from kdfair.errors import ConfigError

SHOWN_UNREADABLE = 5  # unreadable files named per split in the summary


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("data", help="list data sets or inspect one", description=__doc__)
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    lister = sub.add_parser("list", help="names, descriptions and expected files of every data set")
    lister.set_defaults(func=run_list)
    inspect = sub.add_parser("inspect", help="load a data set and print sizes, class and group balance")
    inspect.add_argument("name", help=f"one of: {', '.join(DATASETS)}")
    inspect.add_argument("--root", default=None, help="folder holding the data set's files")
    inspect.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a loader option (YAML value)"
    )
    inspect.add_argument(
        "--attributes-only", action="store_true", help="shorthand for --option attributes_only=true"
    )
    inspect.add_argument("--seed", type=int, default=0, help="construction seed (default 0)")
    inspect.add_argument("--json", action="store_true", help="print Dataset.info as JSON instead of tables")
    inspect.add_argument(
        "--no-decode", action="store_true", help="count labels and groups only; do not read image files"
    )
    inspect.add_argument(
        "--chunk-size", type=int, default=CHUNK_SIZE, help=f"samples read at a time (default {CHUNK_SIZE})"
    )
    inspect.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="progress bar on stderr: auto shows it on a terminal only (default auto)",
    )
    inspect.set_defaults(func=run_inspect)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b=[x, y]"]`` -> ``{"a": 1, "b": ["x", "y"]}`` (values parsed as YAML)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option '{pair}' is not KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return options


def run_list(args: argparse.Namespace) -> int:
    for name, spec in DATASETS.items():
        print(f"{name}: {spec.description}")
        print(f"    files: {', '.join(spec.expected_files) or '(none)'}")
        print(f"    get it: {spec.download_hint}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    options = parse_options(args.option)
    if args.attributes_only:
        if "attributes_only" not in dataset_spec(args.name).options.model_fields:
            raise ConfigError(f"data set '{args.name}' has no attributes-only mode")
        options["attributes_only"] = True
    if args.chunk_size < 1:
        raise ConfigError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    with progress_mode({"auto": None, "always": True, "never": False}[args.progress]):  # the loaders' bars
        dataset = load_dataset(args.name, args.root, options, seed=args.seed)
    scans = {
        name: scan_split(
            split,
            dataset.class_names,
            dataset.attribute_levels,
            desc=f"scanning {name}",
            chunk_size=args.chunk_size,
            decode=not args.no_decode,
            progress=args.progress,
        )
        for name, split in dataset.splits.items()
    }
    counts = {name: scan.counts for name, scan in scans.items()}
    if args.json:
        unreadable = {name: scan.unreadable for name, scan in scans.items() if scan.unreadable}
        print(json.dumps({**dataset.info, "splits": counts, "unreadable": unreadable}, indent=2, default=str))
    else:
        print(format_summary(dataset, counts))
        print(format_unreadable(scans))
    bad = sum(len(scan.unreadable) for scan in scans.values())
    if bad:
        first = next(msg for scan in scans.values() for _, msg in scan.unreadable)
        print(f"kdfair data: error: {bad} unreadable input file(s); first: {first}", file=sys.stderr)
        return 2
    return 0


def format_unreadable(scans: dict[str, ScanResult]) -> str:
    """Per split: how many samples were decoded from files and which files could not be read."""
    lines = []
    for name, scan in scans.items():
        if not scan.decoded and not scan.unreadable:
            continue
        lines.append(f"[{name}] decoded {scan.decoded} files, {len(scan.unreadable)} unreadable")
        for sample_id, message in scan.unreadable[:SHOWN_UNREADABLE]:
            lines.append(f"  {sample_id}: {message}")
        if len(scan.unreadable) > SHOWN_UNREADABLE:
            lines.append(f"  ... {len(scan.unreadable) - SHOWN_UNREADABLE} more")
    return "\n".join(lines) if lines else "no image files to decode (inputs in memory or not read)"


def _share(count: int, total: int) -> str:
    return f"{count} ({100.0 * count / total:.1f}%)" if total else str(count)


def format_summary(dataset: Dataset, counts: dict[str, dict[str, Any]]) -> str:
    """Plain-text sizes, class balance and group balance per split."""
    lines = [
        f"{dataset.name}: {dataset.modality}, {dataset.num_classes} classes"
        + (f", {dataset.image_size} px" if dataset.image_size else "")
        + (f", vocabulary {dataset.vocab_size}" if dataset.vocab_size else "")
    ]
    for split, c in counts.items():
        lines.append(f"[{split}] {c['n']} samples")
        classes = c["classes"]
        shown = list(classes.items())[:20]
        lines.append("  classes: " + ", ".join(f"{k} {_share(v, c['n'])}" for k, v in shown))
        if len(classes) > len(shown):
            lines.append(f"  ... {len(classes) - len(shown)} more classes")
        for attr, g in c["groups"].items():
            lines.append(
                f"  {attr}: " + ", ".join(f"{k} {_share(v, c['n'])}" for k, v in g["levels"].items())
            )
    extra = {k: v for k, v in dataset.info.items() if k != "splits"}
    if extra:
        lines.append("info: " + json.dumps(extra, default=str))
    return "\n".join(lines)
