"""Which audit a report of a runs folder uses (kdfair.report.source): an up-to-date ``<runs>/audit`` is
reused as it is (its ``--level`` kept), an absent one is written with the defaults, an out-of-date one is
redone with the options recorded in it (audit.json ``options``, read back as data); run folders are found as
the audit finds them (kdfair.discovery: every predictions format, incomplete folders named); and a real
audit's run settings appear on the page."""

from __future__ import annotations

import json
import os
import shutil

import html5lib
import numpy as np
import pandas as pd
import pytest
from report_sweep import STUDENT_LR, SWEEP_DATASET, SWEEP_SETTINGS, TEACHER_LR, copy_sweep

import kdfair.audit.engine as engine
from kdfair.audit.options import AuditOptions
from kdfair.audit.write import write_audit
from kdfair.cli import main
from kdfair.errors import KdfairError, PredictionFormatError
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
    options = "level 0.01, k 3, representation auto, auroc never, permutations 999, skip_incomplete False"
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


def later(path, root):
    """Set ``path``'s modification time 10 s after ``root``'s audit.json (a file changed since the audit)."""
    when = (root / "audit" / "audit.json").stat().st_mtime + 10
    os.utime(path, (when, when))


def test_options_are_read_back_as_data_and_passed_to_the_audit(real_sweep, tmp_path, monkeypatch):
    """The re-audit calls audit_runs with audit.json's ``options`` as they are: an npz given by path (which
    the old report had to recognise in a description), skip_incomplete and B are passed on unchanged."""
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    space = tmp_path / "space.npz"
    shutil.copy(root / "representation.npz", space)
    (root / "runs" / "stray").mkdir()
    (root / "runs" / "stray" / "predictions.npz").write_bytes(b"")  # incomplete: no run.json
    argv = ["audit", str(root), "--representation", str(space), "--k", "4", "--permutations", "9"]
    assert main([*argv, "--skip-incomplete"]) == 0
    recorded = json.loads((root / "audit" / "audit.json").read_text())["options"]
    assert recorded == {
        "level": 0.05,
        "k": 4,
        "representation": str(space),
        "auroc": "auto",
        "permutations": 9,
        "skip_incomplete": True,
        "run_dirs": None,
    }
    assert recorded_options(root / "audit") == (AuditOptions.from_dict(recorded), None)
    later(space, root)  # the kNN space given by path changed: the audit is out of date
    calls = []
    real = engine.audit_runs
    monkeypatch.setattr(engine, "audit_runs", lambda *a, **kw: calls.append((a, kw)) or real(*a, **kw))
    messages = []
    assert resolve_audit_dir(root, log=messages.append) == root / "audit"
    assert calls == [((root,), recorded)]
    assert messages[0].startswith(f"{root / 'audit'} is out of date (1 input file(s) changed since the audit")
    assert messages[1:] == [
        f"skipped incomplete run folder {root / 'runs' / 'stray'}: has predictions.npz but no run.json"
    ]


def test_an_audit_json_without_options_is_redone_from_what_it_records(real_sweep, tmp_path):
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    assert main(["audit", str(root), "--level", "0.01", "--auroc", "never", "--permutations", "0"]) == 0
    audit_json = root / "audit" / "audit.json"
    meta = json.loads(audit_json.read_text())
    del meta["options"], meta["skipped_runs"]  # as an older kdfair wrote it
    audit_json.write_text(json.dumps(meta))
    later(root / "runs" / "nds_s0" / "predictions.npz", root)
    messages = []
    resolve_audit_dir(root, log=messages.append)
    assert messages[0] == (
        f"{audit_json} records no 'options' (an audit by an older kdfair): its options are read from what it "
        "records (level, k, representation, auroc, permutations); skip_incomplete: the default"
    )
    options = json.loads(audit_json.read_text())["options"]
    assert options == {**AuditOptions().as_dict(), "level": 0.01, "auroc": "never", "permutations": 0}


def test_a_changed_csv_or_parquet_run_makes_the_audit_out_of_date(real_sweep, tmp_path):
    """Every predictions format is a run input (kdfair.runfolder.PREDICTION_FILES), not only the npz."""
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    run = root / "runs" / "nds_s1"
    with np.load(run / "predictions.npz") as arrays:
        table = {
            "sample_id": arrays["sample_id"],
            "y_true": arrays["y_true"],
            "attr_group": arrays["attr_group"],
        }
        table.update({f"logit_{c}": arrays["logits"][:, c] for c in range(arrays["logits"].shape[1])})
    pd.DataFrame(table).to_csv(run / "predictions.csv", index=False)
    (run / "predictions.npz").unlink()
    messages = []
    resolve_audit_dir(root, log=messages.append)
    assert messages == [f"auditing the 8 runs in {root} into {root / 'audit'} (kdfair audit's defaults)"]
    resolve_audit_dir(root, log=messages.append)
    assert messages[1] == f"using the existing audit {root / 'audit'} (up to date with the 8 runs)"
    later(run / "predictions.csv", root)
    resolve_audit_dir(root, log=messages.append)
    assert messages[2].startswith(
        f"{root / 'audit'} is out of date (1 input file(s) changed since the audit, "
        f"e.g. {run / 'predictions.csv'})"
    )


