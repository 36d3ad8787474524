"""UTKFace in MFD's set-up (Jung et al. 2021; SPEC §7).

File names ``<age>_<gender>_<race>_<date>.jpg`` (also ``.jpg.chip.jpg``): gender 0 male, 1 female; race
0 White, 1 Black, 2 Asian, 3 Indian, 4 Others. Label: age bucket (<20, 20-39, >=40). Protected: race, 4 groups
(race 4 is dropped, counted); gender is kept as a second attribute. Test: ``test_per_cell`` images (default
100) per (race, age bucket) cell, drawn with the seed; a cell with fewer than twice that gives half of its
images to test (reported in ``info["short_cells"]``). Everything else is train. Malformed names are skipped
and counted. The root may be the image folder or hold ``images/``, ``UTKFace/`` or ``crop_part1/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from pydantic import Field

from kdfair.data.base import Dataset, DataSplit
from kdfair.data.common import (
    StrictOptions,
    image_source,
    list_images,
    missing_data_error,
    require_root,
    splits_info,
)

HINT = "get UTKFace (Aligned&Cropped faces or crop_part1..3) from https://susanqq.github.io/UTKFace/"
EXPECTED = ["<age>_<gender>_<race>_<date>.jpg[.chip.jpg]"]
SUBFOLDERS = ("images", "UTKFace", "crop_part1")
NAME_PATTERN = re.compile(r"^(\d+)_([01])_([0-4])_(\d+)\.jpg(\.chip\.jpg)?$", re.IGNORECASE)
AGE_BUCKETS = ["<20", "20-39", ">=40"]
RACES = ["White", "Black", "Asian", "Indian"]
GENDERS = ["male", "female"]


class UtkfaceOptions(StrictOptions):
    image_size: int = Field(64, ge=1)  # 200 x 200 crops resized to this side
    in_memory: bool = False
    test_per_cell: int = Field(100, ge=1)  # test images per (race, age bucket) cell


def age_bucket(age: int) -> int:
    """0 for age < 20, 1 for 20-39, 2 for >= 40."""
    return 0 if age < 20 else (1 if age < 40 else 2)


def parse_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from a UTKFace file name, or None when the name is malformed."""
    match = NAME_PATTERN.match(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _image_folder(root: Path | None) -> Path:
    base = require_root("utkface", root, EXPECTED, HINT)
    for sub in SUBFOLDERS:
        if (base / sub).is_dir():
            return base / sub
    return base


def _test_mask(age: np.ndarray, race: np.ndarray, per_cell: int, seed: int, info: dict) -> np.ndarray:
    rng = np.random.default_rng([seed, 30])
    test = np.zeros(len(age), dtype=bool)
    short = {}
    for r in range(len(RACES)):
        for a in range(len(AGE_BUCKETS)):
            cell = np.nonzero((race == r) & (age == a))[0]
            take = per_cell if len(cell) >= 2 * per_cell else len(cell) // 2
            if take < per_cell:
                short[f"{RACES[r]}|{AGE_BUCKETS[a]}"] = {"images": int(len(cell)), "test": int(take)}
            test[rng.choice(cell, size=take, replace=False)] = True
    info["short_cells"] = short
    return test


def load_utkface(root: Path | None, options: UtkfaceOptions, *, seed: int) -> Dataset:
    """UTKFace train / test with label age bucket and attributes race (4 groups) and gender."""
    folder = _image_folder(root)
    files = list_images(folder)
    parsed = [(f, parse_name(f.name)) for f in files]
    good = [(f, p) for f, p in parsed if p is not None and p[2] != 4]
    info: dict = {
        "folder": str(folder),
        "files": len(files),
        "skipped_malformed": sum(p is None for _, p in parsed),
        "malformed_names": [f.name for f, p in parsed if p is None][:20],
        "dropped_race_others": sum(p is not None and p[2] == 4 for _, p in parsed),
    }
    if not good:
        raise missing_data_error("utkface", EXPECTED, folder, HINT)
    paths = [f for f, _ in good]
    age = np.asarray([age_bucket(p[0]) for _, p in good], dtype=np.int64)
    gender = np.asarray([p[1] for _, p in good], dtype=np.int64)
    race = np.asarray([p[2] for _, p in good], dtype=np.int64)
    test = _test_mask(age, race, options.test_per_cell, seed, info)
    splits = {}
    for split, mask in (("train", ~test), ("test", test)):
        index = np.nonzero(mask)[0]
        split_paths = [paths[i] for i in index]
        splits[split] = DataSplit(
            inputs=image_source(split_paths, options.image_size, options.in_memory, desc=f"decoding {split}"),
            labels=age[index],
            sample_ids=np.asarray([p.name for p in split_paths]),
            attributes={"race": race[index], "gender": gender[index]},
        )
    levels = {"race": RACES, "gender": GENDERS}
    info["splits"] = splits_info(splits, AGE_BUCKETS, levels)
    return Dataset(
        name="utkface",
        modality="image",
        num_classes=len(AGE_BUCKETS),
        class_names=AGE_BUCKETS,
        splits=splits,
        attribute_levels=levels,
        image_size=options.image_size,
        info=info,
    )
