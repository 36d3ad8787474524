"""Image-folder data sets: generic layout, CIFAR-10 JPEG (cached), Tiny ImageNet, ImageNet; bad images."""

from __future__ import annotations

import numpy as np
import pytest
from kdfair_data_formats import random_images, write_image

from kdfair.data.common import LazyImageFiles, read_image
from kdfair.data.registry import load_dataset
from kdfair.errors import DataError


def _tree(root, classes=("cat", "dog"), per_class=2, size=8, ext="png", splits=("train", "test")):
    written = {}
    for s, split in enumerate(splits):
        for c, name in enumerate(classes):
            for i, image in enumerate(random_images(per_class, size, seed=100 * s + c)):
                path = root / split / name / f"{i:04d}.{ext}"
                write_image(path, image)
                written[path.relative_to(root).as_posix()] = image
    return written


def test_image_folder_lazy_and_in_memory_agree_pixel_exact(tmp_path):
    written = _tree(tmp_path)
    lazy = load_dataset("image_folder", tmp_path, {"image_size": 8})
    eager = load_dataset("image_folder", tmp_path, {"image_size": 8, "in_memory": True})
    split = lazy.split("train")
    assert isinstance(split.inputs, LazyImageFiles) and lazy.class_names == ["cat", "dog"]
    batch = split.inputs[np.arange(len(split))]
    assert np.array_equal(batch, eager.split("train").inputs)
    for row, sample_id in enumerate(split.sample_ids):
        assert np.array_equal(batch[row], written[sample_id])
    assert split.labels.tolist() == [0, 0, 1, 1]
    sub = split.subset(np.array([3]))
    assert np.array_equal(sub.inputs[np.array([0])][0], written["train/dog/0001.png"])


def test_image_folder_resizes_to_image_size(tmp_path):
    _tree(tmp_path, size=20)
    data = load_dataset("image_folder", tmp_path, {"image_size": 10})
    assert data.split("test").inputs[np.array([0, 1])].shape == (2, 10, 10, 3)


def test_image_folder_test_class_unknown_to_train(tmp_path):
    _tree(tmp_path)
    write_image(tmp_path / "test" / "bird" / "0000.png", random_images(1, 8)[0])
    with pytest.raises(DataError, match="bird"):
        load_dataset("image_folder", tmp_path)


def test_corrupt_image_names_the_file(tmp_path):
    _tree(tmp_path)
    bad = tmp_path / "train" / "cat" / "0001.png"
    bad.write_bytes(b"\x89PNG broken")
    data = load_dataset("image_folder", tmp_path, {"image_size": 8})
    with pytest.raises(DataError, match="0001.png"):
        data.split("train").inputs[np.array([1])]
    with pytest.raises(DataError, match="cannot decode"):
        read_image(bad, 8)


def test_missing_split_folder(tmp_path):
    _tree(tmp_path, splits=("train",))
    with pytest.raises(DataError, match="test/<class>/"):
        load_dataset("image_folder", tmp_path)


def test_cifar10_jpeg_layout_decoded_and_cached(tmp_path, private_cache):
    classes = ("airplane", "automobile")
    _tree(tmp_path / "cifar10_yoongikim_jpg", classes=classes, size=32, ext="jpg")
    first = load_dataset("cifar10_jpeg", tmp_path)
    assert first.info["from_cache"] is False and first.class_names == list(classes)
    assert first.split("train").sample_ids[0] == "train/airplane/0000.jpg"
    reference = read_image(tmp_path / "cifar10_yoongikim_jpg" / "train" / "airplane" / "0000.jpg", 32)
    assert np.array_equal(first.split("train").inputs[0], reference)
    second = load_dataset("cifar10_jpeg", tmp_path)
    assert second.info["from_cache"] is True
    assert np.array_equal(second.split("test").inputs, first.split("test").inputs)
    assert len(list((private_cache / "cifar10_jpeg").glob("*.npz"))) == 1


