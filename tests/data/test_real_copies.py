"""The loaders on the real copies in /work/shared/data (slow; skipped when that folder is absent).
The tars are extracted to a temporary folder, never into the repository. Expected counts: docs/datasets.md."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from kdfair.data.registry import load_dataset

SHARED = Path("/work/shared/data")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED.is_dir(), reason="no real data copies at /work/shared/data"),
]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    for tar in ("cifar10-jpeg.tar", "utkface/crop_part1.tar"):
        target = out / Path(tar).parent
        with tarfile.open(SHARED / tar) as handle:
            handle.extractall(target, filter="data")
    return out


def test_celeba_attributes(recwarn):
    options = {
        "attributes_only": True,
        "attr_file": "list_attr_celeba_first20000.txt",
        "balance_train": False,
    }
    data = load_dataset("celeba", SHARED / "celeba", options)
    assert data.info["rows_read"] == 20000 and len(data.split("train")) == 20000
    balanced = load_dataset("celeba", SHARED / "celeba", {**options, "balance_train": True})
    assert np.bincount(balanced.split("train").labels).tolist() == [9587, 9587]


def test_hatexplain_val_test_and_train_jsonl():
    options = {"dataset_file": "dataset_valtest.json", "train_jsonl": "train_majority.jsonl"}
    data = load_dataset("hatexplain", SHARED / "hatexplain", options)
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [12273, 1922, 1924]
    assert np.bincount(data.split("test").labels).tolist() == [782, 1142]
    assert data.split("test").attributes["race"].sum() == 493


def test_utkface_part1(extracted):
    data = load_dataset("utkface", extracted / "utkface")
    assert data.info["files"] == 9780 and data.info["skipped_malformed"] == 2
    assert data.info["dropped_race_others"] == 1103
    assert (len(data.split("train")), len(data.split("test"))) == (7576, 1099)


def test_cifar10_jpeg(extracted):
    data = load_dataset("cifar10_jpeg", extracted)
    assert (len(data.split("train")), len(data.split("test"))) == (50000, 10000)
    assert np.bincount(data.split("test").labels).tolist() == [1000] * 10
    s10 = load_dataset("cifar10s", extracted, {"source": "cifar10_jpeg"})
    grey = s10.split("train").attributes["grey"]
    assert np.bincount(s10.split("train").labels[grey == 1]).tolist()[:2] == [4750, 250]
