"""CIFAR-10, CIFAR-100 (torchvision's python pickle batches) and SVHN (the cropped-digit ``.mat`` files),
read from a local folder; nothing is downloaded (SPEC §7)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.io

from kdfair.data.base import Dataset, DataSplit
from kdfair.data.common import StrictOptions, missing_data_error, require_root, splits_info
from kdfair.errors import DataError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
CIFAR10_HINT = "get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it"
CIFAR100_DIR = "cifar-100-python"
CIFAR100_FILES = ["train", "test", "meta"]
CIFAR100_HINT = "get cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it"
SVHN_FILES = ["train_32x32.mat", "test_32x32.mat"]
SVHN_HINT = "get train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/"


class CifarOptions(StrictOptions):
    pass


class Cifar100Options(StrictOptions):
    label: Literal["fine", "coarse"] = "fine"  # 100 fine classes (the paper) or the 20 superclasses


class SvhnOptions(StrictOptions):
    extra: bool = False  # also train on extra_32x32.mat (531,131 images); the paper does not


def _find_dir(dataset: str, root: Path | None, folder: str, files: list[str], hint: str) -> Path:
    """``root/folder`` or ``root`` itself, whichever holds the first expected file; the error for absent
    files names exactly those missing and the folder searched."""
    base = require_root(dataset, root, [f"{folder}/{f}" for f in files], hint)
    found = base / folder if (base / folder / files[0]).is_file() else base
    missing = [f"{folder}/{name}" for name in files if not (found / name).is_file()]
    if missing:
        raise missing_data_error(dataset, missing, base, hint)
    return found


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = pickle.load(handle, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"cannot read CIFAR pickle {path}: {exc}") from exc
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def _batch_images(batch: dict[str, Any], path: Path) -> np.ndarray:
    data = np.asarray(batch["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR batch {path}: 'data' has shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def _names(values: list[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _split(images: np.ndarray, labels: np.ndarray, prefix: str) -> DataSplit:
    ids = np.asarray([f"{prefix}/{i:06d}" for i in range(len(labels))])
    return DataSplit(inputs=images, labels=np.asarray(labels, dtype=np.int64), sample_ids=ids)


def _image_dataset(name: str, class_names: list[str], splits: dict[str, DataSplit], **info: Any) -> Dataset:
    return Dataset(
        name=name,
        modality="image",
        num_classes=len(class_names),
        class_names=class_names,
        splits=splits,
        image_size=32,
        info={**info, "splits": splits_info(splits, class_names, {})},
    )


def read_cifar10(
    root: Path | None, dataset: str = "cifar10"
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """The CIFAR-10 pickles as ``{split: (images uint8 (N,32,32,3), labels int64)}`` and the class names;
    ``dataset`` is the name missing-file errors give (cifar10s reads CIFAR-10 too)."""
    folder = _find_dir(dataset, root, CIFAR10_DIR, CIFAR10_FILES, CIFAR10_HINT)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, files in (("train", CIFAR10_FILES[:5]), ("test", ["test_batch"])):
        batches = [(_unpickle(folder / f), folder / f) for f in files]
        images = np.concatenate([_batch_images(b, p) for b, p in batches])
        labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b, _ in batches])
        arrays[split] = (images, labels)
    return arrays, _names(_unpickle(folder / "batches.meta")["label_names"])


def load_cifar10(root: Path | None, options: CifarOptions, *, seed: int) -> Dataset:
    """CIFAR-10: 50,000 train and 10,000 test images, 10 classes, in memory."""
    arrays, class_names = read_cifar10(root)
    splits = {split: _split(images, labels, split) for split, (images, labels) in arrays.items()}
    return _image_dataset("cifar10", class_names, splits)


def load_cifar100(root: Path | None, options: Cifar100Options, *, seed: int) -> Dataset:
    """CIFAR-100: 50,000 train and 10,000 test images; 100 fine classes (or 20 coarse), in memory."""
    folder = _find_dir("cifar100", root, CIFAR100_DIR, CIFAR100_FILES, CIFAR100_HINT)
    key = f"{options.label}_labels"
    splits = {}
    for split in ("train", "test"):
        batch = _unpickle(folder / split)
        splits[split] = _split(_batch_images(batch, folder / split), np.asarray(batch[key]), split)
    class_names = _names(_unpickle(folder / "meta")[f"{options.label}_label_names"])
    return _image_dataset("cifar100", class_names, splits, label=options.label)


def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(f"cannot read SVHN file {path}: {exc}") from exc
    if "X" not in mat or "y" not in mat:
        raise DataError(f"SVHN file {path} lacks the 'X' and 'y' arrays")
    images = np.ascontiguousarray(np.asarray(mat["X"], dtype=np.uint8).transpose(3, 0, 1, 2))
    labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    labels[labels == 10] = 0  # the files store digit 0 as label 10
    return images, labels


def svhn_files(options: SvhnOptions) -> list[str]:
    """The files the SVHN loader opens for ``options``, relative to the root."""
    return SVHN_FILES + (["extra_32x32.mat"] if options.extra else [])


def load_svhn(root: Path | None, options: SvhnOptions, *, seed: int) -> Dataset:
    """SVHN cropped digits: 73,257 train and 26,032 test images; label 10 in the files is digit 0."""
    files = svhn_files(options)
    base = require_root("svhn", root, files, SVHN_HINT)
    missing = [name for name in files if not (base / name).is_file()]
    if missing:
        raise missing_data_error("svhn", missing, base, SVHN_HINT)
    train_images, train_labels = _read_svhn_mat(base / "train_32x32.mat")
    prefix = np.asarray([f"train/{i:06d}" for i in range(len(train_labels))])
    if options.extra:
        extra_images, extra_labels = _read_svhn_mat(base / "extra_32x32.mat")
        train_images = np.concatenate([train_images, extra_images])
        train_labels = np.concatenate([train_labels, extra_labels])
        prefix = np.concatenate([prefix, [f"extra/{i:06d}" for i in range(len(extra_labels))]])
    splits = {
        "train": DataSplit(inputs=train_images, labels=train_labels, sample_ids=prefix),
        "test": _split(*_read_svhn_mat(base / "test_32x32.mat"), "test"),
    }
    return _image_dataset("svhn", [str(d) for d in range(10)], splits)
