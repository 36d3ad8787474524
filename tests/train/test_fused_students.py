"""Fused students (``train.fuse_students``, kdfair.train.fused) against today's unfused lockstep.

Tolerance: fused and unfused arithmetic differ only in summation order, so after a few steps the losses,
logits, parameters and optimiser states agree within float32 round-off: ``TOL`` absolute (measured 1e-7 to
1e-6 on these tiny runs; parameters move by ~1e-2 in training, so a wrong update would show).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import run_config

from kdfair.errors import ConfigError
from kdfair.losses.kd import hinton_kd_loss
from kdfair.models.cifar_resnet import cifar_resnet
from kdfair.models.fused_nets import FusedStudents, fusable_architecture
from kdfair.models.lenet import lenet5
from kdfair.predictions import read_run_meta
from kdfair.train import lockstep
from kdfair.train.config import TrainConfig
from kdfair.train.fused import fuse_optimizer, unfuse_optimizer
from kdfair.train.rundir import RunFolder
from kdfair.train.runner import execute
from kdfair.train.trainer import make_optimizer

HERE = Path(__file__).parent
TOL = 1e-5
FUSED = {"fuse_students": True}


def _models(factory, k: int) -> list[torch.nn.Module]:  # noqa: ANN001
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(factory().train())
    return models


@pytest.mark.parametrize(
    "factory", [lambda: lenet5(4, image_size=16), lambda: cifar_resnet(8, 4)], ids=["lenet5", "resnet8"]
)
def test_fused_forward_is_each_models_forward(factory) -> None:  # noqa: ANN001
    models = _models(factory, 3)
    reference = copy.deepcopy(models)
    fused = FusedStudents(models)
    x = torch.randn(6, 3, 16, 16)
    logits = fused.forward(x)
    assert logits.shape == (3, 6, 4)
    for k, model in enumerate(reference):
        torch.testing.assert_close(logits[k], model(x), atol=TOL, rtol=0)
    fused.unfuse(models)  # BatchNorm running statistics and counters were updated per model
    for model, ref in zip(models, reference, strict=True):
        for (name, mine), theirs in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
            torch.testing.assert_close(mine, theirs, atol=TOL, rtol=0, msg=name)
    assert int(models[0].bn1.num_batches_tracked) == 1 if hasattr(models[0], "bn1") else True


def test_fusable_architectures() -> None:
    assert fusable_architecture([lenet5(3), lenet5(3)]) is None
    assert fusable_architecture([cifar_resnet(8, 3), cifar_resnet(8, 3)]) is None
    assert "differ" in fusable_architecture([cifar_resnet(8, 3), cifar_resnet(14, 3)])
    assert "not fusable" in fusable_architecture([lenet5(3), cifar_resnet(8, 3)])


@pytest.mark.parametrize(
    "train",
    [TrainConfig(lr=0.05), TrainConfig(optimizer="adam", lr=1e-2, weight_decay=5e-4)],
    ids=["sgd", "adam"],
)
def test_fused_optimizer_steps_are_each_students_steps(train: TrainConfig) -> None:
    """3 KD steps with different temperatures; then a 4th after unfusing and fusing again (epoch boundary)."""
    models = _models(lambda: lenet5(4, image_size=16), 3)
    reference = copy.deepcopy(models)
    ref_opts = [make_optimizer(train, list(m.parameters())) for m in reference]
    own_opts = [make_optimizer(train, list(m.parameters())) for m in models]
    x, teacher, labels = torch.randn(8, 3, 16, 16), torch.randn(8, 4), torch.randint(0, 4, (8,))
    temperatures = [1.0, 4.0, 8.0]
    for step in range(4):
        if step in (0, 3):
            net = FusedStudents(models)
            fused_opt = fuse_optimizer(own_opts, net)
        logits = net.forward(x)
        losses = [
            hinton_kd_loss(logits[k], teacher, labels, temperature=t, alpha=0.8)["loss"]
            for k, t in enumerate(temperatures)
        ]
        fused_opt.zero_grad()
        torch.stack(losses).sum().backward()
        fused_opt.step()
        for model, opt, t, loss in zip(reference, ref_opts, temperatures, losses, strict=True):
            ref_loss = hinton_kd_loss(model(x), teacher, labels, temperature=t, alpha=0.8)["loss"]
            torch.testing.assert_close(loss, ref_loss, atol=TOL, rtol=0)
            opt.zero_grad()
            ref_loss.backward()
            opt.step()
        if step in (2, 3):
            net.unfuse(models)
            unfuse_optimizer(fused_opt, net, own_opts, [0, 1, 2])
    for model, ref, opt, ref_opt in zip(models, reference, own_opts, ref_opts, strict=True):
        for p, q in zip(model.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, atol=TOL, rtol=0)
            for key, value in ref_opt.state[q].items():
                torch.testing.assert_close(opt.state[p][key], value, atol=TOL, rtol=0, msg=key)
    assert set(own_opts[0].state[next(models[0].parameters())]) == (
        {"momentum_buffer"} if train.optimizer == "sgd" else {"step", "exp_avg", "exp_avg_sq"}
    )


def _epochs(folder: Path) -> list[dict[str, str]]:
    with open(folder / "epochs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _logits(folder: Path) -> np.ndarray:
    with np.load(folder / "predictions.npz") as npz:
        return npz["logits"]


def _arrays(folder: Path) -> dict[str, bytes]:
    with np.load(folder / "predictions.npz") as npz:
        return {key: npz[key].tobytes() for key in npz.files}


def _separate(sweep: Path, tmp_path: Path, name: str) -> Path:
    """A new sweep folder sharing ``sweep``'s finished teacher."""
    other = tmp_path / name
    (other / "runs").mkdir(parents=True)
    (other / "runs" / "teacher_s0").symlink_to(sweep / "runs" / "teacher_s0")
    return other


