"""What a user sees while a unit trains: a tqdm bar per epoch (loss, acc, img/s) in this process, one line
per epoch in worker processes and Ray tasks, nothing with progress off."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from train_helpers import run_config

from kdfair.train.runner import execute

POSTFIX = re.compile(r"loss=(\d+\.\d{3}), acc=(\d\.\d{3}), img_s=(\d+)")


def _runs(tag: str) -> list:
    return [run_config(f"ds_kd_T{t}_a0.8_{tag}", temperature=t) for t in (2, 4)]


def test_progress_bar_shows_loss_accuracy_and_images_per_second(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(_runs("bar"), sweep, device="cpu", progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    found = POSTFIX.findall(captured.err)
    assert len(found) == 2  # step 0 of each of the 2 epochs (the postfix is refreshed every 10 steps)
    for loss, accuracy, images in found:
        assert 0 < float(loss) < 10 and 0 <= float(accuracy) <= 1 and int(images) > 0
    assert "epoch 1 ds_kd_T2_a0.8_bar,ds_kd_T4_a0.8_bar" in captured.err
    assert "epoch 2 ds_kd_T2_a0.8_bar,ds_kd_T4_a0.8_bar" in captured.err


def test_line_progress_prints_one_line_per_epoch_matching_epochs_csv(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = execute(_runs("lines"), sweep, device="cpu", progress="lines")
    captured = capsys.readouterr()
    assert "loss=" not in captured.err  # no bar
    with open(folders[0] / "epochs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = [
        f"ds_kd_T2_a0.8_lines,ds_kd_T4_a0.8_lines epoch {row['epoch']}/2: "
        f"loss {float(row['train_loss']):.3f}, acc {float(row['train_acc']):.3f}, "
        f"{float(row['images_per_s']):.0f} img/s, {float(row['seconds']):.1f} s"
        for row in rows
    ]
    assert captured.out.splitlines() == expected and len(expected) == 2


def test_progress_off_is_silent(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    execute(_runs("off"), sweep, device="cpu", progress=False)
    assert capsys.readouterr() == ("", "")
