"""Local workers' GPUs (issue 20, defect 4) and a worker's death.

Worker ``i`` must see the parent's own ``CUDA_VISIBLE_DEVICES`` entry ``i mod n`` (a scheduler's "2,3", GPU
UUIDs, MIG instances): before, it got index ``i mod #GPUs`` and so physical GPUs 0, 1, ... whatever the
parent was given.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from kdfair.sweep import executors
from kdfair.sweep.worker import worker_gpu_masks

UUIDS = "GPU-1b2c3d4e-0000-1111-2222-333344445555,GPU-9f8e7d6c-0000-1111-2222-333344445555"


@pytest.mark.parametrize(
    ("workers", "gpus", "parent", "expected"),
    [
        (3, 2, None, ["0", "1", "0"]),  # no parent mask: device indices
        (3, 2, "2,3", ["2", "3", "2"]),  # a scheduler's mask
        (2, 2, UUIDS, UUIDS.split(",")),  # GPU UUIDs
        (2, 1, "MIG-aaaa, MIG-bbbb", ["MIG-aaaa", "MIG-aaaa"]),  # CUDA accepted only the first entry
        (2, 0, "", [None, None]),  # the parent sees no GPU: workers are not pinned
        (2, 2, "", [None, None]),
    ],
)
def test_worker_masks_follow_the_parent_mask(
    workers: int, gpus: int, parent: str | None, expected: list[str | None]
) -> None:
    assert worker_gpu_masks(workers, gpus, parent) == expected


class _CapturedPool:
    """A ProcessPoolExecutor that starts nothing and keeps its initializer's arguments."""

    def __init__(self, workers: int, mp_context: Any, initializer: Any, initargs: tuple) -> None:
        self.initargs = initargs

    def shutdown(self, **kwargs: Any) -> None:
        pass


def test_local_backend_hands_out_the_parent_mask_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    monkeypatch.setenv("KDFAIR_ALLOCATOR", "default")
    monkeypatch.setattr(executors, "gpu_count", lambda: 2)
    monkeypatch.setattr(executors, "ProcessPoolExecutor", _CapturedPool)
    backend = executors._LocalBackend(3, None)
    (slots,) = backend.pool.initargs
    got = [slots.get(timeout=10) for _ in range(3)]
    backend.close()
    assert got == ["5", "7", "5"]
    for device, expected in (("cpu", [None, None]), ("cuda", ["5", "7"])):
        backend = executors._LocalBackend(2, device)
        (slots,) = backend.pool.initargs
        assert [slots.get(timeout=10) for _ in range(2)] == expected
        backend.close()


@pytest.mark.skipif(sys.platform != "linux", reason="spawned workers: tested on Linux")
def test_spawned_worker_sees_its_mask_and_its_death_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1b2c3d4e")
    monkeypatch.setenv("KDFAIR_ALLOCATOR", "default")
    monkeypatch.setattr(executors, "gpu_count", lambda: 1)
    backend = executors._LocalBackend(1, None)
    try:
        seen = backend.pool.submit(_read_env, "CUDA_VISIBLE_DEVICES").result(timeout=120)
        dying = backend.pool.submit(os._exit, 3)  # the worker dies (as when killed or out of memory)
        ((handle, error),) = backend.wait([dying])
    finally:
        backend.close()
    assert seen == "GPU-1b2c3d4e"
    assert handle is dying and isinstance(error, RuntimeError)
    assert str(error) == "a worker process died (killed or out of memory)"


def _read_env(name: str) -> str | None:
    return os.environ.get(name)
