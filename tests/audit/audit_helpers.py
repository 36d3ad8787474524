"""Helpers for the audit tests: read and rewrite prediction files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def rewrite_npz(run_dir: Path, **changes: np.ndarray) -> None:
    """Replace arrays of ``run_dir/predictions.npz`` (plain np.savez: tests may write invalid data)."""
    arrays = load_npz(run_dir / "predictions.npz")
    arrays.update(changes)
    np.savez(run_dir / "predictions.npz", **arrays)