def test_fused_lockstep_matches_unfused(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2 KD students fused, 1 feature-KD student falls back (said once); results agree within TOL."""

    def runs(train: dict) -> list:  # noqa: ANN001
        kd = [run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t, train=train) for t in (1.0, 8.0)]
        return [*kd, run_config("ds_fkd_T4_a0.8_s0", method="fkd", train=train)]

    fused = execute(runs(FUSED), sweep, device="cpu", progress=False)
    printed = capsys.readouterr().out
    assert printed.count("fuse_students:") == 1, printed
    assert (
        "fuse_students: 2 student(s) fused; trained unfused as today's lockstep: ds_fkd_T4_a0.8_s0" in printed
    )
    assert "method 'fkd' is not fusable" in printed
    plain = execute(runs({}), _separate(sweep, tmp_path, "plain"), device="cpu", progress=False)

    for mine, theirs, size in zip(fused, plain, (2, 2, 0), strict=True):
        rows, ref_rows = _epochs(mine), _epochs(theirs)
        assert [r["fused_students"] for r in rows] == [str(size)] * 2 and "fused_students" not in ref_rows[0]
        for row, ref in zip(rows, ref_rows, strict=True):
            for key in ("train_loss", "train_acc", "train_kd", "train_ce"):
                if key in ref:
                    assert float(row[key]) == pytest.approx(float(ref[key]), abs=TOL), key
        assert read_run_meta(mine).settings["fused_students"] == size
        assert "fused_students" not in read_run_meta(theirs).settings
        assert json.loads((mine / "config.json").read_text())["train"]["fuse_students"] is True
        np.testing.assert_allclose(_logits(mine), _logits(theirs), atol=TOL, rtol=0)
        state, ref_state = (torch.load(f / "checkpoint.pt", weights_only=False) for f in (mine, theirs))
        assert torch.equal(state["rng"], ref_state["rng"])  # no random numbers drawn, fused or not
        for name, value in ref_state["model"].items():
            torch.testing.assert_close(state["model"][name], value, atol=TOL, rtol=0, msg=name)
        for ref_param, param in zip(
            ref_state["optimizer"]["state"].values(), state["optimizer"]["state"].values(), strict=True
        ):
            torch.testing.assert_close(
                param["momentum_buffer"], ref_param["momentum_buffer"], atol=TOL, rtol=0
            )
        assert state["optimizer"]["param_groups"] == ref_state["optimizer"]["param_groups"]
        assert state["scheduler"] == ref_state["scheduler"]
    assert _arrays(fused[2]) == _arrays(plain[2])  # the unfused student: bit for bit as today


def test_teacher_and_nds_runs_are_not_fused(sweep: Path, tmp_path: Path) -> None:
    """``fuse_students`` is about distilled students: an NDS run trains as today, bit for bit, and says so."""
    fused = run_config("nds_s0", role="nds", train=FUSED)
    (folder,) = execute([fused], sweep, device="cpu", progress=False)
    (plain,) = execute([run_config("nds_s0", role="nds")], tmp_path / "plain", device="cpu", progress=False)
    assert _arrays(folder) == _arrays(plain)
    assert (
        read_run_meta(folder).settings["fused_students"] == 0 and "fused_students" not in _epochs(folder)[0]
    )


def _model_states(folders: list[Path]) -> list[dict[str, torch.Tensor]]:
    return [torch.load(f / "checkpoint.pt", weights_only=False)["model"] for f in folders]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[name].double() - b[name].double()).abs().max()) for name in a)


def test_fused_resnet_students_match_unfused(sweep: Path, tmp_path: Path) -> None:
    """Grouped convolutions, per-student BatchNorm and option-A shortcuts in a real lockstep unit.

    ResNet training amplifies round-off: the layout change of unfused channels_last against unfused NCHW
    alone moves the parameters by ~2e-3 after 3 steps. So the fused run (channels_last inside) is held to
    unfused channels_last at 1e-4 (measured 2e-5), and to NCHW no further than that layout change.
    """

    def runs(train: dict) -> list:  # noqa: ANN001
        train = {"epochs": 1, **train}
        return [
            run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t, model={"name": "resnet20"}, train=train)
            for t in (2.0, 4.0)
        ]

    fused = execute(runs(FUSED), sweep, device="cpu", progress=False)
    layout = execute(
        runs({"channels_last": True}), _separate(sweep, tmp_path, "cl"), device="cpu", progress=False
    )
    plain = execute(runs({}), _separate(sweep, tmp_path, "plain"), device="cpu", progress=False)
    for mine, same_layout, theirs in zip(fused, layout, plain, strict=True):
        state, ref, nchw = _model_states([mine, same_layout, theirs])
        assert int(state["bn1.num_batches_tracked"]) == int(ref["bn1.num_batches_tracked"]) == 3
        assert _max_difference(state, ref) < 1e-4
        assert _max_difference(state, nchw) < 2 * _max_difference(ref, nchw)
        row, ref_row = _epochs(mine)[0], _epochs(same_layout)[0]
        for key in ("train_loss", "train_kd", "train_ce"):
            assert float(row[key]) == pytest.approx(float(ref_row[key]), abs=TOL), key
        np.testing.assert_allclose(_logits(mine), _logits(same_layout), atol=1e-2, rtol=0)  # logits ~15


def _killed(runs: list, sweep: Path, tmp_path: Path, crash_at: str) -> None:
    spec = tmp_path / "runs.json"
    spec.write_text(json.dumps([json.loads(r.model_dump_json()) for r in runs]))
    env = {**os.environ, "KDFAIR_CRASH_AT": crash_at}
    command = [sys.executable, str(HERE / "standin.py"), str(spec), str(sweep)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr


def test_fused_resume_after_kill_is_bit_identical(sweep: Path, tmp_path: Path) -> None:
    """Killed after the first student's 2nd epoch: the second catches up epoch 2 alone, fused at size 2."""
    runs = [
        run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t, train={"epochs": 3, **FUSED}) for t in (1.0, 4.0)
    ]
    reference = execute(runs, _separate(sweep, tmp_path, "reference"), device="cpu", progress=False)
    _killed(runs, sweep, tmp_path, f"epoch:{runs[0].run_id}:2")
    folders = [sweep / "runs" / r.run_id for r in runs]
    assert [torch.load(f / "checkpoint.pt", weights_only=False)["epoch"] for f in folders] == [2, 1]
    resumed = execute(runs, sweep, device="cpu", progress=False)
    assert [_arrays(f) for f in resumed] == [_arrays(f) for f in reference]
    assert [r["fused_students"] for r in _epochs(resumed[1])] == ["2", "2", "2"]


