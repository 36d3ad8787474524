"""The pre-training data-file check sees the files each loader needs for its options, whatever their types
(string options such as CelebA's ``label`` used to switch the check off)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sweep_helpers import TINY, merged, run_cli, write_config

from kdfair.data import registry
from kdfair.errors import KdfairError
from kdfair.sweep.checks import check_data
from kdfair.train.config import DataConfig

CELEBA = ["list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba/"]


def _tree(root: Path, entries: list[str]) -> Path:
    for entry in entries:
        path = root / entry
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text("")
    return root


@pytest.mark.parametrize(
    ("name", "options", "present", "missing"),
    [
        ("celeba", {"label": "Attractive"}, CELEBA[1:], "missing list_attr_celeba.txt ("),
        ("celeba", {"attr_file": "attrs.txt"}, CELEBA, "missing attrs.txt ("),
        ("celeba", {"image_dir": "faces"}, CELEBA, "missing faces/ ("),
        ("hatexplain", {"train_jsonl": "train.jsonl"}, ["dataset.json", "post_id_divisions.json"],
         "missing train.jsonl ("),
        ("hatexplain", {"dataset_file": "posts.json"}, ["dataset.json", "post_id_divisions.json"],
         "missing posts.json ("),
        ("svhn", {"extra": True}, ["train_32x32.mat", "test_32x32.mat"], "missing extra_32x32.mat ("),
        ("cifar100", {"label": "coarse"}, ["cifar-100-python/train"],
         "missing cifar-100-python/test, cifar-100-python/meta ("),
        ("cifar10s", {"source": "cifar10_jpeg"}, ["cifar10_yoongikim_jpg/train/"],
         "missing cifar10_yoongikim_jpg/test/ ("),
    ],
)  # fmt: skip
def test_missing_file_is_named_whatever_the_option_types(
    tmp_path: Path, name: str, options: dict, present: list[str], missing: str
) -> None:
    data = DataConfig(name=name, root=str(_tree(tmp_path, present)), options=options)
    with pytest.raises(KdfairError) as info:
        check_data(data, "data")
    message = str(info.value)
    assert message.startswith(f"data.root: data set '{name}': ") and missing in message, message
    assert f"searched {tmp_path}" in message and "\n" not in message


@pytest.mark.parametrize(
    ("name", "options", "present"),
    [
        ("celeba", {"label": "Attractive", "protected": ["Male"]}, CELEBA),
        ("celeba", {"attr_file": "attrs.txt", "label": "Eyeglasses"}, ["attrs.txt", *CELEBA[1:]]),
        ("celeba", {"attributes_only": True}, CELEBA[:1]),  # no images or partition file needed
        ("cifar10", {}, ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                         "test_batch", "batches.meta"]),  # extracted flat into root
        ("tiny_imagenet", {}, ["tiny-imagenet-200/wnids.txt", "tiny-imagenet-200/val/val_annotations.txt",
                               "tiny-imagenet-200/val/images/", "tiny-imagenet-200/train/"]),  # no words.txt
        ("hatexplain", {"train_jsonl": "{tmp}/elsewhere/train.jsonl"},
         ["dataset.json", "post_id_divisions.json", "elsewhere/train.jsonl"]),  # an absolute path
    ],
)  # fmt: skip
def test_complete_folders_pass(tmp_path: Path, name: str, options: dict, present: list[str]) -> None:
    options = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in options.items()}
    check_data(DataConfig(name=name, root=str(_tree(tmp_path, present)), options=options), "data")


def test_celeba_with_a_string_option_and_a_missing_file_exits_2_at_once(tmp_path: Path) -> None:
    root = _tree(tmp_path / "celeba", CELEBA[1:])
    raw = merged(TINY, data={"name": "celeba", "root": str(root), "options": {"label": "Attractive"}})
    config = write_config(tmp_path, raw, "celeba.yaml")
    status, stdout, stderr = run_cli("sweep", str(config), "--out", str(tmp_path / "out"))
    assert status == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(
        f"kdfair sweep: error: {config}: data.root: data set 'celeba': missing list_attr_celeba.txt "
        f"(searched {root}); "
    ), stderr
    assert not (tmp_path / "out").exists()


def _needed(name: str) -> list[str]:
    """The files data set ``name``'s loader says it opens with default options, patterns left out."""
    options = registry.parse_dataset_options(name, {})
    return [f for f in registry.DATASETS[name].files_for(options) if not any(c in f for c in "<>{}*?[]() ")]


@pytest.mark.parametrize("name", [n for n in registry.DATASETS if _needed(n)])  # utkface: patterns only
def test_the_check_asks_the_loader_for_its_files(tmp_path: Path, name: str) -> None:
    """Every loader's own list of the files it opens (``DatasetSpec.files_for``) is what the check names."""
    needed = _needed(name)
    with pytest.raises(KdfairError, match=f"missing {', '.join(needed)} \\("):
        check_data(DataConfig(name=name, root=str(tmp_path)), "data")


def test_a_loader_that_changes_its_list_changes_the_check(tmp_path: Path, monkeypatch) -> None:
    spec = dataclasses.replace(registry.DATASETS["svhn"], required_files=lambda options: ["renamed.mat"])
    monkeypatch.setitem(registry.DATASETS, "svhn", spec)
    _tree(tmp_path, ["train_32x32.mat", "test_32x32.mat"])
    with pytest.raises(KdfairError, match="missing renamed.mat \\("):
        check_data(DataConfig(name="svhn", root=str(tmp_path)), "data")