def test_an_incomplete_folder_is_an_error_naming_it(real_sweep, tmp_path, capsys):
    """Found with kdfair.discovery: a run folder that lost its run.json is no longer dropped silently."""
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    resolve_audit_dir(root, log=lambda _: None)
    folder = root / "runs" / "ds_kd_T4_a0.8_s1"
    (folder / "run.json").unlink()
    message = f"{folder}: incomplete run folder: has predictions.npz but no run.json"
    with pytest.raises(PredictionFormatError, match=message):
        resolve_audit_dir(root, log=lambda _: None)
    capsys.readouterr()
    assert main(["report", str(root), "--no-figures", "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kdfair report: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "report").exists()


def test_a_skipped_folder_the_audit_does_not_name_makes_it_out_of_date(real_sweep, tmp_path):
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    messages = []
    resolve_audit_dir(root, log=messages.append, skip_incomplete=True)
    orphan = root / "runs" / "orphan"
    orphan.mkdir()
    shutil.copy(root / "runs" / "nds_s0" / "predictions.npz", orphan / "predictions.npz")
    assert resolve_audit_dir(root, log=messages.append, skip_incomplete=True) == root / "audit"
    reason = "has predictions.npz but no run.json"
    assert messages[1:] == [
        f"{root / 'audit'} is out of date (1 incomplete run folder(s) it does not name, e.g. {orphan}); "
        "auditing the runs again into it with its options (level 0.05, k 5, representation auto, auroc auto, "
        "permutations 999, skip_incomplete True)",
        f"skipped incomplete run folder {orphan}: {reason}",
    ]
    meta = json.loads((root / "audit" / "audit.json").read_text())
    assert meta["skipped_runs"] == [{"folder": str(orphan), "reason": reason}] and meta["n_runs"] == 8
    assert meta["options"]["skip_incomplete"] is True
    resolve_audit_dir(root, log=messages.append)  # recorded: skipped again without being asked
    assert messages[3:] == [
        f"using the existing audit {root / 'audit'} (up to date with the 8 runs)",
        f"skipped incomplete run folder {orphan}: {reason}",
    ]


def test_an_audit_of_chosen_run_folders_ignores_the_others(real_sweep, tmp_path):
    """A sweep's audit names its runs (options.run_dirs): other folders below do not make it out of date."""
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    chosen = sorted(p.parent for p in (root / "runs").rglob("run.json"))
    write_audit(engine.audit_runs(root, run_dirs=chosen), root / "audit")
    shutil.copytree(root / "runs" / "nds_s0", root / "runs" / "old_nds_s5")  # e.g. an earlier config's run
    (root / "runs" / "half").mkdir()
    (root / "runs" / "half" / "predictions.npz").write_bytes(b"")
    messages = []
    assert resolve_audit_dir(root, log=messages.append) == root / "audit"
    assert messages == [f"using the existing audit {root / 'audit'} (up to date with the 8 runs)"]
    later(root / "runs" / "nds_s0" / "run.json", root)
    resolve_audit_dir(root, log=messages.append)
    assert messages[1].endswith("skip_incomplete False, the 8 run folders it audited)")
    assert json.loads((root / "audit" / "audit.json").read_text())["n_runs"] == 8


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


def test_a_changed_checkpoint_teacher_features_file_makes_the_audit_out_of_date(real_sweep, tmp_path):
    # teacher_features_s<seed>.npz is the default kNN space of a sweep without a teacher run (a checkpoint
    # teacher): a change to it changes individual fairness, so the report audits again
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    assert main(["audit", str(root), "--permutations", "0"]) == 0
    messages = []
    resolve_audit_dir(root, log=messages.append)
    assert messages == [f"using the existing audit {root / 'audit'} (up to date with the 8 runs)"]
    features = root / "teacher_features_s0.npz"
    shutil.copy(root / "representation.npz", features)
    later(features, root)
    messages = []
    resolve_audit_dir(root, log=messages.append)
    assert messages[0].startswith(f"{root / 'audit'} is out of date (1 input file(s) changed since the audit")
