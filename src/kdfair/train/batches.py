"""An epoch's batches: which positions a student samples (:class:`BatchPlan`), a batch's share for one DDP
rank (:func:`shard_batch`), and building the next batch ahead of the step (:func:`prefetched`).

The batch order depends only on ``(seed, epoch)`` (:mod:`kdfair.train.sampling`), so every DDP rank and every
lockstep student sees the same batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from kdfair.methods.base import Batch
from kdfair.train.augment import InputPipeline
from kdfair.train.sampling import balanced_batches, random_batches

T = TypeVar("T")


@dataclass(frozen=True)
class BatchPlan:
    """Which train positions a student samples and how; students with equal plans share every batch."""

    positions: np.ndarray  # int64 positions in the train split (all of it, or train minus meta)
    batch_size: int
    seed: int
    groups: np.ndarray | None = None  # balanced sampler: group codes at ``positions``; None = random
    labels: np.ndarray | None = None

    def key(self) -> tuple[Any, ...]:
        groups = None if self.groups is None else self.groups.tobytes()
        return (self.positions.tobytes(), self.batch_size, self.seed, groups)

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches as positions in the train split."""
        if self.groups is None:
            local = random_batches(len(self.positions), self.batch_size, seed=self.seed, epoch=epoch)
        else:
            assert self.labels is not None
            local = balanced_batches(self.labels, self.groups, self.batch_size, seed=self.seed, epoch=epoch)
        return [self.positions[b] for b in local]


def shard_batch(
    positions: np.ndarray,
    generator: torch.Generator,
    pipeline: InputPipeline,
    labels: torch.Tensor,
    attributes: dict[str, torch.Tensor],
    shard: tuple[int, int],
) -> tuple[Batch, int, float]:
    """Rank ``shard[0]``'s part of the batch at ``positions``, the whole batch's size, and the rank's weight.

    Augmentation is drawn for the whole batch so shards agree. Under DDP rank ``r`` of ``world`` takes rows
    ``r::world``; its weight ``world * n_rank / n_batch`` makes DDP's mean over ranks the gradient of the
    whole batch's mean loss (1 for equal shards). When the batch has fewer samples than ranks, a rank without
    a row trains on the batch's first sample with weight 0 (its shard would be empty: a NaN loss).
    ``labels`` and ``attributes`` are the train split's, on the device.
    """
    augmentation = pipeline.draw(len(positions), generator) if pipeline.augment else None
    rank, world = shard
    total, weight = len(positions), 1.0
    if world > 1:
        rows = np.arange(rank, total, world)
        weight = world * len(rows) / total
        if len(rows) == 0:
            rows, weight = np.zeros(1, dtype=np.int64), 0.0
        positions = positions[rows]
        if augmentation is not None:
            picked = torch.from_numpy(rows)
            augmentation = (augmentation[0][picked], augmentation[1][picked])
    index = pipeline.to_device(torch.from_numpy(positions))
    batch = Batch(
        inputs=pipeline.batch(positions, augmentation),
        labels=labels[index],
        attributes={name: codes[index] for name, codes in attributes.items()},
        index=index,
    )
    return batch, total, weight


def prefetched(
    items: Iterable[Any], build: Callable[[Any], T], ahead: bool, device: torch.device | None = None
) -> Iterator[T]:
    """``build(item)`` of each item, in order; with ``ahead`` the next one is built on a worker thread while
    the caller works on this one (one worker: the same calls in the same order, so the same results).

    ``device``: a CUDA device becomes the worker thread's current device (CUDA's current device is per
    thread: without it the worker would work in device 0's context, even on a DDP rank's ``cuda:3``).
    """
    if not ahead:
        for item in items:
            yield build(item)
        return
    setup = None
    if device is not None and device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        setup = functools.partial(torch.cuda.set_device, index)
    with ThreadPoolExecutor(1, thread_name_prefix="kdfair-batches", initializer=setup) as pool:
        pending: Future[T] | None = None
        for item in items:
            upcoming = pool.submit(build, item)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()