def _tiny_tree(root):
    wnids = ["n01443537", "n01629819"]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text(
        "n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n"
    )
    for k, wnid in enumerate(wnids):
        for i, image in enumerate(random_images(2, 64, seed=k)):
            write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", image)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for i, image in enumerate(random_images(3, 64, seed=9)):
        write_image(root / "val" / "images" / f"val_{i}.JPEG", image)
        lines.append(f"val_{i}.JPEG\t{wnids[i % 2]}\t0\t0\t10\t10")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def test_tiny_imagenet_tree(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    _tiny_tree(root)
    data = load_dataset("tiny_imagenet", tmp_path)
    assert data.class_names == ["goldfish", "European fire salamander"]
    assert data.split("train").labels.tolist() == [0, 0, 1, 1]
    assert data.split("test").labels.tolist() == [0, 1, 0]
    assert data.split("test").sample_ids[2] == "val/images/val_2.JPEG"
    assert data.split("test").inputs[np.array([0, 2])].shape == (2, 64, 64, 3)
    (root / "wnids.txt").unlink()
    with pytest.raises(DataError, match="wnids.txt"):
        load_dataset("tiny_imagenet", tmp_path)


def test_imagenet_folders(tmp_path):
    for split in ("train", "val"):
        for k, wnid in enumerate(["n02", "n01"]):
            write_image(tmp_path / split / wnid / f"{wnid}_{split}.JPEG", random_images(1, 40, seed=k)[0])
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01 tench, Tinca tinca\nn02 goldfish\n")
    data = load_dataset("imagenet", tmp_path, {"image_size": 16})
    assert data.class_names == ["tench", "goldfish"]
    assert data.split("test").sample_ids.tolist() == ["val/n01/n01_val.JPEG", "val/n02/n02_val.JPEG"]
    assert data.split("train").inputs[np.array([1])].shape == (1, 16, 16, 3)
    with pytest.raises(DataError, match="image-net.org"):
        load_dataset("imagenet", tmp_path / "nowhere")


def _imagenet_train(root, wnids=("n02", "n01")):
    for k, wnid in enumerate(wnids):
        for i, image in enumerate(random_images(2, 24, seed=k)):
            write_image(root / "train" / wnid / f"{wnid}_{i}.JPEG", image)


VAL_SOLUTION = [  # Kaggle CLS-LOC: ImageId,PredictionString (wnid and box, repeated per object)
    ("ILSVRC2012_val_00000003", "n02 10 12 200 180"),
    ("ILSVRC2012_val_00000001", "n01 0 0 50 60 n01 70 80 120 140"),
    ("ILSVRC2012_val_00000002", "n02 5 5 90 90"),
]


def _flat_val(root, rows=VAL_SOLUTION, csv_dir=None):
    for k, (image_id, _) in enumerate(rows):
        write_image(root / "val" / f"{image_id}.JPEG", random_images(1, 24, seed=20 + k)[0])
    lines = ["ImageId,PredictionString"] + [f"{image_id},{boxes}" for image_id, boxes in rows]
    ((csv_dir or root) / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")


def test_imagenet_flat_val_with_loc_val_solution(tmp_path):
    _imagenet_train(tmp_path)
    _flat_val(tmp_path)
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01 tench, Tinca tinca\nn02 goldfish\n")
    data = load_dataset("imagenet", tmp_path, {"image_size": 16})
    test = data.split("test")
    assert test.sample_ids.tolist() == [f"val/ILSVRC2012_val_0000000{i}.JPEG" for i in (1, 2, 3)]
    assert test.labels.tolist() == [0, 1, 1]  # n01 tench, n02 goldfish, n02 (wnids sorted)
    assert data.class_names == ["tench", "goldfish"] and data.info["val_layout"].startswith("flat val/")
    assert data.split("train").labels.tolist() == [0, 0, 1, 1]
    decoded = test.inputs[np.array([0])][0]
    assert np.array_equal(decoded, read_image(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", 16))
    # the same images sorted into val/<wnid>/ folders give the same labels
    sorted_root = tmp_path / "sorted"
    _imagenet_train(sorted_root)
    for sample_id, label in zip(test.sample_ids, test.labels, strict=True):
        name = sample_id.split("/")[1]
        (sorted_root / "val" / ["n01", "n02"][label]).mkdir(parents=True, exist_ok=True)
        (tmp_path / sample_id).rename(sorted_root / "val" / ["n01", "n02"][label] / name)
    again = load_dataset("imagenet", sorted_root, {"image_size": 16}).split("test")
    assert (
        again.labels.tolist() == [0, 1, 1] and again.sample_ids[0] == "val/n01/ILSVRC2012_val_00000001.JPEG"
    )


def test_imagenet_kaggle_root_finds_the_csv_beside_ilsvrc(tmp_path):
    root = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    _imagenet_train(root)
    _flat_val(root, csv_dir=tmp_path)
    data = load_dataset("imagenet", root, {"image_size": 8})
    assert data.split("test").labels.tolist() == [0, 1, 1]


def test_imagenet_layout_errors_are_precise(tmp_path):
    with pytest.raises(DataError, match=r"missing train/<wnid>/\*\.JPEG \(searched"):
        load_dataset("imagenet", tmp_path)
    _imagenet_train(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset("imagenet", tmp_path)
    expected = "val/<wnid>/*.JPEG or val/*.JPEG with LOC_val_solution.csv"
    assert str(err.value).startswith(f"data set 'imagenet': missing {expected} (searched {tmp_path})")
    _flat_val(tmp_path)
    (tmp_path / "LOC_val_solution.csv").unlink()
    with pytest.raises(DataError, match=r"missing LOC_val_solution.csv \(labels of the 3 images in val/\)"):
        load_dataset("imagenet", tmp_path)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (VAL_SOLUTION + [("ILSVRC2012_val_00000009", "n09 1 1 2 2")], "line 5: wnid 'n09' is not a class"),
        (
            VAL_SOLUTION[:2],
            r"1 images in .* have no row in .*LOC_val_solution.csv \(first: ILSVRC2012_val_00000002",
        ),
        (VAL_SOLUTION + [("ILSVRC2012_val_00000004", "n01 1 1 2 2")], r"1 images of .* are missing from"),
    ],
)
def test_imagenet_val_solution_mismatches(tmp_path, rows, match):
    _imagenet_train(tmp_path)
    _flat_val(tmp_path)  # three images
    lines = ["ImageId,PredictionString"] + [f"{image_id},{boxes}" for image_id, boxes in rows]
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=match):
        load_dataset("imagenet", tmp_path)


def test_imagenet_val_solution_needs_its_header(tmp_path):
    _imagenet_train(tmp_path)
    _flat_val(tmp_path)
    path = tmp_path / "LOC_val_solution.csv"
    path.write_text(path.read_text().split("\n", 1)[1])
    with pytest.raises(DataError, match="does not start with the header ImageId,PredictionString"):
        load_dataset("imagenet", tmp_path)


def test_tiny_imagenet_val_images_checked_at_load_time(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    _tiny_tree(root)
    (root / "val" / "images" / "val_1.JPEG").unlink()
    (root / "val" / "images" / "val_2.JPEG").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("tiny_imagenet", tmp_path)  # at load, not at the first lazy read
    assert str(err.value) == (
        f"tiny_imagenet: 2 of the 3 images listed in {root / 'val' / 'val_annotations.txt'} are missing "
        f"from {root / 'val' / 'images'} (first: val_1.JPEG)"
    )
    for path in (root / "val" / "images").iterdir():
        path.unlink()
    (root / "val" / "images").rmdir()
    with pytest.raises(DataError, match=r"data set 'tiny_imagenet': missing val/images/ \(searched"):
        load_dataset("tiny_imagenet", tmp_path)
