"""CIFAR-10S (Wang et al. 2020), built from any CIFAR-10 source (SPEC §7).

Training set: in automobile, cat, dog, horse and truck a fraction ``p`` of each class stays in colour and the
rest turns grey; in airplane, bird, deer, frog and ship a fraction ``p`` turns grey. Which images change is
drawn per class with the seed; the number is ``round(p * n_class)``. Test set: every test image twice, in
colour (id suffix ``/colour``) and in grey (``/grey``). Protected attribute ``grey``: 0 colour, 1 grey.

Counterfactual twins (SPEC §6, ``Dataset.counterfactual``): the test split already holds every image in both
forms, so the twin of ``test/000123/colour`` is ``test/000123/grey`` and the other way round, paired
explicitly (:func:`grey_twins`); attribute changed: ``grey``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from kdfair.data.base import Dataset, DataSplit
from kdfair.data.cifar import CIFAR10_DIR, CIFAR10_FILES, read_cifar10
from kdfair.data.common import StrictOptions, splits_info, to_grey
from kdfair.data.folders import Cifar10JpegOptions, cifar10_jpeg_files, load_cifar10_jpeg
from kdfair.data.twins import CounterfactualTwins, IndexView
from kdfair.errors import DataError

MOSTLY_COLOUR = ("automobile", "cat", "dog", "horse", "truck")
MOSTLY_GREY = ("airplane", "bird", "deer", "frog", "ship")
GREY_LEVELS = ["colour", "grey"]


class Cifar10sOptions(StrictOptions):
    p: float = Field(0.95, ge=0.0, le=1.0)  # skew: share of a class in its majority colour mode
    source: Literal["cifar10", "cifar10_jpeg"] = "cifar10"  # pickle batches or the JPEG folder copy
    cache_dir: str | None = None  # for source cifar10_jpeg: where its decoded .npz cache goes


def required_files(options: Cifar10sOptions) -> list[str]:
    """The files of the CIFAR-10 source the loader reads for ``options``, relative to the root."""
    if options.source == "cifar10":
        return [f"{CIFAR10_DIR}/{f}" for f in CIFAR10_FILES]
    return cifar10_jpeg_files(Cifar10JpegOptions(cache_dir=options.cache_dir))


def grey_assignment(labels: np.ndarray, class_names: list[str], p: float, seed: int) -> np.ndarray:
    """1 for training images to turn grey, 0 for those to keep in colour, per the CIFAR-10S rule."""
    rng = np.random.default_rng([seed, 10])
    grey = np.zeros(len(labels), dtype=np.int64)
    for label, name in enumerate(class_names):
        members = np.nonzero(labels == label)[0]
        members = members[rng.permutation(len(members))]
        n_major = int(round(p * len(members)))
        if name in MOSTLY_GREY:
            grey[members[:n_major]] = 1
        else:
            grey[members[n_major:]] = 1
    return grey


def grey_twins(test: DataSplit) -> CounterfactualTwins:
    """The grey/colour twin of every test image: the test split holds the N colour images first and their
    N grey copies after, so twin ``j`` is test row ``(j + N) mod 2N`` and its source is test row ``j``."""
    n = len(test) // 2
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)]).astype(np.int64)
    split = DataSplit(
        inputs=IndexView(test.inputs, partner),
        labels=test.labels[partner],
        sample_ids=test.sample_ids[partner],
        attributes={name: codes[partner] for name, codes in test.attributes.items()},
    )
    return CounterfactualTwins(split=split, source_ids=test.sample_ids, attribute=np.full(2 * n, "grey"))


def _cifar10_arrays(root: Path | None, options: Cifar10sOptions) -> tuple[dict, list[str]]:
    if options.source == "cifar10":
        return read_cifar10(root, dataset="cifar10s")
    jpeg_options = Cifar10JpegOptions(cache_dir=options.cache_dir)
    jpeg = load_cifar10_jpeg(root, jpeg_options, seed=0, dataset="cifar10s")
    arrays = {s: (np.asarray(jpeg.splits[s].inputs), jpeg.splits[s].labels) for s in ("train", "test")}
    return arrays, jpeg.class_names


def load_cifar10s(root: Path | None, options: Cifar10sOptions, *, seed: int) -> Dataset:
    """CIFAR-10S: 50,000 skewed training images and 20,000 test images (10,000 colour + 10,000 grey)."""
    arrays, class_names = _cifar10_arrays(root, options)
    unknown = set(MOSTLY_COLOUR + MOSTLY_GREY) - set(class_names)
    if unknown:
        raise DataError(f"cifar10s: the CIFAR-10 class names lack {sorted(unknown)}")
    train_images, train_labels = arrays["train"]
    grey = grey_assignment(train_labels, class_names, options.p, seed)
    train_images = np.where(grey[:, None, None, None] == 1, to_grey(train_images), train_images)
    test_images, test_labels = arrays["test"]
    n_test = len(test_labels)
    test_ids = [f"test/{i:06d}" for i in range(n_test)]
    splits = {
        "train": DataSplit(
            inputs=train_images,
            labels=train_labels,
            sample_ids=np.asarray([f"train/{i:06d}" for i in range(len(train_labels))]),
            attributes={"grey": grey},
        ),
        "test": DataSplit(
            inputs=np.concatenate([test_images, to_grey(test_images)]),
            labels=np.concatenate([test_labels, test_labels]),
            sample_ids=np.asarray([f"{s}/colour" for s in test_ids] + [f"{s}/grey" for s in test_ids]),
            attributes={"grey": np.repeat(np.asarray([0, 1], dtype=np.int64), n_test)},
        ),
    }
    levels = {"grey": GREY_LEVELS}
    return Dataset(
        name="cifar10s",
        modality="image",
        num_classes=len(class_names),
        class_names=class_names,
        splits=splits,
        attribute_levels=levels,
        image_size=32,
        counterfactual=grey_twins(splits["test"]),
        info={
            "p": options.p,
            "source": options.source,
            "seed": seed,
            "splits": splits_info(splits, class_names, levels),
        },
    )
