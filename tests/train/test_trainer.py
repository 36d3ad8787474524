"""End-to-end trainer tests on a tiny stand-in data set: determinism, lockstep, resume, teachers, folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import run_config

from kdfair.errors import ConfigError, DataError, KdfairWarning
from kdfair.predictions import load_predictions, read_run_meta
from kdfair.train.runner import execute

HERE = Path(__file__).parent


def arrays(run_dir: Path) -> dict[str, bytes]:
    with np.load(run_dir / "predictions.npz") as npz:
        return {key: npz[key].tobytes() for key in npz.files}


def test_run_folder_contents_and_format(sweep: Path) -> None:
    (folder,) = execute([run_config("ds_kd_T4_a0.8_s0")], sweep, device="cpu", progress=False)
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "config.json",
        "environment.json",
        "epochs.csv",
        "checkpoint.pt",
        "predictions.npz",
        "run.json",
        "DONE",
    }
    assert json.loads((folder / "config.json").read_text()) == json.loads(
        run_config("ds_kd_T4_a0.8_s0").model_dump_json()
    )
    rows = (folder / "epochs.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss,train_acc,images_per_s,seconds")
    lrs = [(int(r.split(",")[0]), float(r.split(",")[1])) for r in rows[1:]]
    assert lrs == [(1, 0.05), (2, pytest.approx(0.005))]  # milestone after epoch 1
    meta = read_run_meta(folder)
    assert (meta.role, meta.temperature, meta.alpha, meta.method) == ("ds", 4.0, 0.8, "kd")
    assert meta.settings["teacher"].startswith("run teacher_s0")
    pred = load_predictions(folder)
    assert pred.probs.shape == (40, 3) and pred.features.shape == (40, 84)
    assert set(pred.attributes) == {"colour", "texture"} and pred.attribute_levels["colour"] == [
        "dark",
        "light",
    ]
    accuracy = float((pred.y_pred == pred.y_true).mean())
    assert meta.settings["test_accuracy"] == pytest.approx(accuracy)
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]) == 2
    rep = np.load(sweep / "representation.npz")
    assert rep["x"].shape == (40, 16 * 16 * 3)
    np.testing.assert_allclose(rep["x"].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_array_equal(rep["sample_id"], pred.sample_id)


def test_same_seed_same_bits_and_done_is_skipped(sweep: Path, tmp_path: Path) -> None:
    config = run_config("nds_s0", role="nds", seed=3)
    (first,) = execute([config], sweep, device="cpu", progress=False)
    (second,) = execute([config], tmp_path / "other", device="cpu", progress=False)
    assert arrays(first) == arrays(second)
    stamp = (first / "DONE").stat().st_mtime_ns
    execute([config], sweep, device="cpu", progress=False)  # DONE: skipped
    assert (first / "DONE").stat().st_mtime_ns == stamp
    (third,) = execute([run_config("nds_s1", role="nds", seed=4)], sweep, device="cpu", progress=False)
    assert arrays(third)["logits"] != arrays(first)["logits"]


def test_lockstep_equals_one_by_one(sweep: Path, tmp_path: Path) -> None:
    runs = [run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t) for t in (1.0, 8.0)]
    together = execute(runs, sweep, device="cpu", progress=False)
    alone_dir = tmp_path / "alone"
    alone_dir.mkdir()
    (alone_dir / "runs").symlink_to(sweep / "runs")  # same teacher, separate outputs below
    for run, folder in zip(runs, together, strict=True):
        other = tmp_path / f"alone_{run.run_id}"
        (other / "runs").mkdir(parents=True)
        (other / "runs" / "teacher_s0").symlink_to(sweep / "runs" / "teacher_s0")
        (single,) = execute([run], other, device="cpu", progress=False)
        assert arrays(single) == arrays(folder)
    assert arrays(together[0])["logits"] != arrays(together[1])["logits"]


def test_teacher_cache_when_augment_off(sweep: Path, live_calls: list[int]) -> None:
    calls = live_calls  # batch sizes of every live teacher forward (conftest)
    runs = [run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t, train={"augment": False}) for t in (2.0, 4.0)]
    execute(runs, sweep, device="cpu", progress=False)
    assert calls == [96]  # one pass over the 96 train images (eval batch 512), 0 per step
    assert (sweep / "cache" / "teacher_teacher_s0.npz").exists()
    calls.clear()
    live = [run_config(f"ds_kd_T{t}_a0.8_s1", temperature=t) for t in (2.0, 4.0)]  # augment on: live
    execute(live, sweep, device="cpu", progress=False)
    assert calls == [32, 32, 32] * 2  # one forward per batch (3 per epoch, 2 epochs) shared by 2 students


def test_resume_after_kill_is_bit_identical(sweep: Path, tmp_path: Path) -> None:
    runs = [run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t, train={"epochs": 3}) for t in (1.0, 4.0)]
    reference = tmp_path / "reference"
    (reference / "runs").mkdir(parents=True)
    (reference / "runs" / "teacher_s0").symlink_to(sweep / "runs" / "teacher_s0")
    expected = [arrays(f) for f in execute(runs, reference, device="cpu", progress=False)]
    spec = tmp_path / "runs.json"
    spec.write_text(json.dumps([json.loads(r.model_dump_json()) for r in runs]))
    env = {**os.environ, "KDFAIR_CRASH_AT": f"epoch:{runs[0].run_id}:2"}
    proc = subprocess.run(
        [sys.executable, str(HERE / "standin.py"), str(spec), str(sweep)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    folders = [sweep / "runs" / r.run_id for r in runs]
    assert not any((f / "DONE").exists() for f in folders)
    epochs = [torch.load(f / "checkpoint.pt", weights_only=False)["epoch"] for f in folders]
    assert epochs == [2, 1]  # killed right after the first student's 2nd epoch
    (folders[1] / ".checkpoint.pt.123.tmp").write_bytes(b"half")  # a stale temporary file
    resumed = execute(runs, sweep, device="cpu", progress=False)
    assert [arrays(f) for f in resumed] == expected
    assert not (folders[1] / ".checkpoint.pt.123.tmp").exists()
    assert len((folders[0] / "epochs.csv").read_text().splitlines()) == 4


def test_corrupt_checkpoint_restarts_with_warning(sweep: Path, tmp_path: Path) -> None:
    config = run_config("nds_s0", role="nds")
    (reference,) = execute([config], tmp_path / "reference", device="cpu", progress=False)
    folder = sweep / "runs" / "nds_s0"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(KdfairWarning, match="unreadable checkpoint"):
        execute([config], sweep, device="cpu", progress=False)
    assert arrays(folder) == arrays(reference)


def test_teacher_from_checkpoint_and_outputs_match_run_teacher(sweep: Path, tmp_path: Path) -> None:
    state = torch.load(sweep / "runs" / "teacher_s0" / "checkpoint.pt", weights_only=False)["model"]
    torch.save(state, tmp_path / "teacher.pt")
    from_run = run_config("ds_kd_T4_a0.8_s0", train={"augment": False})
    (run_folder,) = execute([from_run], sweep, device="cpu", progress=False)
    ckpt = from_run.model_copy(
        update={
            "run_id": "ds_ckpt",
            "teacher": from_run.teacher.model_copy(
                update={
                    "kind": "checkpoint",
                    "run_id": None,
                    "path": str(tmp_path / "teacher.pt"),
                    "model": from_run.model,
                }
            ),
        }
    )
    (ckpt_folder,) = execute([ckpt], sweep, device="cpu", progress=False)
    assert arrays(ckpt_folder) == arrays(run_folder)
    cache = np.load(sweep / "cache" / "teacher_teacher_s0.npz")
    order = np.random.default_rng(0).permutation(len(cache["sample_id"]))
    np.savez(tmp_path / "outputs.npz", sample_id=cache["sample_id"][order], logits=cache["logits"][order])
    outputs = ckpt.model_copy(
        update={
            "run_id": "ds_outputs",
            "teacher": ckpt.teacher.model_copy(
                update={"kind": "outputs", "path": str(tmp_path / "outputs.npz"), "model": None}
            ),
        }
    )
    (out_folder,) = execute([outputs], sweep, device="cpu", progress=False)
    assert arrays(out_folder) == arrays(run_folder)
    assert read_run_meta(out_folder).settings["teacher"].startswith("outputs ")


def test_outputs_missing_ids_and_unfinished_teacher_are_errors(sweep: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", sample_id=np.arange(5), logits=np.zeros((5, 3), np.float32))
    bad = run_config("ds_bad").model_copy(
        update={
            "teacher": run_config("x").teacher.model_copy(
                update={"kind": "outputs", "path": str(tmp_path / "bad.npz"), "run_id": None}
            )
        }
    )
    with pytest.raises(DataError, match="missing from the teacher outputs"):
        execute([bad], sweep, device="cpu", progress=False)
    (sweep / "runs" / "teacher_s0" / "DONE").unlink()
    with pytest.raises(ConfigError, match="not finished"):
        execute([run_config("ds_kd_T4_a0.8_s0")], sweep, device="cpu", progress=False)


def test_group_with_different_seeds_is_rejected(sweep: Path) -> None:
    with pytest.raises(ConfigError, match="cannot train in lockstep"):
        execute([run_config("a", seed=0), run_config("b", seed=1)], sweep, device="cpu", progress=False)
