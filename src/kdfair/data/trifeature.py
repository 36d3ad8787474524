"""Trifeature (Hermann & Lampinen 2020), generated locally with a seed (SPEC §7).

Each image combines one of 10 shapes, 10 textures and 10 colours on a grey 0.5 background:
``rgb = mask * texture * colour + (1 - mask * texture) * 0.5`` (values in [0, 1], stored as uint8).
Shapes are masks rotated by an angle drawn from [-45, 45) degrees and shifted by a random offset; textures
have a period of 10 px at 224 px (scaled with the size), a random phase and a random rotation. Small images
are rendered ``supersample`` times larger and block-averaged down, so edges are antialiased.
Label: shape by default (option ``label``: shape, texture or colour); the other two factors are the
protected attributes. Every (shape, texture, colour) combination appears
``per_combination`` times in train and ``test_per_combination`` times in test.

Every random draw of an image (shape angle and offset, texture rotation, phase and noise seed) is stored per
image in its parameters (:func:`draw_pose`), and an image is a pure function of its parameters
(:func:`render`). So an image can be drawn again with one factor swapped and everything else equal: the
counterfactual twins of the test split (``Dataset.counterfactual``, :mod:`kdfair.data.trifeature_twins`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from kdfair.data import trifeature_art as art
from kdfair.data.base import Dataset, DataSplit
from kdfair.data.common import StrictOptions, cache_dir, fingerprint, splits_info
from kdfair.data.trifeature_twins import TEST_SPLIT_ID, build_twins
from kdfair.io import save_npz_atomic

GENERATOR_VERSION = 1  # bump when the pictures change, so stale caches are not reused
CHUNK = 64  # images rendered at once (memory: CHUNK x render_size^2 floats per array)
SHAPE_SCALE = 0.36  # shape radius as a fraction of the image side (the shape spans up to 72% of it)
MAX_OFFSET = 0.12  # largest shift of the shape centre from the image centre, fraction of the side

SHAPES = art.SHAPE_NAMES
TEXTURES = art.TEXTURE_NAMES
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "pink": (1.0, 0.4, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "purple": (0.3, 0.0, 0.5),
    "ocean": (0.1, 0.4, 0.5),
    "orange": (1.0, 0.6, 0.0),
    "white": (1.0, 1.0, 1.0),
}


class TrifeatureOptions(StrictOptions):
    image_size: int = Field(32, ge=8, le=512)  # output side in px; the paper uses 224
    per_combination: int = Field(5, ge=1)  # train images per (shape, texture, colour): 5,000 by default
    test_per_combination: int = Field(1, ge=1)  # test images per combination: 1,000 by default
    seed: int | None = None  # generator seed; None uses the loader's ``seed`` argument
    texture_period_px: float | None = Field(None, gt=0)  # None: max(10 * image_size / 224, 4) output px
    supersample: int | None = Field(None, ge=1, le=8)  # None: ceil(96 / image_size), 1 at 96 px and above
    cache_dir: str | None = None  # None: $KDFAIR_CACHE/trifeature or ~/.cache/kdfair/trifeature
    use_cache: bool = True
    label: Literal["shape", "texture", "colour"] = "shape"  # the class; the other two factors are protected
    # counterfactual twins of the test images (SPEC §6): the protected factors to change, one at a time;
    # None = every protected factor, [] = no twins. Rendered on first use and cached beside the splits
    twin_attributes: list[Literal["shape", "texture", "colour"]] | None = None
    twins_per_image: int | None = Field(None, ge=1, le=9)  # other levels per image and factor; None = all 9

    @model_validator(mode="after")
    def _twins_change_protected_factors(self) -> TrifeatureOptions:
        if self.twin_attributes is not None and self.label in self.twin_attributes:
            raise ValueError(f"twin_attributes cannot hold the label '{self.label}' (twins keep the label)")
        return self


def texture_period(options: TrifeatureOptions) -> float:
    """Texture period in output pixels. SPEC: 10 px at 224 px, scaled with the size. Below 90 px that falls
    under 4 px, where stripes and dots alias to flat grey after antialiasing; we keep 4 px as the floor."""
    if options.texture_period_px is not None:
        return float(options.texture_period_px)
    return max(10.0 * options.image_size / 224.0, 4.0)


def supersample_factor(options: TrifeatureOptions) -> int:
    return options.supersample or max(1, math.ceil(96 / options.image_size))


def draw_parameters(n_per_combination: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Factors and random pose of every image: each combination ``n_per_combination`` times, shuffled."""
    combos = np.arange(1000).repeat(n_per_combination)
    combos = combos[rng.permutation(len(combos))]
    return draw_pose(combos // 100, (combos // 10) % 10, combos % 10, rng)


def draw_pose(
    shape: np.ndarray, texture: np.ndarray, colour: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Random shape angle and offset, texture rotation and phase, and noise seed for the given factors."""
    n = len(shape)
    return {
        "shape": np.asarray(shape, dtype=np.int64),
        "texture": np.asarray(texture, dtype=np.int64),
        "colour": np.asarray(colour, dtype=np.int64),
        "shape_angle": rng.uniform(-45.0, 45.0, n),  # degrees, [-45, 45)
        "offset": rng.uniform(-MAX_OFFSET, MAX_OFFSET, (n, 2)),  # fraction of the side, (x, y)
        "texture_angle": rng.uniform(0.0, 180.0, n),  # degrees
        "texture_phase": rng.uniform(0.0, 1.0, (n, 2)),  # periods, (x, y)
        "noise_seed": rng.integers(0, 2**31 - 1, n),
    }


def coverage(params: dict[str, np.ndarray], options: TrifeatureOptions, start: int, stop: int) -> np.ndarray:
    """``mask * texture`` of images ``start:stop`` at the render resolution: float32 (B, S*f, S*f) in [0, 1],
    with f the supersampling factor. Where it is 0 a pixel shows the grey background, whatever the colour."""
    factor = supersample_factor(options)
    big = options.image_size * factor
    sl = slice(start, stop)
    centre = (0.5 + params["offset"][sl]) * big  # (B, 2) in render px
    grid = (np.arange(big, dtype=np.float32) + 0.5)[None, :]
    gx = grid[:, None, :] - centre[:, 0, None, None].astype(np.float32)  # (B, 1, big)
    gy = grid[:, :, None] - centre[:, 1, None, None].astype(np.float32)  # (B, big, 1)
    radius = SHAPE_SCALE * big
    mask = art.shape_masks(params["shape"][sl], gx / radius, gy / radius, params["shape_angle"][sl])
    period = texture_period(options) * factor
    tex = art.texture_values(
        params["texture"][sl],
        gx / period,
        gy / period,
        params["texture_angle"][sl],
        params["texture_phase"][sl],
        params["noise_seed"][sl],
    )
    return mask * tex


def render(params: dict[str, np.ndarray], options: TrifeatureOptions, start: int, stop: int) -> np.ndarray:
    """Images ``start:stop`` of ``params`` as uint8 (B, S, S, 3); each image depends on its own row only."""
    size, factor = options.image_size, supersample_factor(options)
    colour = np.asarray(list(COLOURS.values()), dtype=np.float32)[params["colour"][start:stop]]  # (B, 3)
    cover = coverage(params, options, start, stop)[..., None]
    rgb = cover * colour[:, None, None, :] + (1.0 - cover) * 0.5
    if factor > 1:
        rgb = rgb.reshape(len(colour), size, factor, size, factor, 3).mean(axis=(2, 4))
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def split_parameters(n_per_combination: int, seed: int, split_id: int) -> dict[str, np.ndarray]:
    """Factors and random draws of every image of one split (no rendering); deterministic in
    ``(seed, split_id)``: the parameters behind :func:`generate_split`'s images, cached or not."""
    rng = np.random.default_rng([seed, split_id, GENERATOR_VERSION])
    return draw_parameters(n_per_combination, rng)


def generate_split(
    n_per_combination: int, options: TrifeatureOptions, seed: int, split_id: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Images (N, S, S, 3) uint8 and their factors for one split; deterministic in ``(seed, split_id)``."""
    params = split_parameters(n_per_combination, seed, split_id)
    return render_all(params, options), params


def render_all(
    params: dict[str, np.ndarray], options: TrifeatureOptions, out: np.ndarray | None = None
) -> np.ndarray:
    """Every image described by ``params`` (see :func:`draw_pose`), in chunks: uint8 (N, S, S, 3), written
    into ``out`` (e.g. a memory-mapped file) when given."""
    n = len(params["shape"])
    images = np.empty((n, options.image_size, options.image_size, 3), dtype=np.uint8) if out is None else out
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        images[start:stop] = render(params, options, start, stop)
    return images


def cache_file(options: TrifeatureOptions, seed: int) -> Path:
    """The ``.npz`` cache of the generated splits for ``options`` and ``seed``."""
    key = fingerprint(
        GENERATOR_VERSION,
        options.image_size,
        options.per_combination,
        options.test_per_combination,
        texture_period(options),
        supersample_factor(options),
        seed,
    )
    name = f"trifeature_{options.image_size}px_seed{seed}_{key}.npz"
    return cache_dir("trifeature", options.cache_dir) / name


def _build_arrays(options: TrifeatureOptions, seed: int) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for split_id, (split, per) in enumerate(
        (("train", options.per_combination), ("test", options.test_per_combination))
    ):
        images, params = generate_split(per, options, seed, split_id)
        arrays[f"{split}_images"] = images
        for factor in ("shape", "texture", "colour"):
            arrays[f"{split}_{factor}"] = params[factor].astype(np.int64)
    return arrays


def load_trifeature(root: Path | None, options: TrifeatureOptions, *, seed: int) -> Dataset:
    """Generate (or read from the cache) the Trifeature splits. ``root`` is unused: nothing is downloaded."""
    seed = options.seed if options.seed is not None else seed
    path = cache_file(options, seed)
    cached = options.use_cache and path.is_file()
    if cached:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    else:
        arrays = _build_arrays(options, seed)
        if options.use_cache:
            save_npz_atomic(path, **arrays)
    names = {"shape": list(SHAPES), "texture": list(TEXTURES), "colour": list(COLOURS)}
    protected = [factor for factor in ("colour", "texture", "shape") if factor != options.label]
    splits = {
        split: DataSplit(
            inputs=arrays[f"{split}_images"],
            labels=arrays[f"{split}_{options.label}"],
            sample_ids=np.asarray([f"{split}/{i:06d}" for i in range(len(arrays[f"{split}_shape"]))]),
            attributes={factor: arrays[f"{split}_{factor}"] for factor in protected},
        )
        for split in ("train", "test")
    }
    levels = {factor: names[factor] for factor in protected}
    twins = build_twins(
        options,
        seed,
        splits["test"],
        names,
        path if options.use_cache else None,
        params=split_parameters(options.test_per_combination, seed, TEST_SPLIT_ID),
        render=render_all,
        generator_version=GENERATOR_VERSION,
    )
    info = {
        "seed": seed,
        "cache_file": str(path) if options.use_cache else None,
        "from_cache": cached,
        "texture_period_px": texture_period(options),
        "supersample": supersample_factor(options),
        "splits": splits_info(splits, names[options.label], levels),
        "twins": None if twins is None else {"n": len(twins), "attributes": twins.attributes_changed},
    }
    return Dataset(
        name="trifeature",
        modality="image",
        num_classes=len(names[options.label]),
        class_names=names[options.label],
        splits=splits,
        attribute_levels=levels,
        image_size=options.image_size,
        info=info,
        counterfactual=twins,
    )
