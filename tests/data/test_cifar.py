"""CIFAR-10, CIFAR-100, SVHN and CIFAR-10S from tiny fixtures in the official formats."""

from __future__ import annotations

import numpy as np
import pytest
from kdfair_data_formats import CIFAR10_CLASSES, write_cifar10, write_cifar100, write_svhn

from kdfair.data.cifar10s import MOSTLY_GREY, grey_assignment
from kdfair.data.common import to_grey
from kdfair.data.registry import load_dataset
from kdfair.errors import DataError


def test_cifar10_reads_pickles_pixel_exact(tmp_path):
    train, train_labels, test, test_labels = write_cifar10(tmp_path)
    data = load_dataset("cifar10", tmp_path)
    assert data.class_names == CIFAR10_CLASSES and data.num_classes == 10
    assert np.array_equal(data.split("train").inputs, train)
    assert np.array_equal(data.split("train").labels, train_labels)
    assert np.array_equal(data.split("test").inputs, test)
    assert data.split("test").labels.dtype == np.int64
    assert list(data.split("train").sample_ids[:2]) == ["train/000000", "train/000001"]


def test_cifar10_root_may_be_the_batches_folder(tmp_path):
    write_cifar10(tmp_path)
    data = load_dataset("cifar10", tmp_path / "cifar-10-batches-py")
    assert len(data.split("train")) == 20


def test_cifar10_missing_batch_names_file_folder_and_url(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    message = str(err.value)
    assert "'cifar10'" in message and "data_batch_3" in message and str(tmp_path) in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message and "\n" not in message


def test_cifar10_without_root_says_so():
    with pytest.raises(DataError, match="no --root given"):
        load_dataset("cifar10")


def test_corrupt_pickle_is_a_data_error(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_dataset("cifar10", tmp_path)


def test_cifar100_fine_and_coarse(tmp_path):
    arrays = write_cifar100(tmp_path)
    fine = load_dataset("cifar100", tmp_path)
    coarse = load_dataset("cifar100", tmp_path, {"label": "coarse"})
    images, fine_labels, coarse_labels = arrays["test"]
    assert np.array_equal(fine.split("test").inputs, images)
    assert np.array_equal(fine.split("test").labels, fine_labels)
    assert np.array_equal(coarse.split("test").labels, coarse_labels)
    assert fine.num_classes == 100 and coarse.num_classes == 20 and coarse.class_names[3] == "coarse3"


def test_svhn_mat_label_ten_is_zero(tmp_path):
    images = write_svhn(tmp_path, {"train": [10, 1, 5, 10], "test": [3, 10]})
    data = load_dataset("svhn", tmp_path)
    assert data.split("train").labels.tolist() == [0, 1, 5, 0]
    assert data.split("test").labels.tolist() == [3, 0]
    assert np.array_equal(data.split("train").inputs, images["train"])
    with pytest.raises(DataError, match="extra_32x32.mat"):
        load_dataset("svhn", tmp_path, {"extra": True})


@pytest.mark.parametrize(("p", "per_class"), [(0.95, 40), (0.75, 20)])
def test_cifar10s_group_fractions_per_class(tmp_path, p, per_class):
    train, train_labels, test, _ = write_cifar10(tmp_path, per_class_train=per_class, per_class_test=2)
    data = load_dataset("cifar10s", tmp_path, {"p": p}, seed=5)
    split = data.split("train")
    grey = split.attributes["grey"]
    n_major = round(p * per_class)
    for label, name in enumerate(CIFAR10_CLASSES):
        n_grey = int(grey[split.labels == label].sum())
        assert n_grey == (n_major if name in MOSTLY_GREY else per_class - n_major), name
    # grey images are the luma copies; colour images are untouched
    assert np.array_equal(split.inputs[grey == 1], to_grey(train[grey == 1]))
    assert np.array_equal(split.inputs[grey == 0], train[grey == 0])
    assert data.attribute_levels["grey"] == ["colour", "grey"]


def test_cifar10s_test_has_every_image_in_colour_and_grey(tmp_path):
    _, _, test, test_labels = write_cifar10(tmp_path, per_class_test=2)
    split = load_dataset("cifar10s", tmp_path).split("test")
    n = len(test_labels)
    assert len(split) == 2 * n
    assert np.array_equal(split.inputs[:n], test) and np.array_equal(split.inputs[n:], to_grey(test))
    assert split.attributes["grey"].tolist() == [0] * n + [1] * n
    assert split.sample_ids[0] == "test/000000/colour" and split.sample_ids[n] == "test/000000/grey"
    assert np.array_equal(split.labels[n:], test_labels)


def test_grey_assignment_is_seeded():
    labels = np.repeat(np.arange(10), 20)
    a = grey_assignment(labels, CIFAR10_CLASSES, 0.9, seed=1)
    assert np.array_equal(a, grey_assignment(labels, CIFAR10_CLASSES, 0.9, seed=1))
    assert not np.array_equal(a, grey_assignment(labels, CIFAR10_CLASSES, 0.9, seed=2))


def test_to_grey_is_pil_luma():
    from PIL import Image

    image = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(image[0]).convert("L"))
    assert np.abs(to_grey(image)[0, ..., 0].astype(int) - pil.astype(int)).max() <= 1
