"""The sweep's progress where it is read: redrawn bars on a terminal, plain lines at a sensible rate in a log
(``kdfair demo 2> log``): no carriage return, no escape sequence, one line per event."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sweep_helpers import TINY, merged, write_config

from kdfair.cli import main
from kdfair.sweep import executors
from kdfair.sweep.config import parse_sweep_config
from kdfair.sweep.executors import UnitResult, duration, progress_line, progress_style, schedule
from kdfair.sweep.expand import Unit, expand

PROGRESS = re.compile(
    r"progress: (\d+)/(\d+) units finished \((\d+)%\) in [^,]+(, \d+ failed)?(, about .+ left)?"
)


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Backend:
    """Finishes one unit per wait, writing DONE for its runs (``fail``: unit ids that fail instead)."""

    capacity = 1

    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.fail, self.queue = fail, []

    def submit(self, unit: Unit) -> str:
        self.queue.append(unit)
        return unit.unit_id

    def wait(self, handles: list[Any]) -> list[tuple[Any, BaseException | None]]:
        unit = self.queue.pop(0)
        if unit.unit_id in self.fail:
            return [(unit.unit_id, ValueError("boom"))]
        for run_id in unit.run_ids:
            unit.run_dir(run_id).mkdir(parents=True, exist_ok=True)
            (unit.run_dir(run_id) / "DONE").write_text("")
        return [(unit.unit_id, None)]

    def close(self) -> None:
        pass


def _units(tmp_path: Path) -> list[Unit]:
    return expand(parse_sweep_config(TINY, check=False), tmp_path).units  # 6 units


def test_style_follows_where_stderr_goes() -> None:
    assert progress_style(True, Terminal()) == "bar"
    assert progress_style(True, io.StringIO()) == "lines"
    assert progress_style(True, object()) == "lines"  # no isatty at all
    assert progress_style("lines", Terminal()) == "lines" and progress_style("bar", io.StringIO()) == "bar"
    assert progress_style(False, Terminal()) is None


def test_lines_mode_prints_a_line_per_finished_unit_without_a_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(executors, "PROGRESS_LINE_SECONDS", 0.0)  # every event is due
    units = _units(tmp_path)
    results = schedule(units, Backend(fail=frozenset({"nds_s1"})), lambda _: None, progress="lines")
    assert [r.status for r in results].count("failed") == 1
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err and "units:" not in err  # no bar
    found = [PROGRESS.fullmatch(line) for line in err.splitlines()]
    assert all(found) and [int(m.group(1)) for m in found] == [1, 2, 3, 4, 5, 6]
    assert all(m.group(2) == "6" for m in found)
    assert found[-1].group(3) == "100" and found[-1].group(5) is None  # nothing left to estimate
    failed = [bool(m.group(4)) for m in found]
    assert failed[-1] and failed == sorted(failed)  # from the failure on, every line counts it


def test_lines_mode_keeps_to_its_rate_and_always_prints_the_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(executors, "PROGRESS_LINE_SECONDS", 3600.0)
    schedule(_units(tmp_path), Backend(), lambda _: None, progress="lines")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("progress: 6/6 units finished (100%) in ")


def test_bar_mode_draws_no_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schedule(_units(tmp_path), Backend(), lambda _: None, progress="bar")
    err = capsys.readouterr().err
    assert "\r" in err and re.search(r"units: 100%\|[^|]*\| 6/6 ", err) and "progress:" not in err


def test_progress_line_and_durations() -> None:
    done, skipped = UnitResult("a", "done", 10.0), UnitResult("b", "skipped")
    failed = UnitResult("c", "failed", 1.0, "ValueError: boom")
    assert progress_line([], 4, 0.4) == "progress: 0/4 units finished (0%) in 0 s"
    assert progress_line([skipped], 4, 1) == "progress: 1/4 units finished (25%) in 1 s"  # no estimate yet
    # 2 trained (one failed counts as finished, not trained) in 125 s: 62.5 s each x 1 to go
    line = progress_line([done, skipped, failed, done], 5, 125)
    assert line == "progress: 4/5 units finished (80%) in 2 min 5 s, 1 failed, about 1 min 2 s left"
    assert [duration(s) for s in (0, 59.4, 60, 3599, 3600, 12345)] == [
        "0 s", "59 s", "1 min 0 s", "59 min 59 s", "1 h 0 min", "3 h 25 min",
    ]  # fmt: skip


def _sweep_in_process(config: Path, out: Path, err: io.StringIO) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(err):
        status = main(["sweep", str(config), "--out", str(out), "--workers", "1", "--no-audit"])
    return status, stdout.getvalue()


@pytest.mark.usefixtures("data_cache")
def test_on_a_terminal_this_process_shows_a_bar_per_epoch(tmp_path: Path) -> None:
    config = write_config(tmp_path, merged(TINY, seeds=[0]))
    err = Terminal()
    status, out = _sweep_in_process(config, tmp_path / "out", err)
    assert status == 0, err.getvalue()
    assert "\r" in err.getvalue() and "loss=" in err.getvalue()  # tqdm's bar with its postfix
    assert " epoch 1/2: loss " not in out and "progress:" not in err.getvalue()


@pytest.mark.usefixtures("data_cache")
def test_redirected_sweep_writes_a_readable_log(tmp_path: Path) -> None:
    """What ``kdfair demo 2> log`` does, on the tiny sweep: two workers, then the audit and the report."""
    raw = merged(TINY, distill={"temperatures": [4]})  # 2 seeds: the audit's Welch test needs them
    config = write_config(tmp_path, raw)
    log = tmp_path / "log"
    command = ["sweep", str(config), "--out", str(tmp_path / "out"), "--workers", "2"]
    with open(log, "w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "kdfair", *command],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=600,
        )
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text and "\x1b" not in text, text  # nothing redrawn
    assert re.search(r"^progress: 6/6 units finished \(100%\) in [^,]+$", text, re.M), text
    # the per-epoch lines of the units are on stdout, one line each, as are the unit lines
    out = done.stdout.splitlines()
    assert "\r" not in done.stdout
    assert sum(" epoch 2/2: loss " in line for line in out) == 6, done.stdout
    assert sum(re.match(r"\[\d/6\] finished ", line) is not None for line in out) == 6, done.stdout
    assert (tmp_path / "out" / "report" / "index.html").is_file()
