"""The README's Python audit example runs as written (it cannot rot)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- readme-example: audit-from-python -->"


def readme_example() -> str:
    """The ```python block right after the marker."""
    text = README.read_text(encoding="utf-8")
    match = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, f"README.md has no ```python block after {MARKER}"
    return match.group(1)


def test_readme_audit_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "teacher accuracy" in " ".join(printed.split()) and "nds" in printed
    audit = tmp_path / "sklearn_audit"
    info = json.loads((audit / "audit.json").read_text())
    assert info["n_runs"] == 6 and info["n_seeds"] == {"teacher": 3, "nds": 3}
    assert info["attributes"] == {"group": ["a", "b"]} and info["runs_dir"] == "<memory>"
    summary = pd.read_csv(audit / "summary.csv")
    accuracy = summary.query("metric == 'accuracy'").set_index("condition")["mean"]
    assert 0.6 < accuracy["nds"] < accuracy["teacher"] < 0.9  # the tree is the weaker model
    assert (audit / "disagreement" / "nds.npy").is_file()
