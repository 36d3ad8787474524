"""What runs where a sweep's unit is trained: the unit function, the thread count, and each worker's GPU.

The executors (:mod:`kdfair.sweep.executors`: in this process or in local worker processes) and the Ray
backend (:mod:`kdfair.sweep.ray_backend`) both send :func:`run_unit` to wherever a unit trains. Both import
it from here, a floor below them, so neither imports the other's module at run time except the executors
choosing the Ray backend.

GPU slots: local worker ``i`` sees one GPU through ``CUDA_VISIBLE_DEVICES``. The value is an entry of the
parent's own ``CUDA_VISIBLE_DEVICES`` when the parent has one (a scheduler's ``"2,3"``, GPU UUIDs, MIG
instances): worker ``i`` gets entry ``i mod n``, so no worker lands on a GPU the parent was not given.
Without a parent mask, worker ``i`` gets device index ``i mod #GPUs``.
"""

from __future__ import annotations

import os

from kdfair.sweep.expand import Unit

VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """torch intra-op threads of each of ``workers`` workers: ``max(1, cores // workers)``."""
    return max(1, available_cores() // max(1, workers))


def run_unit(unit: Unit, device: str | None, threads: int | None, progress: bool | str) -> list[str]:
    """Train one unit with :func:`kdfair.train.runner.execute`; returns its run folders (as strings).

    ``progress``: True (a bar per epoch), ``"lines"`` (a stdout line per epoch) or False.
    """
    import torch

    from kdfair.train.runner import execute

    if threads is not None:
        torch.set_num_threads(threads)
    paths = execute(list(unit.runs), unit.sweep_dir, device=device, progress=progress)
    return [str(p) for p in paths]


def parent_mask_entries(mask: str | None) -> list[str] | None:
    """The entries of a ``CUDA_VISIBLE_DEVICES`` value (indices, ``GPU-<uuid>``, ``MIG-<uuid>``), or None
    when it is unset (every GPU visible). An empty value hides every GPU: an empty list."""
    if mask is None:
        return None
    return [entry.strip() for entry in mask.split(",") if entry.strip()]


def worker_gpu_masks(workers: int, gpus: int, parent_mask: str | None) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` of each of ``workers`` local workers, on a machine where this process sees
    ``gpus`` GPUs through its own mask ``parent_mask`` (None: unset). None: the worker is not pinned (no GPU).

    With a parent mask, worker ``i`` gets the parent's entry ``i mod n`` (n: the ``gpus`` entries that CUDA
    accepted, the leading ones); without one, device index ``i mod gpus``.
    """
    if gpus <= 0:
        return [None] * workers
    entries = parent_mask_entries(parent_mask)
    if entries is None:
        return [str(index % gpus) for index in range(workers)]
    visible = entries[:gpus]  # CUDA stops at the first entry it cannot use
    if not visible:
        return [None] * workers
    return [visible[index % len(visible)] for index in range(workers)]


def gpu_count() -> int:
    """GPUs this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
