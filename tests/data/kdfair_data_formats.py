"""Writers of tiny fixtures in the official file formats of each data set (used by the data tests)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CELEBA_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def random_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def write_cifar10(root: Path, per_class_train: int = 2, per_class_test: int = 1, seed: int = 0):
    """cifar-10-batches-py with data_batch_1..5, test_batch, batches.meta; returns the arrays written."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    train_labels = rng.permutation(np.repeat(np.arange(10), per_class_train))
    test_labels = rng.permutation(np.repeat(np.arange(10), per_class_test))
    train, test = random_images(len(train_labels), seed=seed), random_images(len(test_labels), seed=seed + 1)
    for i, part in enumerate(np.array_split(np.arange(len(train_labels)), 5), start=1):
        _pickle_batch(folder / f"data_batch_{i}", train[part], {b"labels": train_labels[part].tolist()})
    _pickle_batch(folder / "test_batch", test, {b"labels": test_labels.tolist()})
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}, handle)
    return train, train_labels, test, test_labels


def _pickle_batch(path: Path, images: np.ndarray, labels: dict) -> None:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # rows: R plane, G plane, B plane
    names = [f"img_{i}.png".encode() for i in range(len(images))]
    with open(path, "wb") as handle:
        pickle.dump({b"batch_label": b"batch", b"data": data, b"filenames": names, **labels}, handle)


def write_cifar100(root: Path, n_train: int = 6, n_test: int = 4):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    arrays = {}
    for split, n, seed in (("train", n_train, 3), ("test", n_test, 4)):
        images = random_images(n, seed=seed)
        fine = np.arange(n) * 7 % 100
        coarse = fine % 20
        _pickle_batch(
            folder / split, images, {b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist()}
        )
        arrays[split] = (images, fine, coarse)
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    with open(folder / "meta", "wb") as handle:
        pickle.dump(meta, handle)
    return arrays


def write_svhn(root: Path, labels_by_split: dict[str, list[int]]):
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (split, labels) in enumerate(labels_by_split.items()):
        images = random_images(len(labels), seed=10 + i)
        scipy.io.savemat(
            root / f"{split}_32x32.mat",
            {"X": images.transpose(1, 2, 3, 0), "y": np.asarray(labels, dtype=np.uint8).reshape(-1, 1)},
        )
        out[split] = images
    return out


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def write_celeba_attributes(path: Path, rows: list[tuple[str, dict[str, int]]], declared: int | None = None):
    """``list_attr_celeba.txt``: count line, the 40 names, rows of +1/-1 (named attributes set, others -1)."""
    lines = [str(len(rows) if declared is None else declared), " ".join(CELEBA_NAMES) + " "]
    for name, values in rows:
        lines.append(name + " " + " ".join(f"{values.get(a, -1):2d}" for a in CELEBA_NAMES))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def annotator(label: str, *targets: str, annotator_id: int = 1) -> dict:
    return {"label": label, "annotator_id": annotator_id, "target": list(targets) or ["None"]}


def write_hatexplain(root: Path, posts: dict[str, list[dict]], divisions: dict[str, list[str]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    data = {
        pid: {
            "post_id": pid,
            "annotators": ann,
            "rationales": [],
            "post_tokens": f"post {pid} about things".split(),
        }
        for pid, ann in posts.items()
    }
    (root / "dataset.json").write_text(json.dumps(data))
    (root / "post_id_divisions.json").write_text(json.dumps(divisions, indent=4))
