"""What a user sees while a unit trains: a tqdm bar per epoch (loss, acc, img/s) in this process on a
terminal; plain lines (one per epoch, one a minute within a long epoch) in worker processes, Ray tasks and
any log; nothing with progress off."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from train_helpers import run_config

from kdfair.train import lockstep
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
    # step 0 of each of the 2 epochs (the postfix is refreshed every 10 steps); under load tqdm redraws the
    # bar (its mininterval), repeating a postfix unchanged, so distinct values are counted
    found = list(dict.fromkeys(POSTFIX.findall(captured.err)))
    assert len(found) == 2
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


def test_line_progress_reports_within_a_long_epoch(
    sweep: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lockstep, "STEP_LINE_SECONDS", 0.0)  # every step is "a minute later"
    execute(_runs("steps"), sweep, device="cpu", progress="lines")
    captured = capsys.readouterr()
    assert "loss=" not in captured.err  # no bar
    names = "ds_kd_T2_a0.8_steps,ds_kd_T4_a0.8_steps"
    step = re.compile(
        rf"{names} epoch (\d)/2: step (\d+)/(\d+), loss \d+\.\d{{3}}, acc [01]\.\d{{3}}, \d+ img/s"
    )
    lines = captured.out.splitlines()
    for epoch in (1, 2):
        found = [m for m in map(step.fullmatch, lines) if m and m.group(1) == str(epoch)]
        total = int(found[0].group(3))
        assert [int(m.group(2)) for m in found] == list(range(1, total + 1)) and total > 1
        epoch_end = next(i for i, x in enumerate(lines) if x.startswith(f"{names} epoch {epoch}/2: loss "))
        assert lines.index(found[-1].group(0)) < epoch_end  # then the epoch's own line


def test_progress_off_is_silent(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    execute(_runs("off"), sweep, device="cpu", progress=False)
    assert capsys.readouterr() == ("", "")
