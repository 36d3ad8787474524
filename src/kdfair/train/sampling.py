"""Batch order: the random sampler, MFD's labelwise balanced sampler, and the meta split.

Every order is a pure function of ``(seed, epoch)``: a run's batches do not depend on which other runs it is
trained beside (lockstep) nor on where it was interrupted (resume). A sampler returns the whole epoch as a
list of int64 index arrays into the split it samples.
"""

from __future__ import annotations

import numpy as np

# Streams keep the random numbers of different consumers independent for one (seed, epoch).
STREAM_ORDER = 0
STREAM_AUGMENT = 1
STREAM_META = 2
STREAM_META_SPLIT = 3
STREAM_CUDA_RESUME = 4  # the CUDA RNG of a student resumed on a GPU from a checkpoint written without CUDA


def rng_for(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """A numpy generator for ``(seed, epoch, stream)`` (SeedSequence mixing; no overlap between streams)."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, stream]))


def torch_seed_for(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit integer seed for a ``torch.Generator`` derived from ``(seed, epoch, stream)``."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def random_batches(n: int, batch_size: int, *, seed: int, epoch: int) -> list[np.ndarray]:
    """A seeded permutation of ``range(n)`` cut into batches of ``batch_size``.

    The last batch may be smaller; a last batch of a single sample is dropped (BatchNorm cannot train on it).
    """
    order = rng_for(seed, epoch, STREAM_ORDER).permutation(n).astype(np.int64)
    return _cut(order, batch_size)


def balanced_batches(
    labels: np.ndarray, groups: np.ndarray, batch_size: int, *, seed: int, epoch: int
) -> list[np.ndarray]:
    """MFD's labelwise balanced sampler (Jung et al. 2021): every batch balanced over (class, group) cells.

    With m non-empty cells, each batch takes ``batch_size // m`` samples from every cell and one more from
    ``batch_size % m`` cells drawn at random. Each cell is read in a seeded random order, reshuffled each time
    it runs out, so small cells are repeated and large ones subsampled. An epoch has ``ceil(n / batch_size)``
    batches, as many as the random sampler.
    """
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    rng = rng_for(seed, epoch, STREAM_ORDER)
    cell_keys = labels * (int(groups.max(initial=0)) + 1) + groups
    cells = [np.flatnonzero(cell_keys == key) for key in np.unique(cell_keys)]
    streams = [_CyclicStream(cell, rng) for cell in cells]
    n_batches = -(-len(labels) // batch_size)
    base, extra = divmod(batch_size, len(cells))
    batches = []
    for _ in range(n_batches):
        counts = np.full(len(cells), base, dtype=np.int64)
        counts[rng.choice(len(cells), size=extra, replace=False)] += 1
        batch = np.concatenate([stream.take(int(c)) for stream, c in zip(streams, counts, strict=True)])
        batches.append(batch[rng.permutation(len(batch))])
    return batches


def split_meta(n: int, fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``round(fraction * n)`` (at least 1) train samples as the meta split (BIRD, SPEC §2).

    Returns ``(train_index, meta_index)``, both sorted int64 arrays; the choice depends only on ``seed``.
    """
    n_meta = max(1, round(fraction * n))
    order = rng_for(seed, 0, STREAM_META_SPLIT).permutation(n)
    return np.sort(order[n_meta:]).astype(np.int64), np.sort(order[:n_meta]).astype(np.int64)


class MetaBatches:
    """An endless seeded stream of meta batches (index arrays), reshuffled every pass; restarts each epoch."""

    def __init__(self, n: int, batch_size: int, *, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        self._stream = _CyclicStream(
            np.arange(self.n, dtype=np.int64), rng_for(self.seed, epoch, STREAM_META)
        )

    def next(self) -> np.ndarray:
        return self._stream.take(min(self.batch_size, self.n))


class _CyclicStream:
    """Reads ``items`` in random order, reshuffling with ``rng`` each time they run out."""

    def __init__(self, items: np.ndarray, rng: np.random.Generator) -> None:
        self.items, self.rng = items, rng
        self.order = rng.permutation(items)
        self.pos = 0

    def take(self, count: int) -> np.ndarray:
        out = []
        while count > 0:
            if self.pos == len(self.order):
                self.order, self.pos = self.rng.permutation(self.items), 0
            step = min(count, len(self.order) - self.pos)
            out.append(self.order[self.pos : self.pos + step])
            self.pos += step
            count -= step
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _cut(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if batch_size > 1 and len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches
