"""CelebA from tiny official-format files: labels, groups, partition, balancing, attributes-only, errors."""

from __future__ import annotations

import numpy as np
import pytest
from kdfair_data_formats import CELEBA_NAMES, random_images, write_celeba_attributes, write_image

from kdfair.data.celeba import balance_labels, official_partition
from kdfair.data.registry import load_dataset
from kdfair.errors import ConfigError, DataError, KdfairWarning

# (Smiling, Young, Male) per image; partition 0 train x8, 1 val x2, 2 test x2
ROWS = [(1, 1, 0), (1, 1, 1), (1, 0, 0), (1, 1, 0), (1, 1, 1), (-1, 1, 0), (-1, 0, 1), (1, 0, 1)]
ROWS += [(1, 1, 1), (-1, 0, 0), (-1, 1, 1), (1, 0, 0)]
PARTITION = [0] * 8 + [1] * 2 + [2] * 2


def _files():
    return [f"{i:06d}.jpg" for i in range(1, len(ROWS) + 1)]


def _write(root, images=True, partition=True):
    rows = [
        (f, {"Smiling": s, "Young": 2 * y - 1, "Male": 2 * m - 1})
        for f, (s, y, m) in zip(_files(), ROWS, strict=True)
    ]
    write_celeba_attributes(root / "list_attr_celeba.txt", rows)
    if partition:
        (root / "list_eval_partition.txt").write_text(
            "".join(f"{f} {p}\n" for f, p in zip(_files(), PARTITION, strict=True))
        )
    if images:
        for f, image in zip(_files(), random_images(len(ROWS), 12), strict=True):
            write_image(root / "img_align_celeba" / f, image)


def test_labels_groups_and_splits(tmp_path):
    _write(tmp_path)
    data = load_dataset("celeba", tmp_path, {"image_size": 12, "balance_train": False})
    train = data.split("train")
    assert train.labels.tolist() == [1, 1, 1, 1, 1, 0, 0, 1]
    assert train.attributes["Young"].tolist() == [1, 1, 0, 1, 1, 1, 0, 0]
    assert train.attributes["Male"].tolist() == [0, 1, 0, 0, 1, 0, 1, 1]
    assert data.split("val").sample_ids.tolist() == ["000009.jpg", "000010.jpg"]
    assert data.split("test").labels.tolist() == [0, 1]
    assert data.attribute_levels == {"Young": ["not Young", "Young"], "Male": ["not Male", "Male"]}
    assert train.inputs[np.array([0, 7])].shape == (2, 12, 12, 3)
    assert data.info["splits"]["val"]["groups"]["Male"]["levels"] == {"not Male": 1, "Male": 1}


def test_train_is_balanced_by_undersampling_seeded(tmp_path):
    _write(tmp_path)
    a = load_dataset("celeba", tmp_path, seed=1)
    train = a.split("train")
    assert np.bincount(train.labels).tolist() == [2, 2]
    assert set(train.sample_ids) >= {"000006.jpg", "000007.jpg"}  # the two non-smiling images all stay
    assert a.info["train_before_balancing"] == 8 and len(a.split("val")) == 2
    same = load_dataset("celeba", tmp_path, seed=1).split("train").sample_ids
    assert np.array_equal(same, train.sample_ids)
    picks = {tuple(balance_labels(np.array([1] * 6 + [0] * 2), s)) for s in range(20)}
    assert len(picks) > 1 and all(len(p) == 4 for p in picks)


def test_label_by_name_and_unknown_attribute(tmp_path):
    _write(tmp_path)
    data = load_dataset("celeba", tmp_path, {"label": "Male", "protected": ["Young"], "balance_train": False})
    assert data.split("train").labels.tolist() == [0, 1, 0, 0, 1, 0, 1, 1]
    assert data.class_names == ["not Male", "Male"] and list(data.split("train").attributes) == ["Young"]
    with pytest.raises(ConfigError, match="Smilling"):
        load_dataset("celeba", tmp_path, {"label": "Smilling"})


def test_attributes_only_without_images_or_partition(tmp_path):
    _write(tmp_path, images=False, partition=False)
    with pytest.raises(DataError, match="list_eval_partition.txt"):
        load_dataset("celeba", tmp_path)
    data = load_dataset("celeba", tmp_path, {"attributes_only": True, "balance_train": False})
    assert len(data.split("train")) == 12  # every image number is below 162771
    assert data.split("train").inputs[np.array([0])].shape == (1, 0, 0, 3)
    assert "official boundaries" in data.info["partition"]


def test_official_partition_boundaries():
    files = np.array(["000001.jpg", "162770.jpg", "162771.jpg", "182637.jpg", "182638.jpg", "202599.jpg"])
    assert official_partition(files).tolist() == [0, 0, 1, 1, 2, 2]


def test_truncated_attribute_file(tmp_path):
    _write(tmp_path)
    path = tmp_path / "list_attr_celeba.txt"
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # cut inside the last row
    with pytest.raises(DataError, match="line 14"):
        load_dataset("celeba", tmp_path)


def test_an_attribute_value_other_than_plus_or_minus_one_is_named(tmp_path):
    _write(tmp_path)
    path = tmp_path / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    fields = lines[12].split()  # line 13: the 11th image, 000011.jpg
    fields[1 + CELEBA_NAMES.index("Smiling")] = "2"
    lines[12] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        load_dataset("celeba", tmp_path)
    assert str(info.value) == (
        f"celeba: {path} line 13 (000011.jpg): attribute 'Smiling' has value '2', expected 1 or -1"
    )


def test_fewer_rows_than_announced(tmp_path):
    _write(tmp_path)
    path = tmp_path / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["202599"] + lines[1:]) + "\n")
    with pytest.raises(DataError, match="announces 202599 rows but holds 12"):
        load_dataset("celeba", tmp_path)
    with pytest.warns(KdfairWarning, match="holds 12"):
        data = load_dataset("celeba", tmp_path, {"attributes_only": True})
    assert data.info["rows_read"] == 12 and data.info["rows_declared"] == 202599


def test_missing_image_and_missing_folder(tmp_path):
    _write(tmp_path)
    (tmp_path / "img_align_celeba" / "000003.jpg").unlink()
    with pytest.raises(DataError, match="000003.jpg"):
        load_dataset("celeba", tmp_path)
    with pytest.raises(DataError, match="mmlab.ie.cuhk.edu.hk"):
        load_dataset("celeba", tmp_path / "empty")
