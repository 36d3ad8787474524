"""Shared fixtures: small synthetic sweeps (kdfair.synthetic) written once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kdfair.synthetic import make_synthetic_sweep

# A strong planted effect: DS at T >= 4 loses 45 points of accuracy on classes 0 and 1.
EFFECTS = {"degraded_classes": (0, 1), "degrade_from_temperature": 4.0, "degrade_drop": 0.45}


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 classes, 1,600 samples, 4 seeds, T in {1, 8}, rows shuffled per run; read-only for tests."""
    root = tmp_path_factory.mktemp("sweep")
    make_synthetic_sweep(
        root,
        n_classes=8,
        n_samples=1600,
        seeds=[0, 1, 2, 3],
        temperatures=[1, 8],
        attributes={"group": 2, "region": 3},
        effects=EFFECTS,
        seed=7,
        shuffle_rows=True,
    )
    return root


@pytest.fixture(scope="session")
def _tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    make_synthetic_sweep(root, n_classes=4, n_samples=120, seeds=[0, 1], temperatures=[2], seed=3)
    return root


@pytest.fixture
def tiny_sweep(_tiny_sweep: Path, tmp_path: Path) -> Path:
    """A fresh, writable copy of a 4-class, 120-sample, 2-seed sweep (teacher, NDS, DS at T=2)."""
    target = tmp_path / "sweep"
    shutil.copytree(_tiny_sweep, target)
    return target
