"""Which audit a report of a runs folder uses (kdfair.report.source): an up-to-date ``<runs>/audit`` is
reused as it is (its ``--level`` kept), an absent one is written with the defaults, an out-of-date one is
redone with the options recorded in it; and a real audit's run settings appear on the page."""

from __future__ import annotations

import json
import os
import shutil

import html5lib
import pytest
from report_sweep import STUDENT_LR, SWEEP_DATASET, SWEEP_SETTINGS, TEACHER_LR, copy_sweep

from kdfair.cli import main
from kdfair.errors import KdfairError
from kdfair.report import build_report
from kdfair.report.source import recorded_options, resolve_audit_dir

LEVEL_NOTE = "two-sided Welch t-test on normalised class accuracy, level {level:g}, out of 4 classes"


def table1(report) -> str:
    return (report / "tables" / "table1_accuracy_significance.md").read_text()


def test_absent_audit_is_written_with_defaults(real_sweep, tmp_path, capsys):
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    assert main(["report", str(root), "--no-figures"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(root / "report" / "index.html")
    assert err.strip() == (
        f"kdfair report: auditing the 8 runs in {root} into {root / 'audit'} (kdfair audit's defaults)"
    )
    meta = json.loads((root / "audit" / "audit.json").read_text())
    assert meta["level"] == 0.05 and meta["n_runs"] == 8
    assert LEVEL_NOTE.format(level=0.05) in table1(root / "report")


def test_up_to_date_audit_is_reused_with_its_level(real_sweep, tmp_path, capsys):
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    assert main(["audit", str(root), "--level", "0.01", "--representation", "none"]) == 0
    audit_json = root / "audit" / "audit.json"
    before = (audit_json.read_bytes(), audit_json.stat().st_mtime_ns)
    capsys.readouterr()
    assert main(["report", str(root), "--no-figures"]) == 0
    err = capsys.readouterr().err.strip()
    assert err == f"kdfair report: using the existing audit {root / 'audit'} (up to date with the 8 runs)"
    assert (audit_json.read_bytes(), audit_json.stat().st_mtime_ns) == before  # not rewritten
    assert LEVEL_NOTE.format(level=0.01) in table1(root / "report")
    assert not (root / "report" / "tables" / "table4_individual_fairness.md").exists()  # representation none


def test_out_of_date_audit_is_redone_with_its_options(real_sweep, tmp_path, capsys):
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    assert main(["audit", str(root), "--level", "0.01", "--k", "3", "--auroc", "never"]) == 0
    audited = (root / "audit" / "audit.json").stat().st_mtime
    later = audited + 10
    os.utime(root / "runs" / "nds_s1" / "predictions.npz", (later, later))  # a run re-trained since
    capsys.readouterr()
    assert main(["report", str(root), "--no-figures"]) == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kdfair report: {root / 'audit'} is out of date (1 input file(s) changed")
    options = "level 0.01, k 3, representation auto, auroc never, permutations 999"
    assert err.endswith(f"with its options ({options})")
    meta = json.loads((root / "audit" / "audit.json").read_text())
    assert (meta["level"], meta["individual_fairness"]["k"], meta["auroc"]["mode"]) == (0.01, 3, "never")
    assert meta["individual_fairness"]["representation"] == "teacher features (teacher_s0)"  # SPEC §6 default
    assert LEVEL_NOTE.format(level=0.01) in table1(root / "report")


def test_added_runs_make_the_audit_out_of_date(real_sweep, tmp_path):
    root = copy_sweep(real_sweep, tmp_path / "sweep", drop_roles=("nds",))
    messages: list[str] = []
    assert resolve_audit_dir(root, log=messages.append) == root / "audit"
    assert json.loads((root / "audit" / "audit.json").read_text())["n_runs"] == 6
    for name in ("nds_s0", "nds_s1"):  # the NDS runs arrive later
        shutil.copytree(real_sweep / "runs" / name, root / "runs" / name)
    assert resolve_audit_dir(root, log=messages.append) == root / "audit"
    assert messages[1].startswith(f"{root / 'audit'} is out of date (2 run folder(s) added and 0 removed")
    assert json.loads((root / "audit" / "audit.json").read_text())["n_runs"] == 8
    assert resolve_audit_dir(root, log=messages.append) == root / "audit"
    assert messages[2] == f"using the existing audit {root / 'audit'} (up to date with the 8 runs)"


def test_recorded_options_from_audit_json(tmp_path):
    (tmp_path / "npz").write_bytes(b"")
    cases = [
        ("none", "none"),
        ("teacher features (teacher_s0)", "teacher"),
        (str(tmp_path / "representation.npz"), "auto"),  # the auto default of this runs folder
        (str(tmp_path / "npz"), str(tmp_path / "npz")),  # a file given with --representation PATH
    ]
    recorded = [({"representation": "x", "option": option}, option) for option in ("input", "auto", "none")]
    for fairness, representation in [({"representation": d}, r) for d, r in cases] + recorded:
        meta = {"runs_dir": str(tmp_path), "level": 0.2, "individual_fairness": fairness}
        (tmp_path / "audit.json").write_text(json.dumps({**meta, "auroc": {"mode": "always"}}))
        assert recorded_options(tmp_path, tmp_path) == {
            "level": 0.2,
            "k": 5,
            "representation": representation,
            "auroc": "always",
        }


def test_a_folder_named_audit_that_is_no_audit_is_left_alone(real_sweep, tmp_path):
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    (root / "audit").mkdir()
    (root / "audit" / "notes.txt").write_text("mine")
    with pytest.raises(KdfairError, match="exists but is not an audit folder"):
        resolve_audit_dir(root, log=lambda _: None)
    assert (root / "audit" / "notes.txt").read_text() == "mine"


def settings_rows(page):
    """The run settings section's key-value rows ``{th text: td text}``, and the parsed page."""
    tree = html5lib.parse(page.read_bytes(), treebuilder="etree", namespaceHTMLElements=False)
    section = tree.find(".//section[@id='settings']")
    kv = section.find(".//table[@class='kv']")
    return {
        "".join(tr.find("th").itertext()): "".join(tr.find("td").itertext())
        for tr in kv.find("tbody").findall("tr")
    }, tree


def test_real_audit_settings_on_the_page(real_sweep, tmp_path):
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    index = build_report(root, tmp_path / "report", figures=False, log=lambda _: None)
    rows, tree = settings_rows(index)
    assert rows["data set"] == SWEEP_DATASET
    assert rows["models"] == "wrn40_2 (Teacher); wrn16_1 (NDS, 2 DS conditions)"
    assert (rows["epochs"], rows["device"], rows["batch_size"]) == ("7", "cuda:0", "32")
    assert list(rows)[:5] == ["data set", "models", "epochs", "device", "batch_size"]
    assert set(SWEEP_SETTINGS) <= set(rows) and "lr" not in rows  # lr differs by condition
    per_condition = tree.find(".//section[@id='settings']//details/div/table")
    lr = {
        "".join(tr[0].itertext()): "".join(tr[1].itertext()) for tr in per_condition.find("tbody").iter("tr")
    }
    assert lr == {
        "Teacher": str(TEACHER_LR),
        "NDS": str(STUDENT_LR),
        "DS kd T=2 a=0.8": str(STUDENT_LR),
        "DS kd T=4 a=0.8": str(STUDENT_LR),
    }
    header = "".join(tree.find(".//header/p").itertext())
    assert header.startswith("cifar100 · wrn40_2 → wrn16_1 · 7 epochs · cuda:0 · 8 runs · generated ")
    inheritance = (tmp_path / "report" / "tables" / "bird_inheritance_group.md").read_text()
    assert (
        "| wrn40_2 | - | teacher |" in inheritance and "| - | wrn16_1 | from scratch (NDS) |" in inheritance
    )
