"""Counterfactual twins of the test split: Trifeature (one factor swapped, every random draw kept) and
CIFAR-10S (the grey/colour copy of each test image, paired explicitly)."""

from __future__ import annotations

import numpy as np
import pytest
from kdfair_data_formats import write_cifar10

from kdfair.data.common import to_grey
from kdfair.data.registry import load_dataset
from kdfair.data.trifeature import COLOURS, TrifeatureOptions, coverage, render_all, split_parameters
from kdfair.data.trifeature_twins import TEST_SPLIT_ID
from kdfair.errors import ConfigError

# 16 px with 3x supersampling: edges are antialiased, so "mask * texture = 0" is tested per 3x3 block
SMALL = {"image_size": 16, "supersample": 3, "per_combination": 1, "test_per_combination": 1}


@pytest.fixture(scope="module")
def trifeature():
    return load_dataset("trifeature", options={**SMALL, "use_cache": False, "twins_per_image": 2}, seed=2)


def _rows(ids: np.ndarray, of: np.ndarray) -> np.ndarray:
    index = {sid: i for i, sid in enumerate(of.tolist())}
    return np.array([index[s] for s in ids.tolist()])


def test_twins_pair_every_test_image_with_its_other_levels(trifeature) -> None:
    twins, test = trifeature.counterfactual, trifeature.split("test")
    assert twins.attributes_changed == ["colour", "texture"] and len(twins) == 1000 * 2 * 2
    twins.check_against(test)
    source = _rows(twins.source_ids, test.sample_ids)
    assert np.bincount(source).tolist() == [4] * 1000  # 2 colour twins and 2 texture twins each
    np.testing.assert_array_equal(twins.split.labels, test.labels[source])  # the shape label is kept
    for changed, kept in (("colour", "texture"), ("texture", "colour")):
        mine = twins.attribute == changed
        own = test.attributes[changed][source[mine]]
        assert (twins.split.attributes[changed][mine] != own).all()
        np.testing.assert_array_equal(twins.split.attributes[kept][mine], test.attributes[kept][source[mine]])
    first = np.flatnonzero(twins.attribute == "colour")[0]
    level = list(COLOURS)[twins.split.attributes["colour"][first]]
    assert twins.split.sample_ids[first] == f"{twins.source_ids[first]}/colour={level}"
    assert len(np.unique(twins.split.sample_ids)) == len(twins)


def test_a_colour_twin_equals_its_source_wherever_the_mask_is_zero(trifeature) -> None:
    twins, test = trifeature.counterfactual, trifeature.split("test")
    options = TrifeatureOptions(**SMALL, use_cache=False)
    params = split_parameters(1, seed=2, split_id=TEST_SPLIT_ID)
    index = np.flatnonzero(twins.attribute == "colour")[:64]
    source = _rows(twins.source_ids[index], test.sample_ids)
    cover = coverage({k: v[source] for k, v in params.items()}, options, 0, len(source))
    blank = cover.reshape(len(source), 16, 3, 16, 3).max(axis=(2, 4)) == 0  # no shape in the 3x3 block
    original, twin = test.inputs[source], twins.split.inputs[index]
    assert blank.mean() > 0.3 and (~blank).mean() > 0.1
    np.testing.assert_array_equal(twin[blank], original[blank])  # background: grey 0.5, whatever the colour
    np.testing.assert_array_equal(original[blank], 128)
    assert (np.abs(twin.astype(int) - original.astype(int)).max(axis=3)[~blank] > 0).mean() > 0.9


def test_a_twin_rendered_with_its_own_level_is_its_source_byte_for_byte(trifeature) -> None:
    """Every random draw of the twin is the source's: setting the factor back gives the cached image."""
    twins, test = trifeature.counterfactual, trifeature.split("test")
    params = twins.split.inputs.params
    source = _rows(twins.source_ids, test.sample_ids)
    index = np.arange(0, len(twins), 37)
    back = {key: value[index].copy() for key, value in params.items()}
    for factor in ("colour", "texture"):
        mine = twins.attribute[index] == factor
        back[factor][mine] = test.attributes[factor][source[index][mine]]
    options = TrifeatureOptions(**SMALL, use_cache=False)
    np.testing.assert_array_equal(render_all(back, options), test.inputs[source[index]])


def test_twin_images_are_cached_then_memory_mapped(private_cache) -> None:
    options = {**SMALL, "twins_per_image": 1, "twin_attributes": ["colour"]}
    first = load_dataset("trifeature", options=options, seed=0).counterfactual
    images = first.split.inputs[np.arange(len(first))]
    (npy,) = (private_cache / "trifeature").glob("*_twins_*.npy")
    second = load_dataset("trifeature", options=options, seed=0).counterfactual
    np.testing.assert_array_equal(second.split.inputs[np.arange(len(second))], images)
    assert isinstance(second.split.inputs.images(), np.memmap) and npy.stat().st_size > images.nbytes


def test_twin_options() -> None:
    data = load_dataset(
        "trifeature", options={**SMALL, "use_cache": False, "label": "texture", "twins_per_image": 1}
    )
    assert data.counterfactual.attributes_changed == ["colour", "shape"]  # the label is never changed
    none = load_dataset("trifeature", options={**SMALL, "use_cache": False, "twin_attributes": []})
    assert none.counterfactual is None and none.info["twins"] is None
    with pytest.raises(ConfigError, match="twin_attributes cannot hold the label 'shape'"):
        load_dataset("trifeature", options={**SMALL, "twin_attributes": ["shape"]})


def test_cifar10s_twins_pair_each_test_image_with_its_grey_or_colour_copy(tmp_path) -> None:
    _, _, images, labels = write_cifar10(tmp_path, per_class_test=2)
    data = load_dataset("cifar10s", tmp_path)
    twins, test = data.counterfactual, data.split("test")
    n = len(labels)
    twins.check_against(test)
    assert twins.attributes_changed == ["grey"] and len(twins) == 2 * n
    np.testing.assert_array_equal(twins.source_ids, test.sample_ids)
    assert (
        twins.split.sample_ids[0] == "test/000000/grey" and twins.split.sample_ids[n] == "test/000000/colour"
    )
    for j in (0, 3, n, n + 5):
        assert twins.split.sample_ids[j].rsplit("/", 1)[0] == twins.source_ids[j].rsplit("/", 1)[0]
    everything = np.arange(2 * n)
    np.testing.assert_array_equal(twins.split.inputs[everything[:n]], to_grey(images))  # twins of colour
    np.testing.assert_array_equal(twins.split.inputs[everything[n:]], images)  # twins of grey
    np.testing.assert_array_equal(twins.split.attributes["grey"], [1] * n + [0] * n)
    np.testing.assert_array_equal(twins.split.labels, np.concatenate([labels, labels]))
