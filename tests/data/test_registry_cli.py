"""The data set registry (names, strict options) and the ``kdfair data`` command."""

from __future__ import annotations

import pytest
from kdfair_data_formats import write_cifar10

from kdfair.cli import main
from kdfair.data.cli import parse_options
from kdfair.data.registry import DATASETS, load_dataset, parse_dataset_options
from kdfair.errors import ConfigError

NAMES = [
    "trifeature", "cifar10", "cifar100", "svhn", "cifar10s", "image_folder", "cifar10_jpeg", "tiny_imagenet",
    "imagenet", "celeba", "hatexplain", "utkface",
]  # fmt: skip


def test_every_data_set_of_the_papers_is_registered():
    assert sorted(DATASETS) == sorted(NAMES)
    for spec in DATASETS.values():
        assert spec.description and spec.download_hint
        assert spec.options.model_config.get("extra") == "forbid"
        spec.options()  # every option has a default


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown data set 'cifar11'.*cifar10, cifar100"):
        load_dataset("cifar11")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_names_key_and_data_set(name):
    with pytest.raises(ConfigError, match=f"data set '{name}': unknown option 'colour_jitter'"):
        parse_dataset_options(name, {"colour_jitter": 1})


def test_bad_option_value():
    with pytest.raises(ConfigError, match="'trifeature' option 'image_size'"):
        parse_dataset_options("trifeature", {"image_size": "big"})


def test_parse_cli_options():
    assert parse_options(["a=1", "b=[x, y]", "c=true", "d=text"]) == {
        "a": 1,
        "b": ["x", "y"],
        "c": True,
        "d": "text",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["novalue"])


def test_cli_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}:" in out for name in NAMES)
    assert "cifar-10-batches-py/data_batch_1" in out


def test_cli_inspect_prints_class_and_group_balance(tmp_path, capsys):
    write_cifar10(tmp_path, per_class_train=4)
    assert main(["data", "inspect", "cifar10s", "--root", str(tmp_path), "--option", "p=0.75"]) == 0
    out = capsys.readouterr().out
    assert "[train] 40 samples" in out and "airplane 4 (10.0%)" in out
    assert "grey: colour 20 (50.0%), grey 20 (50.0%)" in out and "[test] 20 samples" in out


def test_cli_missing_data_is_one_line_exit_2(tmp_path, capsys):
    assert main(["data", "inspect", "cifar10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data_batch_1" in err[0] and str(tmp_path) in err[0]


def test_cli_attributes_only_flag_needs_support(tmp_path, capsys):
    assert main(["data", "inspect", "cifar10", "--root", str(tmp_path), "--attributes-only"]) == 2
    assert "no attributes-only mode" in capsys.readouterr().err
