"""Local workers start with PERF-NOTES' glibc allocator settings unless the user opts out."""

from __future__ import annotations

import os
import sys

import pytest

from kdfair.sweep import executors


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tunables are Linux-only")
def test_workers_get_allocator_tunables_and_parent_env_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("KDFAIR_ALLOCATOR", raising=False)
    backend = executors._LocalBackend(1, "cpu")
    try:
        seen = backend.pool.submit(_read_env, "GLIBC_TUNABLES").result(timeout=120)
    finally:
        backend.close()
    assert seen == executors.ALLOCATOR_TUNABLES
    assert "GLIBC_TUNABLES" not in os.environ


@pytest.mark.parametrize(
    "env", [{"KDFAIR_ALLOCATOR": "default"}, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}]
)
def test_opting_out_leaves_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert executors._worker_environment() == {}
    assert os.environ.get("GLIBC_TUNABLES") == env.get("GLIBC_TUNABLES")


def _read_env(name: str) -> str | None:
    return os.environ.get(name)
