"""Helpers of the sweep tests: a tiny config, merged variants, written to tmp_path."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any

import yaml

from kdfair.cli import main

# A sweep small enough to train on the CPU in seconds: 16x16 Trifeature, LeNet-5 -> LeNet-5, 2 steps/epoch.
TINY: dict[str, Any] = {
    "name": "tiny",
    "data": {
        "name": "trifeature",
        "options": {"image_size": 16, "per_combination": 1, "test_per_combination": 1},
    },
    "teacher": {"model": "lenet5"},
    "student": {"model": "lenet5"},
    "train": {
        "epochs": 2,
        "batch_size": 32,
        "eval_batch_size": 256,
        "milestones": [1],
        "max_steps_per_epoch": 2,
        "augment": False,
        "threads": 1,  # fixed, so serial, worker and Ray runs are bit-identical
    },
    "distill": {"methods": ["kd"], "temperatures": [1, 4], "alphas": [0.8]},
    "seeds": [0, 1],
    "include_nds": True,
}


def merged(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with top-level keys replaced (a dict value is merged one level deep)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return out


def write_config(folder: Path, raw: dict[str, Any], name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``kdfair <argv>`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def predictions_equal(a: Path, b: Path) -> list[str]:
    """Names of the arrays that differ between two predictions.npz files (empty: bit-for-bit equal)."""
    import numpy as np

    with np.load(a, allow_pickle=False) as left, np.load(b, allow_pickle=False) as right:
        if sorted(left.files) != sorted(right.files):
            return ["<array names>"]
        return [k for k in left.files if not np.array_equal(left[k], right[k])]


def temporary_files(folder: Path) -> list[Path]:
    """Leftovers of interrupted atomic writes (``.<name>.<random>.tmp``)."""
    return sorted(p for p in folder.rglob("*.tmp") if p.is_file())  # pathlib's "*" matches dot files too


def env_without_crash() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "KDFAIR_CRASH_AT"}


def assert_unit_progress(lines: list[str], err: str, n_units: int) -> None:
    """The sweep's progress without per-epoch bars: one finish line per unit with counts and times, the last
    one saying all units are done, and, stderr being no terminal here, a plain progress line on stderr that
    reaches ``n_units`` instead of a redrawn bar."""
    finished = [line for line in lines if " finished " in line]
    pattern = rf"\[\d+/{n_units}\] finished \S+ in [\d.]+ s \(\d+/{n_units} units done, \d+ s elapsed\)"
    assert len(finished) == n_units and all(re.fullmatch(pattern, x) for x in finished), finished
    assert f"({n_units}/{n_units} units done, " in finished[-1]
    assert re.search(rf"^progress: {n_units}/{n_units} units finished \(100%\) in \d[\w ]*$", err, re.M), err
    assert "\r" not in err, err
