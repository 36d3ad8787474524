"""The sweep's closing audit (kdfair.sweep.finish) reads only the finished runs of its own plan: a planned run
without DONE (a failed unit's half-written folder) and a folder of an earlier config under runs/ are left out
by name, in the log and in audit.json, instead of failing the audit (kdfair.discovery) or being audited.

The run folders are synthetic predictions (kdfair.synthetic) named as the plan of the tiny sweep config names
them, so no training is needed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from sweep_helpers import TINY, merged

from kdfair.discovery import FINISHED_LATER
from kdfair.report.source import resolve_audit_dir
from kdfair.sweep.config import parse_sweep_config
from kdfair.sweep.expand import SubSweep, expand
from kdfair.sweep.finish import NOT_FINISHED, NOT_PLANNED, finish_subsweep, planned_runs
from kdfair.synthetic import make_synthetic_sweep

SEEDS = [0, 1, 2]  # three seeds: a condition keeps two (a Welch test) when one run is left out


def tiny_plan(out: Path) -> SubSweep:
    """The plan of the tiny sweep with 3 seeds (teacher, NDS, DS kd at T = 1 and 4), and its runs written as
    finished synthetic runs (run.json, predictions.npz and DONE, as the trainer leaves them)."""
    config = parse_sweep_config(merged(TINY, seeds=SEEDS), "tiny.yaml", check=False)
    (sub,) = expand(config, out).subsweeps
    make_synthetic_sweep(out, n_classes=4, n_samples=120, seeds=SEEDS, temperatures=[1, 4], seed=5)
    return sub


def audit_json(sub: SubSweep) -> dict:
    return json.loads((sub.out_dir / "audit" / "audit.json").read_text())


def test_every_planned_run_finished(tmp_path: Path) -> None:
    sub = tiny_plan(tmp_path / "out")
    lines: list[str] = []
    finish_subsweep(sub, audit=True, report=False, log=lines.append)
    assert lines[0] == f"audit: {sub.out_dir / 'audit'}"
    meta = audit_json(sub)
    planned = sorted(f"runs/{run_id}" for unit in sub.units for run_id in unit.run_ids)
    assert len(planned) == 12 and meta["options"]["run_dirs"] == planned
    assert meta["n_runs"] == 12 and meta["skipped_runs"] == []
    assert meta["options"]["level"] == 0.05 and meta["options"]["representation"] == "auto"


def test_a_sweep_folder_given_relative_to_the_working_directory_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: `kdfair sweep ... --out experiments_out/x` passed the run folders relative to the working
    # directory to an audit that reads them below the sweep folder (experiments_out/x/experiments_out/x/...)
    monkeypatch.chdir(tmp_path)
    sub = tiny_plan(Path("experiments_out") / "x")
    assert not sub.out_dir.is_absolute()
    lines: list[str] = []
    finish_subsweep(sub, audit=True, report=False, log=lines.append)
    assert lines == [f"audit: {sub.out_dir / 'audit'}"]
    meta = audit_json(sub)
    assert meta["n_runs"] == 12 and meta["skipped_runs"] == []
    assert meta["options"]["run_dirs"][0] == "runs/ds_kd_T1_a0.8_s0"


def test_unfinished_and_unplanned_folders_are_left_out_by_name(tmp_path: Path) -> None:
    sub = tiny_plan(tmp_path / "out")
    runs = sub.out_dir / "runs"
    half = runs / "ds_kd_T4_a0.8_s2"  # a failed unit: killed after predictions.npz, before run.json
    (half / "run.json").unlink()
    (half / "DONE").unlink()
    unmarked = runs / "nds_s2"  # killed after run.json, before DONE: not finished either
    (unmarked / "DONE").unlink()
    old = runs / "ds_kd_T8_a0.8_s0"  # a run of an earlier config (T = 8 is no longer planned)
    shutil.copytree(runs / "ds_kd_T4_a0.8_s0", old)
    lines: list[str] = []
    finish_subsweep(sub, audit=True, report=False, log=lines.append)
    assert lines == [
        f"audit: 2 run folder(s) left out, {NOT_FINISHED}: nds_s2, ds_kd_T4_a0.8_s2",
        f"audit: 1 run folder(s) left out, {NOT_PLANNED}: ds_kd_T8_a0.8_s0",
        f"audit: {sub.out_dir / 'audit'}",
    ]
    meta = audit_json(sub)
    assert meta["n_runs"] == 10
    assert meta["n_seeds"] == {"teacher": 3, "nds": 2, "ds_kd_T1_a0.8": 3, "ds_kd_T4_a0.8": 2}
    assert "runs/nds_s2" not in meta["options"]["run_dirs"] and len(meta["options"]["run_dirs"]) == 10
    assert meta["skipped_runs"] == [
        {"folder": str(unmarked), "reason": NOT_FINISHED},
        {"folder": str(half), "reason": NOT_FINISHED},
        {"folder": str(old), "reason": NOT_PLANNED},
    ]


def test_a_report_re_audit_keeps_the_folders_the_sweep_left_out(tmp_path: Path) -> None:
    # Regression: `kdfair report <sweep>` on an out-of-date sweep audit re-audited the recorded run_dirs and
    # dropped the skipped_runs entries of the sweep's plan, which no discovery can find again
    sub = tiny_plan(tmp_path / "out")
    runs = sub.out_dir / "runs"
    (runs / "nds_s2" / "DONE").unlink()
    shutil.copytree(runs / "ds_kd_T4_a0.8_s0", runs / "ds_kd_T8_a0.8_s0")  # not planned
    finish_subsweep(sub, audit=True, report=False, log=lambda _: None)
    moved = tmp_path / "moved"  # the sweep folder copied elsewhere: its entries follow it
    shutil.move(sub.out_dir, moved)
    (moved / "runs" / "nds_s2" / "DONE").write_text("")  # finished after the sweep's audit
    later = (moved / "audit" / "audit.json").stat().st_mtime + 10
    os.utime(moved / "runs" / "nds_s0" / "predictions.npz", (later, later))  # makes the audit out of date
    lines: list[str] = []
    assert resolve_audit_dir(moved, log=lines.append) == moved / "audit"
    assert "is out of date (1 input file(s) changed" in lines[0]
    expected = [
        (moved / "runs" / "nds_s2", FINISHED_LATER),
        (moved / "runs" / "ds_kd_T8_a0.8_s0", NOT_PLANNED),
    ]
    assert lines[1:] == [f"skipped incomplete run folder {folder}: {reason}" for folder, reason in expected]
    meta = json.loads((moved / "audit" / "audit.json").read_text())
    assert meta["skipped_runs"] == [{"folder": str(folder), "reason": reason} for folder, reason in expected]
    assert meta["n_runs"] == 11 and "runs/nds_s2" not in meta["options"]["run_dirs"]


def test_planned_runs_reads_the_done_markers(tmp_path: Path) -> None:
    sub = tiny_plan(tmp_path / "out")
    for run_dir in (sub.out_dir / "runs").iterdir():
        if run_dir.name.startswith("ds_"):
            shutil.rmtree(run_dir)  # the DS units never ran
    finished, left_out = planned_runs(sub)
    assert sorted(d.name for d in finished) == [f"{role}_s{s}" for role in ("nds", "teacher") for s in SEEDS]
    assert sorted((s.folder.name, s.reason) for s in left_out) == [
        (f"ds_kd_T{t}_a0.8_s{s}", NOT_FINISHED) for t in (1, 4) for s in SEEDS
    ]


def test_no_finished_run_skips_the_audit(tmp_path: Path) -> None:
    sub = tiny_plan(tmp_path / "out")
    for done in (sub.out_dir / "runs").rglob("DONE"):
        done.unlink()
    lines: list[str] = []
    finish_subsweep(sub, audit=True, report=False, log=lines.append)
    assert lines[-1] == f"audit skipped: none of the planned runs in {sub.out_dir / 'runs'} is finished"
    assert not (sub.out_dir / "audit").exists()


@pytest.mark.parametrize("representation", ["input", "none"])
def test_the_configured_representation_is_recorded_as_asked(tmp_path: Path, representation: str) -> None:
    """``input`` is recorded as the keyword (the sweep folder's representation.npz), not as a path."""
    sub = tiny_plan(tmp_path / "out")
    audit = sub.config.audit.model_copy(update={"representation": representation})
    config = sub.config.model_copy(update={"audit": audit})
    sub = SubSweep(key=sub.key, out_dir=sub.out_dir, config=config, units=sub.units)
    finish_subsweep(sub, audit=True, report=False, log=lambda _: None)
    meta = audit_json(sub)
    assert meta["options"]["representation"] == representation
    assert meta["individual_fairness"]["space"] == representation  # the kNN pairs' space: input or none
