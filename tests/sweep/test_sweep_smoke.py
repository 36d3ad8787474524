"""End to end on the CPU: a tiny sweep trains, audits and reports; a re-run skips; 2 workers = serial."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sweep_helpers import (
    TINY,
    assert_unit_progress,
    merged,
    predictions_equal,
    run_cli,
    temporary_files,
    write_config,
)

from kdfair.sweep.config import load_sweep_config

RUN_IDS = [
    "teacher_s0", "teacher_s1", "nds_s0", "nds_s1",
    "ds_kd_T1_a0.8_s0", "ds_kd_T4_a0.8_s0", "ds_kd_T1_a0.8_s1", "ds_kd_T4_a0.8_s1",
]  # fmt: skip


def test_smoke_sweep_produces_audited_predictions(reference: tuple[Path, str]) -> None:
    out, stdout = reference
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(RUN_IDS)
    for run_id in RUN_IDS:
        run = out / "runs" / run_id
        assert (run / "DONE").is_file() and (run / "predictions.npz").is_file()
        meta = json.loads((run / "run.json").read_text())
        assert meta["role"] == run_id.split("_")[0] and meta["seed"] == int(run_id[-1])
    assert temporary_files(out) == []
    with open(out / "audit" / "significance_counts.csv", newline="") as handle:
        rows = {row["condition"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["ds_kd_T1_a0.8", "ds_kd_T4_a0.8"]
    for row in rows.values():
        assert row["n_seeds"] == "2" and row["n_classes"] == "10" and float(row["level"]) == 0.05
        assert 0 <= int(row["sc"]) <= 10 and 0 <= int(row["tc"]) <= 10
    audit = json.loads((out / "audit" / "audit.json").read_text())
    assert audit["n_runs"] == 8
    assert (out / "representation.npz").is_file() and not (out / "report").exists()
    assert load_sweep_config(out / "sweep.yaml") == load_sweep_config(out.parent / "config.yaml")
    assert json.loads((out / "environment.json").read_text())["versions"]["kdfair"]
    lines = stdout.splitlines()
    assert lines[0].startswith("sweep tiny: 8 runs in 6 units -> ")
    assert [line.split()[0] for line in lines if " start " in line] == [f"[{i}/6]" for i in range(1, 7)]
    assert f"audit: {out / 'audit'}" in lines and not any(line.startswith("report:") for line in lines)


def test_rerun_skips_finished_runs_then_audits_and_reports(
    reference: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = reference
    config = out.parent / "config.yaml"
    stamps = {r: (out / "runs" / r / "predictions.npz").stat().st_mtime_ns for r in RUN_IDS}
    status, stdout, _ = run_cli("sweep", str(config), "--out", str(out), "--dry-run")
    assert status == 0
    assert (
        "[5/6] done    ds_s0: ds_kd_T1_a0.8_s0, ds_kd_T4_a0.8_s0  (after teacher_s0)" in stdout.splitlines()
    )
    built: list[tuple[Path, Path]] = []
    monkeypatch.setattr(
        "kdfair.report.build_report", lambda audit_dir, out_dir: built.append((audit_dir, out_dir))
    )
    status, stdout, _ = run_cli("sweep", str(config), "--out", str(out))
    assert status == 0
    assert stdout.count("] done already: ") == 6 and " start " not in stdout
    assert "units: 0 trained, 6 done already, 0 failed" in stdout
    assert built == [(out / "audit", out / "report")] and stdout.endswith(f"report: {out / 'report'}\n")
    assert stamps == {r: (out / "runs" / r / "predictions.npz").stat().st_mtime_ns for r in RUN_IDS}


def test_two_workers_give_the_same_predictions_as_serial(
    reference: tuple[Path, str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ref, _ = reference
    config = write_config(tmp_path, merged(TINY, seeds=[0]))
    status, stdout, err = run_cli(
        "sweep", str(config), "--out", str(tmp_path / "out"), "--workers", "2", "--no-audit"
    )
    assert status == 0, err
    runs = sorted(p.name for p in (tmp_path / "out" / "runs").iterdir())
    assert runs == ["ds_kd_T1_a0.8_s0", "ds_kd_T4_a0.8_s0", "nds_s0", "teacher_s0"]
    for run_id in runs:
        assert (
            predictions_equal(
                tmp_path / "out/runs" / run_id / "predictions.npz", ref / "runs" / run_id / "predictions.npz"
            )
            == []
        )
    lines = stdout.splitlines()
    assert lines.index("[1/3] start teacher_s0 (teacher_s0)") < lines.index("[2/3] start nds_s0 (nds_s0)")
    assert any(
        line.startswith("[1/3] finished teacher_s0")
        for line in lines[: lines.index(next(l for l in lines if l.startswith("[3/3] start")))]
    )
    # what the user sees without per-epoch bars: unit lines with counts and times, a bar over units,
    # and one line per epoch from the workers (their stdout is the terminal's)
    assert_unit_progress(lines, err, 3)
    workers = capfd.readouterr().out.splitlines()
    for run in ("teacher_s0", "nds_s0", "ds_kd_T1_a0.8_s0,ds_kd_T4_a0.8_s0"):
        for epoch in (1, 2):
            assert any(x.startswith(f"{run} epoch {epoch}/2: loss ") and x.endswith(" s") for x in workers), (
                run
            )
