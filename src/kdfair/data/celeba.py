"""CelebA (SPEC §7): the official attribute and partition files and the aligned images.

Label: one attribute by name (default Smiling); protected attributes: others by name (default Young, Male),
each coded 0 = the attribute is absent (-1 in the file), 1 = present (+1). The training split is randomly
undersampled (seeded) so both label values are equally frequent; the groups stay unbalanced (paper Table 4).

``attributes_only`` loads labels and groups without images (inputs are then a zero-width placeholder), for
statistics; in that mode a missing partition file falls back to the official boundaries by image number
(000001-162770 train, 162771-182637 val, 182638-202599 test), and an attribute file with fewer rows than
its first line announces is accepted and the shortfall reported in ``info``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from pydantic import Field

from kdfair.data.base import Dataset, DataSplit
from kdfair.data.common import (
    StrictOptions,
    image_source,
    missing_data_error,
    require_root,
    splits_info,
)
from kdfair.errors import ConfigError, DataError, KdfairWarning

EXPECTED = ["list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba/"]
HINT = "get CelebA (Align&Cropped) from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
SPLITS = ("train", "val", "test")
OFFICIAL_BOUNDARIES = (162770, 182637)  # last image number of train and of val


class CelebaOptions(StrictOptions):
    label: str = "Smiling"  # the attribute to predict (paper: Smiling; also Eyeglasses, Attractive)
    protected: list[str] = Field(default_factory=lambda: ["Young", "Male"])
    image_size: int = Field(64, ge=1)  # aligned images (178 x 218) are centre-cropped, then resized
    in_memory: bool = False
    balance_train: bool = True  # undersample the majority label in train (the paper does)
    attributes_only: bool = False  # no images needed: labels and groups only
    attr_file: str = "list_attr_celeba.txt"
    partition_file: str = "list_eval_partition.txt"
    image_dir: str = "img_align_celeba"


def required_files(options: CelebaOptions) -> list[str]:
    """The files the loader opens for ``options``, relative to the root (a trailing ``/``: a folder)."""
    if options.attributes_only:
        return [options.attr_file]
    return [options.attr_file, options.partition_file, f"{options.image_dir}/"]


class AttributeTable:
    """The parsed attribute file: file names, the 40 attribute names and a (N, 40) int8 matrix of +-1."""

    def __init__(self, files: np.ndarray, names: list[str], values: np.ndarray, declared: int) -> None:
        self.files, self.names, self.values, self.declared = files, names, values, declared

    def column(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise ConfigError(
                f"celeba: unknown attribute '{name}'; valid attributes: {', '.join(self.names)}"
            )
        return (self.values[:, self.names.index(name)] > 0).astype(np.int64)


def read_attributes(path: Path) -> AttributeTable:
    """Parse ``list_attr_celeba.txt``: a count line, a header of attribute names, then one row per image
    (file name and one +1/-1 per attribute). A short or malformed row raises :class:`DataError`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"celeba: {path} does not start with a count line and a header of attribute names")
    declared, names = int(lines[0]), lines[1].split()
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise DataError(
                f"celeba: {path} line {number} has {len(fields) - 1} values, expected {len(names)} of +1/-1"
            )
        bad = next((i for i, v in enumerate(fields[1:]) if v not in ("1", "-1")), None)
        if bad is not None:
            raise DataError(
                f"celeba: {path} line {number} ({fields[0]}): attribute '{names[bad]}' has value "
                f"{fields[bad + 1]!r}, expected 1 or -1"
            )
        files.append(fields[0])
        rows.append([int(v) for v in fields[1:]])
    values = np.asarray(rows, dtype=np.int8).reshape(len(rows), len(names))
    return AttributeTable(np.asarray(files), names, values, declared)


def read_partition(path: Path, files: np.ndarray) -> np.ndarray:
    """Split code per file of ``files`` (0 train, 1 val, 2 test) from ``list_eval_partition.txt``."""
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] in ("0", "1", "2"):
            table[fields[0]] = int(fields[1])
        elif fields:
            raise DataError(f"celeba: malformed line in {path}: {line!r}")
    missing = [f for f in files if f not in table]
    if missing:
        raise DataError(f"celeba: {len(missing)} images have no split in {path} (first: {missing[0]})")
    return np.asarray([table[f] for f in files], dtype=np.int64)


