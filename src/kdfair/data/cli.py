"""``kdfair data``: list the registered data sets, or load one and print its sizes and balance.

kdfair data list
kdfair data inspect NAME --root DIR [--option key=value ...] [--attributes-only] [--seed N]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml
from tqdm import tqdm

from kdfair.data.base import Dataset
from kdfair.data.common import split_counts
from kdfair.data.registry import DATASETS, dataset_spec, load_dataset
from kdfair.errors import ConfigError


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
    dataset = load_dataset(args.name, args.root, options, seed=args.seed)
    counts = {
        name: split_counts(split, dataset.class_names, dataset.attribute_levels)
        for name, split in tqdm(dataset.splits.items(), desc="scanning splits", unit="split", leave=False)
    }
    if args.json:
        print(json.dumps({**dataset.info, "splits": counts}, indent=2, default=str))
        return 0
    print(format_summary(dataset, counts))
    return 0


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
