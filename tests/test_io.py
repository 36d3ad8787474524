"""Atomic writes leave either the old file or the new one, never a partial file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdfair.io import atomic_path, environment_info, save_npz_atomic, write_json_atomic, write_text_atomic


def test_failed_write_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_npz_and_json_round_trip(tmp_path: Path) -> None:
    save_npz_atomic(tmp_path / "x.npz", a=np.arange(3))
    with np.load(tmp_path / "x.npz") as npz:
        np.testing.assert_array_equal(npz["a"], [0, 1, 2])
    write_json_atomic(tmp_path / "x.json", {"v": np.float32(1.5), "p": tmp_path})
    assert '"v": 1.5' in (tmp_path / "x.json").read_text()


def test_crash_point_kills_before_rename(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    code = f"from kdfair.io import write_text_atomic; write_text_atomic({str(target)!r}, 'new')"
    env = dict(os.environ, KDFAIR_CRASH_AT="write:out.txt")
    proc = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert proc.returncode == -9
    assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")


def test_environment_info_has_versions() -> None:
    info = environment_info(device="cpu")
    assert info["device"] == "cpu" and info["versions"]["numpy"] == np.__version__


def test_written_files_get_umask_permissions_not_0600(tmp_path: Path) -> None:
    import kdfair.io as kio

    write_text_atomic(tmp_path / "p.txt", "x")
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o666 & ~kio._UMASK


def test_say_writes_the_line_and_its_newline_in_one_write(monkeypatch):
    """Regression: worker processes' epoch lines interleaved mid-line under PYTHONUNBUFFERED, because print()
    wrote the text and the newline separately. ``say`` writes both at once."""
    import sys

    from kdfair.io import say

    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            writes.append("<flush>")

    monkeypatch.setattr(sys, "stdout", Recorder())
    say("teacher_s0 epoch 2/2: loss 2.292")
    assert writes == ["teacher_s0 epoch 2/2: loss 2.292\n", "<flush>"]