def official_partition(files: np.ndarray) -> np.ndarray:
    """The official split by image number: <= 162770 train, <= 182637 val, else test."""
    numbers = np.asarray([int(Path(f).stem) for f in files])
    return np.searchsorted(np.asarray(OFFICIAL_BOUNDARIES), numbers, side="left").astype(np.int64)


def balance_labels(labels: np.ndarray, seed: int) -> np.ndarray:
    """Sorted indices of a random subset with equally many of each label (majority undersampled)."""
    rng = np.random.default_rng([seed, 20])
    per_label = [np.nonzero(labels == v)[0] for v in np.unique(labels)]
    keep = min(len(idx) for idx in per_label)
    chosen = [rng.choice(idx, size=keep, replace=False) for idx in per_label]
    return np.sort(np.concatenate(chosen))


class _NoImages:
    """Inputs placeholder for ``attributes_only``: indexing returns (B, 0, 0, 3) uint8."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return np.zeros((len(np.atleast_1d(index)), 0, 0, 3), dtype=np.uint8)


def _partition(base: Path, table: AttributeTable, options: CelebaOptions, info: dict) -> np.ndarray:
    path = base / options.partition_file
    if path.is_file():
        return read_partition(path, table.files)
    if not options.attributes_only:
        raise missing_data_error("celeba", [options.partition_file], base, HINT)
    info["partition"] = "official boundaries by image number (no partition file)"
    return official_partition(table.files)


def _check_rows(table: AttributeTable, path: Path, options: CelebaOptions, info: dict) -> None:
    info["rows_declared"], info["rows_read"] = table.declared, len(table.files)
    if len(table.files) == table.declared:
        return
    message = f"celeba: {path} announces {table.declared} rows but holds {len(table.files)}"
    if not options.attributes_only:
        raise DataError(message + " (truncated?)")
    warnings.warn(message + "; using the rows present", KdfairWarning, stacklevel=3)


def _inputs(base: Path, files: np.ndarray, options: CelebaOptions, split: str):
    if options.attributes_only:
        return _NoImages(len(files))
    paths = [base / options.image_dir / f for f in files]
    return image_source(paths, options.image_size, options.in_memory, desc=f"decoding {split}")


def _check_images(folder: Path, files: np.ndarray) -> None:
    """Every file of the attribute table is in ``folder`` (one listing, no ``stat`` per image)."""
    with os.scandir(folder) as entries:
        present = {e.name for e in entries if e.is_file()}
    absent = [f for f in files if f not in present]
    if absent:
        raise DataError(f"celeba: {len(absent)} images missing from {folder} (first: {absent[0]})")


def load_celeba(root: Path | None, options: CelebaOptions, *, seed: int) -> Dataset:
    """CelebA splits train / val / test with the chosen label and protected attributes."""
    expected = required_files(options)
    base = require_root("celeba", root, expected, HINT)
    missing = [name for name in expected if not (base / name).exists()]
    if missing:
        raise missing_data_error("celeba", missing, base, HINT)
    attr_path = base / options.attr_file
    table = read_attributes(attr_path)
    info: dict = {"label": options.label, "attributes_only": options.attributes_only}
    _check_rows(table, attr_path, options, info)
    labels = table.column(options.label)
    groups = {name: table.column(name) for name in options.protected}
    partition = _partition(base, table, options, info)
    if not options.attributes_only:
        _check_images(base / options.image_dir, table.files)
    splits = {}
    for code, split in enumerate(SPLITS):
        index = np.nonzero(partition == code)[0]
        if split == "train" and options.balance_train and len(index):
            info["train_before_balancing"] = int(len(index))
            index = index[balance_labels(labels[index], seed)]
        files = table.files[index]
        splits[split] = DataSplit(
            inputs=_inputs(base, files, options, split),
            labels=labels[index],
            sample_ids=files,
            attributes={name: codes[index] for name, codes in groups.items()},
        )
    class_names = [f"not {options.label}", options.label]
    levels = {name: [f"not {name}", name] for name in options.protected}
    info["splits"] = splits_info(splits, class_names, levels)
    return Dataset(
        name="celeba",
        modality="image",
        num_classes=2,
        class_names=class_names,
        splits=splits,
        attribute_levels=levels,
        image_size=None if options.attributes_only else options.image_size,
        info=info,
    )
