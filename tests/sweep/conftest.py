"""Session fixtures of the sweep tests: one reference sweep, trained once and shared."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sweep_helpers import TINY, run_cli, write_config


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private KDFAIR_CACHE (generated Trifeature images), also seen by subprocesses and workers."""
    folder = tmp_path_factory.mktemp("kdfair_cache")
    old = os.environ.get("KDFAIR_CACHE")
    os.environ["KDFAIR_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("KDFAIR_CACHE", None)
    else:
        os.environ["KDFAIR_CACHE"] = old


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, data_cache: Path) -> tuple[Path, str]:
    """The tiny sweep (2 seeds, T in {1, 4}) run serially, uninterrupted, audited (the report is built by a
    re-run in test_sweep_smoke): (output folder, its stdout)."""
    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder, TINY)
    status, out, err = run_cli("sweep", str(config), "--out", str(folder / "out"), "--no-report")
    assert status == 0, err
    return folder / "out", out
