"""Trifeature generator: determinism, cache, speed, balance, the pixel formula and factor distinctness."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kdfair.data import trifeature_art as art
from kdfair.data.registry import load_dataset
from kdfair.data.trifeature import COLOURS, TrifeatureOptions, draw_pose, generate_split, render_all

SMALL = {"image_size": 16, "supersample": 1, "per_combination": 1, "test_per_combination": 1}


def test_same_seed_same_bytes_and_other_seed_differs():
    a = load_dataset("trifeature", options={**SMALL, "use_cache": False}, seed=3)
    b = load_dataset("trifeature", options={**SMALL, "use_cache": False}, seed=3)
    c = load_dataset("trifeature", options={**SMALL, "use_cache": False}, seed=4)
    assert a.split("train").inputs.tobytes() == b.split("train").inputs.tobytes()
    assert np.array_equal(a.split("test").labels, b.split("test").labels)
    assert a.split("train").inputs.tobytes() != c.split("train").inputs.tobytes()


def test_cache_written_then_reused(private_cache):
    first = load_dataset("trifeature", options=SMALL, seed=1)
    assert first.info["from_cache"] is False
    files = list((private_cache / "trifeature").glob("*.npz"))
    assert len(files) == 1 and not list((private_cache / "trifeature").glob("*.tmp"))
    start = time.perf_counter()
    second = load_dataset("trifeature", options=SMALL, seed=1)
    assert second.info["from_cache"] is True
    assert time.perf_counter() - start < 1.0
    assert second.split("train").inputs.tobytes() == first.split("train").inputs.tobytes()
    assert np.array_equal(
        second.split("train").attributes["texture"], first.split("train").attributes["texture"]
    )


def test_thousand_images_at_32_px_in_seconds():
    # CPU time of this process (the shared test machine makes wall time noisy); about 1 s on one core
    start = time.process_time()
    images, params = generate_split(1, TrifeatureOptions(image_size=32, use_cache=False), seed=0, split_id=0)
    assert time.process_time() - start < 5.0
    assert images.shape == (1000, 32, 32, 3) and images.dtype == np.uint8
    assert len(np.unique(images.reshape(1000, -1), axis=0)) == 1000


def test_every_combination_once_per_split_with_shape_label():
    data = load_dataset("trifeature", options={**SMALL, "use_cache": False})
    for split in data.splits.values():
        combo = split.labels * 100 + split.attributes["texture"] * 10 + split.attributes["colour"]
        assert np.array_equal(np.sort(combo), np.arange(1000))
        assert len(set(split.sample_ids)) == 1000
    assert data.class_names[0] == "triangle" and data.attribute_levels["colour"][6] == "purple"
    assert data.info["splits"]["train"]["classes"]["star"] == 100


def test_solid_shape_pixels_follow_the_formula():
    # at 224 px (no supersampling) the shape centre is mask*texture = 1 -> the colour; a corner is grey 0.5
    options = TrifeatureOptions(image_size=224, use_cache=False)
    colours = np.arange(10)
    params = draw_pose(np.full(10, 3), np.zeros(10, dtype=int), colours, np.random.default_rng(0))
    params["offset"][:] = 0.0
    images = render_all(params, options)
    expected = np.rint(np.asarray(list(COLOURS.values())) * 255).astype(np.uint8)
    assert np.array_equal(images[:, 112, 112], expected)
    assert np.all(images[:, 0, 0] == 128) and np.all(images[:, 223, 223] == 128)


@pytest.mark.parametrize(
    ("name", "area"),
    [("circle", np.pi * art.CIRCLE_RADIUS**2), ("square", 1.44**2), ("rhombus", 2 * 0.6 * 1.0)],
)
def test_shape_mask_area_matches_geometry(name, area):
    u, v = np.meshgrid(np.linspace(-1.2, 1.2, 601), np.linspace(-1.2, 1.2, 601))
    measured = art.shape_mask(name, u, v).mean() * 2.4**2
    assert measured == pytest.approx(area, rel=0.01)


def test_stripes_cover_half_and_solid_all():
    s, t = np.meshgrid(np.linspace(0, 10, 1000, endpoint=False), np.linspace(0, 10, 1000, endpoint=False))
    assert art.texture("stripes", s, t, np.array([0])).mean() == pytest.approx(0.5, abs=1e-3)
    assert art.texture("solid", s, t, np.array([0])).all()


def _nearest_centroid_accuracy(factor: int, fixed: tuple[int, int, int]) -> float:
    options = TrifeatureOptions(image_size=32, use_cache=False)
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        values = np.arange(10).repeat(n)
        factors = [np.full(len(values), f) for f in fixed]
        factors[factor] = values
        images = render_all(draw_pose(*factors, rng), options)
        return images.reshape(len(values), -1).astype(np.float64), values

    x_train, y_train = make(30)
    x_test, y_test = make(20)
    centroids = np.stack([x_train[y_train == k].mean(0) for k in range(10)])
    distances = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1)
    return float(np.mean(distances.argmin(1) == y_test))


@pytest.mark.parametrize(("factor", "minimum"), [(0, 0.3), (1, 0.3), (2, 0.9)])
def test_each_factor_recognisable_by_nearest_centroid(factor, minimum):
    # factor 0 shape, 1 texture, 2 colour; the others fixed (star / solid / white, or square / solid for
    # texture); pose random. Chance is 0.1.
    fixed = (7, 0, 9) if factor != 1 else (1, 0, 9)
    assert _nearest_centroid_accuracy(factor, fixed) > minimum


def test_label_option_swaps_label_and_protected_attributes() -> None:
    options = {"per_combination": 1, "test_per_combination": 1, "image_size": 16}
    by_shape = load_dataset("trifeature", options=options, seed=3)
    by_texture = load_dataset("trifeature", options={**options, "label": "texture"}, seed=3)
    shape_split, texture_split = by_shape.split("train"), by_texture.split("train")
    np.testing.assert_array_equal(texture_split.labels, shape_split.attributes["texture"])
    assert sorted(texture_split.attributes) == ["colour", "shape"]
    assert by_texture.class_names[0] == "solid" and by_texture.attribute_levels["shape"][0] == "triangle"
    np.testing.assert_array_equal(texture_split.inputs, shape_split.inputs)
