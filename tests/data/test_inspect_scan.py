"""``kdfair data inspect`` scans every sample in chunks with a progress bar per split, decodes lazily read
images through the split's reader and names unreadable files; the chunked counts equal a hand count."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kdfair_data_formats import random_images, write_celeba_attributes, write_image

from kdfair.cli import main
from kdfair.data.base import DataSplit
from kdfair.data.common import LazyImageFiles, split_counts
from kdfair.data.scan import scan_split

AGES = (5, 25, 60)  # one age per bucket: <20, 20-39, >=40


def _utkface(folder):
    """Cell (race r, age bucket a) holds 2 + r + a files, gender = race % 2. With test_per_cell 1 every cell
    gives exactly one image to test, so the counts below are fixed whatever the seed draws."""
    files = []
    for race in range(4):
        for a, age in enumerate(AGES):
            for i in range(2 + race + a):
                files.append(folder / f"{age}_{race % 2}_{race}_2017{race}{a}{i:04d}.jpg")
    for path, image in zip(files, random_images(len(files), 12), strict=True):
        write_image(path, image)
    return files


TRAIN_LINES = [
    "[train] 42 samples",  # sum over cells of (1 + r + a) = 12 + 18 + 12
    "  classes: <20 10 (23.8%), 20-39 14 (33.3%), >=40 18 (42.9%)",  # 10 + 4a
    "  race: White 6 (14.3%), Black 9 (21.4%), Asian 12 (28.6%), Indian 15 (35.7%)",  # 6 + 3r
    "  gender: male 18 (42.9%), female 24 (57.1%)",  # races 0 and 2 / races 1 and 3
]
TEST_LINES = [
    "[test] 12 samples",
    "  classes: <20 4 (33.3%), 20-39 4 (33.3%), >=40 4 (33.3%)",
    "  race: White 3 (25.0%), Black 3 (25.0%), Asian 3 (25.0%), Indian 3 (25.0%)",
    "  gender: male 6 (50.0%), female 6 (50.0%)",
]
INSPECT = ["data", "inspect", "utkface", "--option", "test_per_cell=1", "--option", "image_size=8"]


def test_inspect_prints_exact_balance_and_bar_reaches_sample_count(tmp_path, capsys):
    _utkface(tmp_path)
    argv = [*INSPECT, "--root", str(tmp_path), "--chunk-size", "5", "--progress", "always"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "utkface: image, 3 classes, 8 px"
    assert lines[1:9] == TRAIN_LINES + TEST_LINES
    assert "[train] decoded 42 files, 0 unreadable" in lines
    assert "[test] decoded 12 files, 0 unreadable" in lines
    final = [part for part in captured.err.replace("\r", "\n").splitlines() if "100%" in part]
    assert any(p.startswith("scanning train: 100%") and "42/42" in p for p in final)
    assert any(p.startswith("scanning test: 100%") and "12/12" in p for p in final)


def test_progress_auto_is_off_without_a_terminal_and_never_is_off(tmp_path, capsys):
    _utkface(tmp_path)
    for mode in ("auto", "never"):
        assert main([*INSPECT, "--root", str(tmp_path), "--progress", mode]) == 0
        assert "scanning" not in capsys.readouterr().err


def test_inspect_finds_every_unreadable_file_by_path(tmp_path, capsys):
    files = _utkface(tmp_path)
    broken = [files[3], files[40]]
    for path in broken:
        path.write_bytes(b"\xff\xd8 not a jpeg")
    assert main([*INSPECT, "--root", str(tmp_path), "--chunk-size", "7"]) == 2
    captured = capsys.readouterr()
    assert TRAIN_LINES[1] in captured.out and TEST_LINES[2] in captured.out  # the counts are still printed
    for path in broken:
        assert f"  {path.name}: cannot decode image {path}" in captured.out
    n_bad = sum(
        int(line.split(", ")[1].split()[0]) for line in captured.out.splitlines() if "decoded" in line
    )
    assert n_bad == 2
    assert "error: 2 unreadable input file(s); first: cannot decode image" in captured.err
    # without decoding, the same tree passes: only labels and attributes are read
    assert main([*INSPECT, "--root", str(tmp_path), "--no-decode"]) == 0
    assert "no image files to decode" in capsys.readouterr().out


def test_lazy_reader_sees_every_sample_once_in_chunks(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(11)]
    for path, image in zip(paths, random_images(11, 4), strict=True):
        write_image(path, image)

    class Recording(LazyImageFiles):
        seen: list[int] = []

        def __getitem__(self, index):
            self.seen.extend(np.atleast_1d(index).tolist())
            return super().__getitem__(index)

    source = Recording(paths, 4)
    split = DataSplit(
        inputs=source, labels=np.zeros(11, dtype=np.int64), sample_ids=np.arange(11).astype(str)
    )
    result = scan_split(split, ["only"], {}, chunk_size=4, progress="never")
    assert source.seen == list(range(11)) and result.decoded == 11 and result.unreadable == []


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_chunked_counts_equal_hand_counts(chunk_size):
    labels = np.array([0, 1, 1, 2, 0, 1, 1])
    grey = np.array([0, 0, 1, 1, 1, 0, 1])
    site = np.array([7, 3, 3, 7, 9, 3, 7])  # no declared level names: levels are the values, sorted
    split = DataSplit(
        inputs=np.zeros((7, 1, 1, 3), dtype=np.uint8),
        labels=labels,
        sample_ids=np.arange(7).astype(str),
        attributes={"grey": grey, "site": site},
    )
    result = scan_split(split, ["a", "b", "c"], {"grey": ["colour", "grey"]}, chunk_size=chunk_size)
    counts = result.counts
    assert counts["n"] == 7 and counts["classes"] == {"a": 2, "b": 4, "c": 1}
    assert counts["groups"]["grey"]["levels"] == {"colour": 3, "grey": 4}
    assert counts["groups"]["grey"]["class_by_level"] == {
        "a|colour": 1, "a|grey": 1, "b|colour": 2, "b|grey": 2, "c|colour": 0, "c|grey": 1,
    }  # fmt: skip
    assert counts["groups"]["site"]["levels"] == {"3": 3, "7": 3, "9": 1}
    assert counts["groups"]["site"]["class_by_level"]["b|7"] == 1
    assert result.decoded == 0  # inputs in memory are not re-read
    assert split_counts(split, ["a", "b", "c"], {"grey": ["colour", "grey"]}) == counts


def test_json_lists_unreadable_files_and_placeholders_are_not_decoded(tmp_path, capsys):
    files = _utkface(tmp_path / "utk")
    files[0].write_bytes(b"broken")
    assert main([*INSPECT, "--root", str(tmp_path / "utk"), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    listed = [entry for entries in report["unreadable"].values() for entry in entries]
    assert len(listed) == 1 and listed[0][0] == files[0].name and str(files[0]) in listed[0][1]
    assert report["splits"]["train"]["n"] + report["splits"]["test"]["n"] == 54
    rows = [
        (f"{i:06d}.jpg", {"Smiling": 1 if i % 3 else -1, "Male": 1 if i < 3 else -1}) for i in range(1, 7)
    ]
    write_celeba_attributes(tmp_path / "celeba" / "list_attr_celeba.txt", rows)
    argv = ["data", "inspect", "celeba", "--root", str(tmp_path / "celeba"), "--attributes-only"]
    assert main([*argv, "--option", "balance_train=false"]) == 0
    out = capsys.readouterr().out
    assert "[train] 6 samples" in out and "  Male: not Male 4 (66.7%), Male 2 (33.3%)" in out
    assert "no image files to decode" in out  # the attributes-only placeholder is not counted as decoded
