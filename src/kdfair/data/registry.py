"""Data sets by name (the config's ``dataset:`` value).

Each entry maps a name to a :class:`DatasetSpec`: a description, a strict options model (defaults per
SPEC §7), ``load(root, options, *, seed) -> Dataset``, the files it expects under ``root`` and where to get
them, and the loader module's ``required_files(options)``: the files it opens for given options (the
sweep's pre-flight check asks it through :meth:`DatasetSpec.files_for`; None: ``expected_files``).
``seed`` is the data set's construction seed (Trifeature's images, CIFAR-10S's grey choice, CelebA's
undersampling, UTKFace's test draw); keep it fixed across training seeds so every run sees the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kdfair.data import celeba, cifar, cifar10s, folders, hatexplain, trifeature, utkface
from kdfair.data.base import Dataset
from kdfair.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    description: str
    options: type[BaseModel]
    load: Callable[..., Dataset]
    expected_files: list[str]  # for people: may hold patterns (train/<class>/*.jpg) and prose
    download_hint: str
    # the files the loader opens for parsed options, relative to root or absolute; None: expected_files
    required_files: Callable[[Any], list[str]] | None = None

    def files_for(self, options: BaseModel) -> list[str]:
        """The files the loader opens for ``options`` (parsed), relative to the root or absolute."""
        return self.required_files(options) if self.required_files is not None else self.expected_files


DATASETS: dict[str, DatasetSpec] = {
    "trifeature": DatasetSpec(
        "Trifeature (Hermann & Lampinen 2020): 10 shapes x 10 textures x 10 colours, generated; label shape, "
        "protected colour and texture",
        trifeature.TrifeatureOptions, trifeature.load_trifeature, [], "generated locally, no files needed",
    ),
    "cifar10": DatasetSpec(
        "CIFAR-10, torchvision's python pickle batches", cifar.CifarOptions, cifar.load_cifar10,
        [f"{cifar.CIFAR10_DIR}/{f}" for f in cifar.CIFAR10_FILES], cifar.CIFAR10_HINT,
    ),
    "cifar100": DatasetSpec(
        "CIFAR-100, torchvision's python pickle files (fine or coarse labels)", cifar.Cifar100Options,
        cifar.load_cifar100, [f"{cifar.CIFAR100_DIR}/{f}" for f in cifar.CIFAR100_FILES], cifar.CIFAR100_HINT,
    ),
    "svhn": DatasetSpec(
        "SVHN cropped digits (.mat files; label 10 -> 0)", cifar.SvhnOptions, cifar.load_svhn,
        cifar.SVHN_FILES, cifar.SVHN_HINT, cifar.svhn_files,
    ),
    "cifar10s": DatasetSpec(
        "CIFAR-10S (Wang et al. 2020): colour/grey skewed CIFAR-10; protected attribute grey",
        cifar10s.Cifar10sOptions, cifar10s.load_cifar10s,
        ["cifar-10-batches-py/ (source cifar10) or train/ and test/ JPEG folders (source cifar10_jpeg)"],
        cifar.CIFAR10_HINT, cifar10s.required_files,
    ),
    "image_folder": DatasetSpec(
        "any root/{train,test[,val]}/<class>/*.jpg|png tree", folders.ImageFolderOptions,
        folders.load_image_folder, ["train/<class>/*.jpg|png", "test/<class>/*.jpg|png"],
        "point --root at the folder holding train/ and test/", folders.image_folder_files,
    ),
    "cifar10_jpeg": DatasetSpec(
        "CIFAR-10 as JPEG folders (cifar10_yoongikim_jpg), decoded once, cached",
        folders.Cifar10JpegOptions,
        folders.load_cifar10_jpeg, folders.CIFAR10_JPEG_FILES,
        folders.CIFAR10_JPEG_HINT, folders.cifar10_jpeg_files,
    ),
    "tiny_imagenet": DatasetSpec(
        "Tiny ImageNet (200 classes, 64 px); official val is the test split; lazy",
        folders.TinyImagenetOptions, folders.load_tiny_imagenet,
        [f"{folders.TINY_DIR}/{f}" for f in folders.TINY_FILES], folders.TINY_HINT,
        folders.tiny_imagenet_files,
    ),
    "imagenet": DatasetSpec(
        "ImageNet-1k (ILSVRC2012) folder layout; official val is the test split; lazy",
        folders.ImagenetOptions,
        folders.load_imagenet, folders.IMAGENET_FILES, folders.IMAGENET_HINT, folders.imagenet_files,
    ),
    "celeba": DatasetSpec(
        "CelebA aligned faces; label an attribute (Smiling), protected Young and Male; train label-balanced",
        celeba.CelebaOptions, celeba.load_celeba, celeba.EXPECTED, celeba.HINT, celeba.required_files,
    ),
    "hatexplain": DatasetSpec(
        "HateXplain posts; label toxic vs normal (annotator majority), protected target categories",
        hatexplain.HatexplainOptions, hatexplain.load_hatexplain, ["dataset.json", "post_id_divisions.json"],
        hatexplain.HINT, hatexplain.required_files,
    ),
    "utkface": DatasetSpec(
        "UTKFace faces; label age bucket (<20, 20-39, >=40), protected race (4 groups) and gender",
        utkface.UtkfaceOptions, utkface.load_utkface, utkface.EXPECTED, utkface.HINT,
    ),
}  # fmt: skip


def dataset_spec(name: str) -> DatasetSpec:
    """The registered data set ``name``; an unknown name raises :class:`ConfigError` listing valid ones."""
    if name not in DATASETS:
        raise ConfigError(f"unknown data set '{name}'; valid data sets: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def parse_dataset_options(name: str, raw: dict[str, Any] | None) -> BaseModel:
    """Validate ``raw`` options for data set ``name`` strictly (an unknown key or a bad value is an error)."""
    spec = dataset_spec(name)
    try:
        return spec.options.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        if first["type"] == "extra_forbidden":
            valid = ", ".join(spec.options.model_fields) or "none"
            raise ConfigError(f"data set '{name}': unknown option '{key}' (valid options: {valid})") from exc
        raise ConfigError(f"data set '{name}' option '{key}': {first['msg']}") from exc


def load_dataset(
    name: str, root: str | Path | None = None, options: dict[str, Any] | None = None, *, seed: int = 0
) -> Dataset:
    """Load data set ``name`` from ``root`` with validated ``options``; ``seed`` is the construction seed."""
    spec = dataset_spec(name)
    parsed = parse_dataset_options(name, options)
    return spec.load(Path(root).expanduser() if root is not None else None, parsed, seed=seed)
