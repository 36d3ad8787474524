"""The shared scheduler of all executors, on a fake backend: order, dependencies, skips and failures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sweep_helpers import TINY

from kdfair.sweep import executors
from kdfair.sweep.config import parse_sweep_config
from kdfair.sweep.executors import run_units, schedule, threads_per_worker
from kdfair.sweep.expand import Unit, expand


class FakeBackend:
    """Finishes units in submission order, writing DONE for each run unless the unit is set to fail."""

    def __init__(self, fail: set[str] = frozenset(), batch: int = 1) -> None:
        self.fail, self.batch, self.capacity = fail, batch, batch
        self.submitted: list[str] = []
        self.queue: list[Unit] = []

    def submit(self, unit: Unit) -> str:
        self.submitted.append(unit.unit_id)
        self.queue.append(unit)
        return unit.unit_id

    def wait(self, handles: list[Any]) -> list[tuple[Any, BaseException | None]]:
        done, self.queue = self.queue[: self.batch], self.queue[self.batch :]
        out = []
        for unit in done:
            if unit.unit_id in self.fail:
                out.append((unit.unit_id, ValueError(f"boom in {unit.unit_id}\nsecond line")))
                continue
            for run_id in unit.run_ids:
                unit.run_dir(run_id).mkdir(parents=True, exist_ok=True)
                (unit.run_dir(run_id) / "DONE").write_text("")
            out.append((unit.unit_id, None))
        return out

    def close(self) -> None:
        pass


def _units(tmp_path: Path) -> list[Unit]:
    return expand(parse_sweep_config(TINY, check=False), tmp_path).units


def test_runs_every_unit_once_teachers_before_their_students(tmp_path: Path) -> None:
    lines: list[str] = []
    backend = FakeBackend(batch=2)
    results = schedule(_units(tmp_path), backend, lines.append)
    assert [r.status for r in results] == ["done"] * 6
    order = backend.submitted
    assert sorted(order) == sorted(u.unit_id for u in _units(tmp_path)) and len(order) == 6
    assert order.index("ds_s0") > order.index("teacher_s0") and order.index("ds_s1") > order.index(
        "teacher_s1"
    )
    assert "[5/6] start ds_s0 (2 runs in lockstep: ds_kd_T1_a0.8_s0 ... ds_kd_T4_a0.8_s0)" in lines
    assert any(line.startswith("[1/6] finished teacher_s0 in ") for line in lines)


def test_finished_units_are_skipped_on_a_rerun(tmp_path: Path) -> None:
    schedule(_units(tmp_path), FakeBackend(), lambda _: None)
    again = FakeBackend()
    lines: list[str] = []
    results = schedule(_units(tmp_path), again, lines.append)
    assert again.submitted == [] and [r.status for r in results] == ["skipped"] * 6
    assert lines[0] == "[1/6] done already: teacher_s0"


def test_a_failed_teacher_blocks_only_its_students(tmp_path: Path) -> None:
    lines: list[str] = []
    backend = FakeBackend(fail={"teacher_s1"})
    results = {r.unit_id: r for r in schedule(_units(tmp_path), backend, lines.append)}
    assert results["teacher_s1"].status == "failed"
    assert results["teacher_s1"].error == "ValueError: boom in teacher_s1"
    assert results["teacher_s1"].unfinished == ("teacher_s1",)
    assert results["ds_s1"].status == "blocked" and "ds_s1" not in backend.submitted
    assert [results[u].status for u in ("teacher_s0", "nds_s0", "nds_s1", "ds_s0")] == ["done"] * 4
    assert "[2/6] FAILED teacher_s1 (unfinished runs: teacher_s1): ValueError: boom in teacher_s1" in lines
    assert "[6/6] not started ds_s1: teacher_s1, which it needs, failed" in lines


def test_a_failed_lockstep_unit_names_its_unfinished_runs(tmp_path: Path) -> None:
    units = _units(tmp_path)
    first = units[4].run_ids[0]
    (units[4].run_dir(first)).mkdir(parents=True)
    (units[4].run_dir(first) / "DONE").write_text("")
    results = {r.unit_id: r for r in schedule(units, FakeBackend(fail={"ds_s0"}), lambda _: None)}
    assert results["ds_s0"].unfinished == ("ds_kd_T4_a0.8_s0",)


def test_unknown_dependency_is_an_error(tmp_path: Path) -> None:
    unit = _units(tmp_path)[4]
    with pytest.raises(ValueError, match="not in the plan: teacher_s0"):
        schedule([unit], FakeBackend(), lambda _: None)


def test_threads_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kdfair.sweep.worker.available_cores", lambda: 16)
    assert [threads_per_worker(n) for n in (1, 2, 3, 16, 32)] == [16, 8, 5, 1, 1]


def test_finish_lines_count_done_units_and_the_bar_counts_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    units = _units(tmp_path)
    units[2].run_dir(units[2].run_ids[0]).mkdir(parents=True)  # nds_s0 done already
    (units[2].run_dir(units[2].run_ids[0]) / "DONE").write_text("")
    schedule(units, FakeBackend(batch=2), lines.append, progress="bar")
    finished = [re.fullmatch(r"\[\d/6\] finished (\S+) in [\d.]+ s \((\d)/6 units done, \d+ s elapsed\)", x)
                for x in lines if " finished " in x]  # fmt: skip
    assert all(finished) and len(finished) == 5
    assert [int(m.group(2)) for m in finished] == [1, 2, 4, 5, 6]  # the skipped nds_s0 counts as done (3)
    err = capsys.readouterr().err
    assert "units:   0%|" in err and re.search(r"units: 100%\|[^|]*\| 6/6 ", err), err


def test_units_bar_only_when_units_train_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def record(units: list[Unit], backend: Any, log: Any, progress: str | None) -> list:
        seen.append(progress)
        return []

    monkeypatch.setattr(executors, "schedule", record)
    monkeypatch.setattr(executors, "_LocalBackend", lambda *args: FakeBackend())
    run_units([], executor="local", workers=1, progress="bar")  # this process: a bar per epoch instead
    run_units([], executor="local", workers=2, progress="bar")
    run_units([], executor="local", workers=2, progress=False)
    run_units([], executor="local", workers=1, progress="lines")  # plain lines never collide
    assert seen == [None, "bar", None, "lines"]


def test_worker_backends_print_a_line_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple] = []
    monkeypatch.setattr(executors, "_LocalBackend", lambda *args: made.append(args) or FakeBackend())
    executors._make_backend("local", 2, None, "cpu", "bar")
    executors._make_backend("local", 2, None, "cpu", "lines")
    executors._make_backend("local", 2, None, "cpu", None)
    assert made == [(2, "cpu", "lines"), (2, "cpu", "lines"), (2, "cpu", False)]
    assert executors._make_backend("serial", 1, None, None, "bar").progress is True
    assert executors._make_backend("serial", 1, None, None, "lines").progress == "lines"


def test_the_closing_count_names_blocked_units_only_when_there_are_some(capsys) -> None:
    # Regression: "0 not started (teacher failed)" on every sweep read as if a teacher had failed
    from kdfair.sweep.cli import _summarise

    ok = [executors.UnitResult("teacher_s0", "done"), executors.UnitResult("ds_s0", "skipped")]
    _summarise(ok, 12.0)
    assert capsys.readouterr().out == "units: 1 trained, 1 done already, 0 failed in 12.0 s\n"
    failed = [executors.UnitResult("teacher_s0", "failed"), executors.UnitResult("ds_s0", "blocked")]
    _summarise(failed, 3.0)
    out = capsys.readouterr().out.splitlines()
    expected = "units: 0 trained, 0 done already, 1 failed, 1 not started (their teacher failed) in 3.0 s"
    assert out[0] == expected
