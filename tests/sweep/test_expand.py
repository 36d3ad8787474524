"""Sweep expansion: run ids, roles, teacher links, lockstep units, dependencies and sub-sweep folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import TINY, merged

from kdfair.errors import ConfigError
from kdfair.sweep.config import parse_sweep_config
from kdfair.sweep.expand import expand


def _plan(tmp_path: Path, lockstep: bool = True, **changes: object):
    return expand(parse_sweep_config(merged(TINY, **changes), check=False), tmp_path, lockstep=lockstep)


def test_run_ids_and_unit_order(tmp_path: Path) -> None:
    plan = _plan(tmp_path, distill={"temperatures": [1, 2.5], "alphas": [0.8, 1]})
    ids = [u.unit_id for u in plan.units]
    assert ids == ["teacher_s0", "teacher_s1", "nds_s0", "nds_s1", "ds_s0", "ds_s1"]
    ds0 = plan.units[4]
    assert ds0.run_ids == [
        "ds_kd_T1_a0.8_s0",
        "ds_kd_T1_a1_s0",
        "ds_kd_T2.5_a0.8_s0",
        "ds_kd_T2.5_a1_s0",
    ]
    assert ds0.depends_on == ("teacher_s0",) and plan.units[5].depends_on == ("teacher_s1",)
    assert plan.units[0].depends_on == () and plan.units[2].depends_on == ()
    assert len(plan.runs) == 2 + 2 + 2 * 4 and len({r.run_id for r in plan.runs}) == len(plan.runs)
    assert all(u.sweep_dir == tmp_path for u in plan.units)


def test_ds_runs_learn_from_the_teacher_of_their_seed(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    for run in plan.runs:
        if run.role == "ds":
            assert run.teacher is not None and run.teacher.kind == "run"
            assert run.teacher.run_id == f"teacher_s{run.seed}"
            assert run.model.name == "lenet5" and run.method == "kd" and run.alpha == 0.8
        else:
            assert run.method == "ce" and run.teacher is None and run.temperature is None


def test_teacher_train_applies_to_teachers_only(tmp_path: Path) -> None:
    plan = _plan(tmp_path, teacher_train={"epochs": 5})
    epochs = {run.run_id: run.train.epochs for run in plan.runs}
    assert epochs["teacher_s0"] == 5 and epochs["nds_s0"] == 2 and epochs["ds_kd_T4_a0.8_s1"] == 2


def test_no_lockstep_gives_one_unit_per_ds_run(tmp_path: Path) -> None:
    plan = _plan(tmp_path, lockstep=False)
    ds_units = [u for u in plan.units if u.runs[0].role == "ds"]
    assert [u.unit_id for u in ds_units] == [
        "ds_kd_T1_a0.8_s0",
        "ds_kd_T4_a0.8_s0",
        "ds_kd_T1_a0.8_s1",
        "ds_kd_T4_a0.8_s1",
    ]
    assert all(len(u.runs) == 1 for u in ds_units)
    assert [u.depends_on for u in ds_units] == [("teacher_s0",)] * 2 + [("teacher_s1",)] * 2


def test_without_nds_and_with_checkpoint_teacher(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        include_nds=False,
        teacher={"model": "resnet20", "source": "checkpoint", "path": "teachers/t_s{seed}.pt"},
    )
    assert [u.unit_id for u in plan.units] == ["ds_s0", "ds_s1"]
    assert all(u.depends_on == () for u in plan.units)
    run = plan.units[1].runs[0]
    assert run.teacher is not None and run.teacher.kind == "checkpoint" and run.teacher.model is not None
    assert (
        run.teacher.path == str(Path("teachers/t_s1.pt").resolve()) and run.teacher.model.name == "resnet20"
    )


def test_grid_over_data_and_pairs_gives_sub_sweeps(tmp_path: Path) -> None:
    raw = dict(TINY)
    raw.pop("teacher"), raw.pop("student")
    raw["data"] = [TINY["data"], {"name": "cifar10", "root": "data/cifar10"}]
    raw["pairs"] = [
        {"teacher": {"model": "resnet20"}, "student": {"model": "lenet5"}},
        {"teacher": {"model": "resnet56"}, "student": {"model": "resnet20"}},
    ]
    raw["seeds"] = [0]
    plan = expand(parse_sweep_config(raw, check=False), tmp_path)
    keys = [s.key for s in plan.subsweeps]
    assert keys == [
        "trifeature__resnet20-lenet5",
        "trifeature__resnet56-resnet20",
        "cifar10__resnet20-lenet5",
        "cifar10__resnet56-resnet20",
    ]
    for sub in plan.subsweeps:
        assert sub.out_dir == tmp_path / sub.key
        assert sub.config.pairs is None and sub.config.data_list[0].name == sub.key.split("__")[0]
        assert all(u.unit_id.startswith(sub.key + "/") and u.sweep_dir == sub.out_dir for u in sub.units)
    assert [u.unit_id for u in plan.units[:4]] == [f"{k}/teacher_s0" for k in keys]
    ds = [u for u in plan.units if u.unit_id.endswith("/ds_s0")]
    assert [u.depends_on for u in ds] == [(f"{k}/teacher_s0",) for k in keys]


def test_grid_entries_with_the_same_folder_are_an_error(tmp_path: Path) -> None:
    raw = merged(TINY, data=[TINY["data"], {**TINY["data"], "options": {"image_size": 32}}])
    with pytest.raises(ConfigError, match="share the sub-sweep folder trifeature__lenet5-lenet5"):
        expand(parse_sweep_config(raw, check=False), tmp_path)


def test_status_from_disk(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    unit = plan.units[4]
    assert unit.status() == "pending"
    (tmp_path / "runs" / unit.run_ids[0]).mkdir(parents=True)
    assert unit.status() == "partial"
    for run_id in unit.run_ids:
        (tmp_path / "runs" / run_id).mkdir(parents=True, exist_ok=True)
        (tmp_path / "runs" / run_id / "DONE").write_text("")
    assert unit.status() == "done" and unit.unfinished() == []


def test_black_box_teachers_are_named_by_their_outputs_file(tmp_path: Path) -> None:
    raw = dict(TINY)
    raw.pop("teacher"), raw.pop("student")
    raw["pairs"] = [
        {"teacher": {"source": "outputs", "path": "t/flava_celeba.npz"}, "student": {"model": "lenet5"}},
        {"teacher": {"source": "outputs", "path": "t/clip_r50_s{seed}.npz"}, "student": {"model": "lenet5"}},
    ]
    plan = expand(parse_sweep_config(raw, check=False), tmp_path)
    assert [s.key for s in plan.subsweeps] == [
        "trifeature__flava_celeba-lenet5",
        "trifeature__clip_r50_s-lenet5",
    ]
    run = plan.subsweeps[1].units[-1].runs[0]
    assert run.teacher is not None and run.teacher.kind == "outputs"
    assert run.teacher.path == str(Path("t/clip_r50_s1.npz").resolve()) and run.seed == 1


def test_dry_run_prints_the_grid_plan(tmp_path: Path) -> None:
    from sweep_helpers import run_cli, write_config

    raw = merged(TINY, seeds=[0], data=[TINY["data"], {"name": "cifar10", "root": str(tmp_path)}])
    status, _, stderr = run_cli("sweep", str(write_config(tmp_path, raw)), "--dry-run")
    assert status == 2 and ": data[1].root: data set 'cifar10': missing " in stderr  # checked before planning
    raw = merged(TINY, seeds=[0])
    raw.pop("teacher"), raw.pop("student")
    raw["pairs"] = [
        {"teacher": {"model": "lenet5"}, "student": {"model": "lenet5"}},
        {"teacher": {"model": "resnet20"}, "student": {"model": "lenet5"}},
    ]
    out = tmp_path / "o"
    status, stdout, _ = run_cli("sweep", str(write_config(tmp_path, raw)), "--out", str(out), "--dry-run")
    lines = stdout.splitlines()
    assert status == 0 and lines[0] == f"sweep tiny: 8 runs in 6 units -> {out}"
    assert lines[1:3] == [
        f"sub-sweep trifeature__lenet5-lenet5 -> {out / 'trifeature__lenet5-lenet5'}",
        f"sub-sweep trifeature__resnet20-lenet5 -> {out / 'trifeature__resnet20-lenet5'}",
    ]
    assert lines[3] == "[1/6] pending trifeature__lenet5-lenet5/teacher_s0: teacher_s0"
    assert lines[-1].endswith("(after trifeature__resnet20-lenet5/teacher_s0)")
    assert not out.exists()
