"""Trifeature generator: determinism, cache, speed, balance, the pixel formula and factor distinctness."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kdfair.data import trifeature
from kdfair.data import trifeature_art as art
from kdfair.data.registry import load_dataset
from kdfair.data.trifeature import (
    COLOURS,
    SHAPE_SCALE,
    SHAPES,
    TrifeatureOptions,
    draw_pose,
    generate_split,
    render_all,
)

SMALL = {"image_size": 16, "supersample": 1, "per_combination": 1, "test_per_combination": 1}


def test_same_seed_same_bytes_and_other_seed_differs():
    a = load_dataset("trifeature", options={**SMALL, "use_cache": False}, seed=3)
    b = load_dataset("trifeature", options={**SMALL, "use_cache": False}, seed=3)
    c = load_dataset("trifeature", options={**SMALL, "use_cache": False}, seed=4)
    assert a.split("train").inputs.tobytes() == b.split("train").inputs.tobytes()
    assert np.array_equal(a.split("test").labels, b.split("test").labels)
    assert a.split("train").inputs.tobytes() != c.split("train").inputs.tobytes()


def test_cache_written_then_reused(private_cache, monkeypatch):
    first = load_dataset("trifeature", options=SMALL, seed=1)
    assert first.info["from_cache"] is False
    files = list((private_cache / "trifeature").glob("*.npz"))
    assert len(files) == 1 and not list((private_cache / "trifeature").glob("*.tmp"))

    def no_rendering(*args, **kwargs):
        raise AssertionError("a cached data set was rendered again")

    monkeypatch.setattr(trifeature, "generate_split", no_rendering)  # reused: read, not rendered
    second = load_dataset("trifeature", options=SMALL, seed=1)
    assert second.info["from_cache"] is True
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


def amplitude_spectrum(images: np.ndarray) -> np.ndarray:
    """A fixed (not learned) transform of raw pixels: the Fourier amplitude of each image's deviation from the
    grey background, channels pooled, L2-normalised. It ignores where the shape sits and how the texture is
    shifted, and roughly how bright the colour is; raw pixels averaged over random colours are grey."""
    deviation = images.astype(np.float64) / 255.0 - 0.5
    power = (np.abs(np.fft.fft2(deviation, axes=(1, 2))) ** 2).sum(-1).reshape(len(images), -1)
    amplitude = np.sqrt(power)
    return amplitude / np.linalg.norm(amplitude, axis=1, keepdims=True)


def raw_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float64)


def nearest_centroid_accuracy_others_random(factor: int, features, seed: int = 0) -> float:
    """Held-out accuracy of a nearest-centroid classifier for ``factor`` (0 shape, 1 texture, 2 colour) when
    the other two factors are drawn at random per image and the pose is random: 40 train and 20 test images
    per value at 32 px."""
    options = TrifeatureOptions(image_size=32, use_cache=False)
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        values = np.arange(10).repeat(n)
        factors = [rng.integers(0, 10, len(values)) for _ in range(3)]
        factors[factor] = values
        return features(render_all(draw_pose(*factors, rng), options)), values

    (x_train, y_train), (x_test, y_test) = make(40), make(20)
    centroids = np.stack([x_train[y_train == k].mean(0) for k in range(10)])
    distances = (x_test**2).sum(1)[:, None] - 2 * x_test @ centroids.T + (centroids**2).sum(1)[None]
    return float(np.mean(distances.argmin(1) == y_test))


@pytest.mark.parametrize(
    ("factor", "features", "minimum"),
    [(0, amplitude_spectrum, 0.3), (1, amplitude_spectrum, 0.4), (2, raw_pixels, 0.6)],
    ids=["shape", "texture", "colour"],
)
def test_each_factor_recognisable_when_the_other_two_vary(factor, features, minimum):
    # chance is 0.1; measured over seeds 0-4: shape 0.43-0.55, texture 0.62-0.73, colour 0.76-0.87 (raw
    # pixels give 0.09-0.17 for shape and texture here: averaged over random colours they are grey)
    assert nearest_centroid_accuracy_others_random(factor, features) > minimum


def _solid_white(shape: int, size: int, n: int = 3) -> np.ndarray:
    """``n`` solid white images of one shape at the image centre, upright."""
    params = draw_pose(np.full(n, shape), np.zeros(n, dtype=int), np.full(n, 9), np.random.default_rng(1))
    params["offset"][:] = 0.0
    params["shape_angle"][:] = 0.0
    return render_all(params, TrifeatureOptions(image_size=size, use_cache=False))


@pytest.mark.parametrize("size", [32, 64, 224])
def test_sizes_64_and_224_scale_the_shape_with_the_image(size):
    circles = _solid_white(SHAPES.index("circle"), size)
    assert circles.shape == (3, size, size, 3) and circles.dtype == np.uint8
    # the circle covers pi * (CIRCLE_RADIUS * SHAPE_SCALE)^2 of the image at every size (antialiased edges
    # count by how much they are covered: white 255 on grey 128)
    coverage = (circles[..., 0].astype(float) - 128.0) / 127.0
    expected = np.pi * (art.CIRCLE_RADIUS * SHAPE_SCALE) ** 2  # 0.294
    assert coverage.mean(axis=(1, 2)) == pytest.approx(np.full(3, expected), abs=0.01)
    # an upright square spans 2 * 0.72 * SHAPE_SCALE of the side, in pixels at each size
    square = _solid_white(SHAPES.index("square"), size, n=1)[0, size // 2, :, 0]
    width = np.sum(square.astype(float) - 128.0) / 127.0
    assert width == pytest.approx(2 * 0.72 * SHAPE_SCALE * size, abs=1.0)
    mixed = render_all(
        draw_pose(*[np.arange(4)] * 3, np.random.default_rng(2)), TrifeatureOptions(image_size=size)
    )
    assert mixed.shape == (4, size, size, 3) and len({m.tobytes() for m in mixed}) == 4


def test_label_option_swaps_label_and_protected_attributes() -> None:
    options = {"per_combination": 1, "test_per_combination": 1, "image_size": 16}
    by_shape = load_dataset("trifeature", options=options, seed=3)
    by_texture = load_dataset("trifeature", options={**options, "label": "texture"}, seed=3)
    shape_split, texture_split = by_shape.split("train"), by_texture.split("train")
    np.testing.assert_array_equal(texture_split.labels, shape_split.attributes["texture"])
    assert sorted(texture_split.attributes) == ["colour", "shape"]
    assert by_texture.class_names[0] == "solid" and by_texture.attribute_levels["shape"][0] == "triangle"
    np.testing.assert_array_equal(texture_split.inputs, shape_split.inputs)


def test_docs_grid_script_lays_out_shape_rows_texture_columns():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "scripts" / "trifeature_grid.py"
    spec = importlib.util.spec_from_file_location("trifeature_grid", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    grid = module.grid_image(size=32, seed=0)
    assert grid.shape == (320, 320, 3) and grid.dtype == np.uint8
    # tile (row 3 = circle, column 0 = solid) has colour (3 + 0) % 10 = yellow; the circle always covers the
    # tile's centre (offset <= 12% of the side, radius 31%); tile corners are background grey
    tile = grid[96:128, 0:32]
    assert tile[16, 16].tolist() == [255, 255, 0] and tile[0, 0].tolist() == [128, 128, 128]
    assert grid[16, 16].tolist() == [
        255,
        0,
        0,
    ]  # tile (0, 0): solid triangle, colour 0 red, covers its centre
    assert np.array_equal(grid, module.grid_image(size=32, seed=0))  # seeded
