"""Counterfactual twins of the Trifeature test images (SPEC §6).

A twin of test image ``i`` is image ``i`` drawn again from its stored parameters with one protected factor
(colour, texture, or shape when the label is not shape) set to another level; the label factor, the other
protected factor and every random draw (shape angle and offset, texture rotation, phase and noise seed) are
those of image ``i``. Rendering is a pure function of an image's own parameters, so a twin differs from its
source exactly where the factor shows: a colour twin equals its source wherever ``mask * texture`` is 0.

By default each test image gets every other level of each protected factor (9 colour twins and 9 texture
twins for the shape label: 18,000 twins of 1,000 test images); ``twins_per_image`` draws fewer with a seed.
Twin ids are ``<source id>/<factor>=<level name>``, e.g. ``test/000123/colour=blue``.

The twin images are rendered on first use (about 1 s per 1,000 images at 32 px) and, with ``use_cache``,
written once to an ``.npy`` beside the split cache and memory-mapped afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kdfair.data.base import DataSplit
from kdfair.data.common import fingerprint
from kdfair.data.twins import CounterfactualTwins
from kdfair.io import atomic_path

if TYPE_CHECKING:
    from kdfair.data.trifeature import TrifeatureOptions

FACTORS = ("shape", "texture", "colour")
LEVELS = 10  # levels of every factor
TEST_SPLIT_ID = 1  # generate_split's split_id of the test split
# render_all(params, options, out=None) -> uint8 (M, S, S, 3) images
Render = Callable[..., np.ndarray]


def twin_parameters(
    params: dict[str, np.ndarray], factor: str, per_image: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parameters of the twins of every image in ``params`` that change ``factor``, and each twin's source
    row. Each image gets ``per_image`` other levels (all ``LEVELS - 1`` in level order, or a seeded draw
    of fewer, kept in level order); every other parameter is copied from the source."""
    own = np.asarray(params[factor], dtype=np.int64)
    levels = np.arange(LEVELS)
    others = np.stack([levels[levels != level] for level in own]) if len(own) else np.empty((0, LEVELS - 1))
    if per_image < LEVELS - 1:
        keep = np.sort(np.argsort(rng.random(others.shape), axis=1)[:, :per_image], axis=1)
        others = np.take_along_axis(others, keep, axis=1)
    source = np.repeat(np.arange(len(own)), others.shape[1])
    twins = {key: value[source] for key, value in params.items()}
    twins[factor] = others.reshape(-1).astype(np.int64)
    return twins, source


class TwinImages:
    """The twin images of ``params``, rendered on first access (uint8 (M, S, S, 3)); with a ``cache`` path
    they are rendered once into that ``.npy`` (atomically) and memory-mapped from it afterwards."""

    def __init__(
        self, params: dict[str, np.ndarray], options: TrifeatureOptions, cache: Path | None, render: Render
    ) -> None:
        self.params, self.options, self.cache, self.render = params, options, cache, render
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.params["shape"])

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.images()[np.asarray(index, dtype=np.int64)])

    def images(self) -> np.ndarray:
        """All twin images (rendered, or read from the cache, on the first call)."""
        if self._images is None:
            if self.cache is None:
                self._images = self.render(self.params, self.options)
            else:
                if not self.cache.is_file():
                    size = self.options.image_size
                    with atomic_path(self.cache) as tmp:
                        out = np.lib.format.open_memmap(tmp, "w+", np.uint8, (len(self), size, size, 3))
                        self.render(self.params, self.options, out)
                        out.flush()
                        del out
                self._images = np.load(self.cache, mmap_mode="r")
        return self._images


def twin_factors(options: TrifeatureOptions) -> list[str]:
    """The factors the twins change: ``options.twin_attributes``, or every protected factor."""
    protected = [f for f in ("colour", "texture", "shape") if f != options.label]
    return protected if options.twin_attributes is None else list(dict.fromkeys(options.twin_attributes))


def build_twins(
    options: TrifeatureOptions,
    seed: int,
    test: DataSplit,
    level_names: dict[str, list[str]],
    split_cache: Path | None,
    *,
    params: dict[str, np.ndarray],
    render: Render,
    generator_version: int,
) -> CounterfactualTwins | None:
    """The counterfactual twins of the test split ``test`` (None when ``twin_attributes`` is empty).

    ``level_names``: factor -> names of its levels; ``split_cache``: the split cache file (twins are cached
    beside it) or None for no cache. ``params``: the test split's drawn parameters, ``render``: the renderer
    (:func:`kdfair.data.trifeature.render_all`), ``generator_version``: the generator's version (both passed
    in by the Trifeature loader, so this module does not import it back).
    """
    factors = twin_factors(options)
    if not factors:
        return None
    per_image = options.twins_per_image or LEVELS - 1
    parts, sources, changed = [], [], []
    for factor in factors:
        rng = np.random.default_rng([seed, TEST_SPLIT_ID, generator_version, 100 + FACTORS.index(factor)])
        twins, source = twin_parameters(params, factor, per_image, rng)
        parts.append(twins)
        sources.append(source)
        changed += [factor] * len(source)
    merged = {key: np.concatenate([p[key] for p in parts]) for key in params}
    source_rows = np.concatenate(sources)
    factor_of = np.asarray(changed)
    level = np.array([merged[f][j] for j, f in enumerate(changed)], dtype=np.int64)
    names = np.asarray([level_names[f][v] for f, v in zip(changed, level, strict=True)])
    sample_ids = np.char.add(np.char.add(test.sample_ids[source_rows].astype(str), "/"), factor_of)
    sample_ids = np.char.add(np.char.add(sample_ids, "="), names)
    cache = None
    if split_cache is not None:
        cache = split_cache.with_name(f"{split_cache.stem}_twins_{fingerprint(factors, per_image)}.npy")
    split = DataSplit(
        inputs=TwinImages(merged, options, cache, render),
        labels=test.labels[source_rows],
        sample_ids=sample_ids,
        attributes={name: merged[name].astype(np.int64) for name in test.attributes},
    )
    return CounterfactualTwins(split=split, source_ids=test.sample_ids[source_rows], attribute=factor_of)