class _Stop(Exception):
    pass


def test_unfused_folder_resumes_fused(sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped unfused continues fused (today's checkpoint format either way), within round-off.

    Stopped in-process by an exception at the crash point (the SIGKILL path is the test above).
    """
    runs = [run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t, train={"epochs": 3}) for t in (1.0, 4.0)]
    reference = execute(runs, _separate(sweep, tmp_path, "reference"), device="cpu", progress=False)

    def stop_at(name: str) -> None:
        if name == f"epoch:{runs[1].run_id}:1":
            raise _Stop

    with monkeypatch.context() as patch:
        patch.setattr(lockstep, "crash_point", stop_at)
        with pytest.raises(_Stop):
            execute(runs, sweep, device="cpu", progress=False)
    fused = [r.model_copy(update={"train": r.train.model_copy(update=FUSED)}) for r in runs]
    resumed = execute(fused, sweep, device="cpu", progress=False)
    for mine, theirs in zip(resumed, reference, strict=True):
        np.testing.assert_allclose(_logits(mine), _logits(theirs), atol=TOL, rtol=0)
        assert [r.get("fused_students") for r in _epochs(mine)] == ["", "2", "2"]
        assert json.loads((mine / "config.json").read_text())["train"]["fuse_students"] is True


def test_config_json_without_newer_keys_still_resumes(tmp_path: Path) -> None:
    """A config.json written before keys with defaults existed (fuse_students, schedule) matches its run."""
    config = run_config("ds_kd_T4_a0.8_s0")
    old = json.loads(config.model_dump_json())
    for key in ("fuse_students", "schedule", "warmup_epochs"):
        del old["train"][key]
    folder = RunFolder(tmp_path, config.run_id)
    folder.path.mkdir(parents=True)
    (folder.path / "config.json").write_text(json.dumps(old))
    folder.start(config, "cpu")  # no ConfigError
    assert json.loads((folder.path / "config.json").read_text())["train"]["fuse_students"] is False
    folder.start(config.model_copy(update={"train": config.train.model_copy(update=FUSED)}), "cpu")
    with pytest.raises(ConfigError, match="different config"):
        folder.start(config.model_copy(update={"train": config.train.model_copy(update={"lr": 0.2})}), "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fused_students_on_cuda_match_unfused(sweep: Path, tmp_path: Path) -> None:
    """On CUDA in fp32 (TF32 off: true float32 sums), fused LeNet-5 and ResNet students match unfused ones;
    in the default bf16 + channels_last they train to finite predictions and record their fusion."""
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            for model, tolerance in (("lenet5", TOL), ("resnet20", 1e-3)):
                _check_fp32_on_cuda(sweep, tmp_path, model, tolerance)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    bf16 = [run_config(f"ds_kd_T{t}_a0.8_bf16", temperature=t, train=FUSED) for t in (2.0, 4.0)]
    for folder in execute(bf16, sweep, device="cuda", progress=False):
        assert read_run_meta(folder).settings["precision"] == "bf16"
        assert np.isfinite(_logits(folder)).all() and _epochs(folder)[0]["fused_students"] == "2"


def _check_fp32_on_cuda(sweep: Path, tmp_path: Path, model: str, tolerance: float) -> None:
    train = {"epochs": 1, "precision": "fp32", "channels_last": True}
    runs = [
        run_config(f"ds_kd_T{t}_a0.8_{model}", temperature=t, model={"name": model}, train=train)
        for t in (2.0, 4.0)
    ]
    fused_runs = [r.model_copy(update={"train": r.train.model_copy(update=FUSED)}) for r in runs]
    fused = execute(fused_runs, sweep, device="cuda", progress=False)
    plain = execute(runs, _separate(sweep, tmp_path, f"plain_{model}"), device="cuda", progress=False)
    for mine, theirs in zip(fused, plain, strict=True):
        state, ref = _model_states([mine, theirs])
        assert _max_difference(state, ref) < tolerance, model
        assert read_run_meta(mine).settings["fused_students"] == 2
