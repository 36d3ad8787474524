"""``kdfair report`` from the command line, errors, and predictions -> audit -> report end to end."""

from __future__ import annotations

import json

import pytest

from kdfair import synthetic
from kdfair.cli import main
from kdfair.errors import KdfairError
from kdfair.report import build_report


def test_cli_reports_an_audit(small, tmp_path, capsys):
    audit, _ = small
    out = tmp_path / "out"
    assert main(["report", str(audit.path), "--out", str(out), "--no-figures"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    assert (out / "tables.md").read_text().count("| Teacher | - | 72.00 ± 2.00 |") == 1  # the Table 2 row
    assert not (out / "figures").exists() and "data:image" not in (out / "index.html").read_text()


def test_cli_error_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdfair report: error:") and "neither an audit folder" in err and "\n" not in err


@pytest.mark.parametrize("inside", [False, True])
def test_out_that_is_a_file_is_one_line(small, tmp_path, capsys, inside):
    audit, _ = small
    (tmp_path / "taken").write_text("not a folder")
    out = tmp_path / "taken" / "report" if inside else tmp_path / "taken"
    assert main(["report", str(audit.path), "--out", str(out), "--no-figures"]) == 2
    err = capsys.readouterr().err
    what = f"{tmp_path / 'taken'} is a file" if inside else "exists and is a file"
    message = f"--out {out}: {what}, not a folder; give a new or an existing folder"
    assert err == f"kdfair report: error: {message}\n"
    assert (tmp_path / "taken").read_text() == "not a folder"


@pytest.mark.parametrize("top_k", ["0", "-3", "two"])
def test_top_k_below_one_is_refused(small, tmp_path, capsys, top_k):
    audit, _ = small
    with pytest.raises(SystemExit) as info:
        main(["report", str(audit.path), "--out", str(tmp_path / "o"), "--top-k", top_k])
    assert info.value.code == 2 and not (tmp_path / "o").exists()
    assert "argument --top-k: must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(KdfairError, match="--top-k must be an integer >= 1, got 0"):
        build_report(audit.path, tmp_path / "o", top_k=0)


def test_broken_audit_names_the_file(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "audit.json").write_text(json.dumps({"conditions": []}))
    assert main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "o")]) == 2
    assert "summary.csv" in capsys.readouterr().err


def test_predictions_to_audit_to_report(tmp_path):
    synthetic.make_synthetic_sweep(
        tmp_path / "sweep",
        n_classes=4,
        n_samples=200,
        seeds=(0, 1),
        temperatures=(2,),
        attributes={"group": 2},
    )
    index = build_report(tmp_path / "sweep", tmp_path / "sweep" / "report")
    assert (tmp_path / "sweep" / "audit" / "audit.json").is_file()
    summary = (tmp_path / "sweep" / "audit" / "summary.csv").read_text().splitlines()
    teacher_acc = next(line for line in summary if line.startswith("teacher,") and ",accuracy," in line)
    mean, std = (float(x) for x in teacher_acc.split(",")[-2:])
    table = (index.parent / "tables" / "table1_accuracy_significance.md").read_text()
    assert f"| Teacher | - | 2 | {100 * mean:.2f} ± {100 * std:.2f} |" in table
    assert index.read_text().count("data:image/png;base64,") == len(
        list((index.parent / "figures").glob("*.png"))
    )
