"""``kdfair audit``'s option checks (issue 20's test gaps): ``--level`` outside (0, 1) and ``--k`` below 2
are one-line errors (exit 2) naming the option, raised before any file is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdfair.cli import main


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--level", "0", "--level must be in (0, 1), got 0.0"),
        ("--level", "1", "--level must be in (0, 1), got 1.0"),
        ("--level", "-0.05", "--level must be in (0, 1), got -0.05"),
        ("--k", "1", "--k must be >= 2 (consistency counts each point among its k neighbours), got 1"),
        ("--k", "0", "--k must be >= 2"),
    ],
)
def test_out_of_range_option_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    missing = tmp_path / "no_such_sweep"  # never read: the options are checked first
    assert main(["audit", str(missing), option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdfair audit: error:") and message in err and "\n" not in err
    assert not missing.exists()
