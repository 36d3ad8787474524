"""UTKFace from tiny files: name parsing, malformed names, race 4 dropped, age buckets, the per-cell test."""

from __future__ import annotations

import numpy as np
import pytest
from kdfair_data_formats import random_images, write_image

from kdfair.data.registry import load_dataset
from kdfair.data.utkface import age_bucket, parse_name
from kdfair.errors import DataError


def _write(folder, n_per_cell=5):
    names = []
    for race in range(4):
        for age in (5, 25, 60):
            for i in range(n_per_cell):
                names.append(f"{age + i}_{i % 2}_{race}_2017010{race}{age:03d}{i}.jpg.chip.jpg")
    names += ["30_0_4_20170101000000001.jpg.chip.jpg", "19_1_0_20170101000000002.jpg", "20_0_1_2017.jpg"]
    bad = ["61_1_20170109142408075.jpg.chip.jpg", "x_0_0_1.jpg", "30_2_0_1.jpg"]
    for name, image in zip(names + bad, random_images(len(names + bad), 16), strict=True):
        write_image(folder / name, image)
    return names


def test_parse_name_and_buckets():
    assert parse_name("26_1_3_20170119180000000.jpg.chip.jpg") == (26, 1, 3)
    assert parse_name("26_1_3_20170119180000000.jpg") == (26, 1, 3)
    assert parse_name("61_1_20170109142408075.jpg.chip.jpg") is None
    assert [age_bucket(a) for a in (0, 19, 20, 39, 40, 116)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("sub", ["images", "UTKFace", "crop_part1", ""])
def test_root_layouts_labels_and_counts(tmp_path, sub):
    _write(tmp_path / sub if sub else tmp_path)
    data = load_dataset("utkface", tmp_path, {"test_per_cell": 2, "image_size": 8})
    assert data.info["skipped_malformed"] == 3 and data.info["dropped_race_others"] == 1
    test = data.split("test")
    cells = np.stack([test.attributes["race"], test.labels], 1)
    assert len(test) == 24 and all(np.sum((cells == [r, a]).all(1)) == 2 for r in range(4) for a in range(3))
    train = data.split("train")
    assert len(train) + len(test) == 62 and not set(train.sample_ids) & set(test.sample_ids)
    assert data.class_names == ["<20", "20-39", ">=40"] and data.attribute_levels["race"][3] == "Indian"
    ids = np.concatenate([train.sample_ids, test.sample_ids])
    labels = np.concatenate([train.labels, test.labels])
    gender = np.concatenate([train.attributes["gender"], test.attributes["gender"]])
    row = list(ids).index("19_1_0_20170101000000002.jpg")
    assert labels[row] == 0 and gender[row] == 1
    assert test.inputs[np.array([0])].shape == (1, 8, 8, 3)


def test_test_draw_is_seeded(tmp_path):
    _write(tmp_path)
    a = load_dataset("utkface", tmp_path, {"test_per_cell": 2}, seed=0).split("test").sample_ids
    b = load_dataset("utkface", tmp_path, {"test_per_cell": 2}, seed=0).split("test").sample_ids
    c = load_dataset("utkface", tmp_path, {"test_per_cell": 2}, seed=1).split("test").sample_ids
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_short_cells_give_half_to_test(tmp_path):
    _write(tmp_path)
    data = load_dataset("utkface", tmp_path, {"test_per_cell": 4})  # cells hold 5 (6 for White <20)
    short = data.info["short_cells"]
    assert short["Black|20-39"] == {"images": 6, "test": 3} and short["White|<20"] == {"images": 6, "test": 3}
    assert short["Asian|>=40"] == {"images": 5, "test": 2} and len(short) == 12
    assert len(data.split("test")) == 10 * 2 + 2 * 3


def test_corrupt_image_and_empty_folder(tmp_path):
    _write(tmp_path)
    (tmp_path / "5_0_0_20170100005000.jpg.chip.jpg").write_bytes(b"garbage")
    data = load_dataset("utkface", tmp_path, {"test_per_cell": 2})
    split_name = (
        "train" if "5_0_0_20170100005000.jpg.chip.jpg" in set(data.split("train").sample_ids) else "test"
    )
    split = data.split(split_name)
    row = list(split.sample_ids).index("5_0_0_20170100005000.jpg.chip.jpg")
    with pytest.raises(DataError, match="5_0_0_20170100005000"):
        split.inputs[np.array([row])]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="susanqq.github.io"):
        load_dataset("utkface", tmp_path / "empty")
