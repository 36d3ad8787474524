"""One owner of the run folder's file names (issue 16): no module but :mod:`kdfair.runfolder` spells them.

Only string literals count (``ast.Constant`` values, f-string pieces included): a literal equal to a name, or
starting with the ``attr_`` prefix. Docstrings, comments and messages that mention a name inside a sentence
are fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

import kdfair
from kdfair import runfolder

SRC = Path(kdfair.__file__).parent
NAMES = {
    runfolder.CONFIG_JSON,
    runfolder.RUN_JSON,
    *runfolder.PREDICTION_FILES,
    runfolder.EPOCHS_CSV,
    runfolder.CHECKPOINT_PT,
    runfolder.ENVIRONMENT_JSON,
    runfolder.DONE,
    runfolder.REPRESENTATION_NPZ,
    runfolder.COUNTERFACTUAL_NPZ,
    runfolder.AUDIT_JSON,
}


def _spelled(path: Path, root: Path = SRC.parent) -> list[str]:
    hits = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in NAMES or node.value.startswith(runfolder.ATTR_PREFIX):
                hits.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    return hits


def test_the_names_match_the_layout() -> None:
    assert NAMES >= {"config.json", "run.json", "predictions.npz", "epochs.csv", "checkpoint.pt", "DONE"}
    assert {"environment.json", "representation.npz", "counterfactual.npz"} <= NAMES
    assert runfolder.ATTR_PREFIX == "attr_" and runfolder.attr_key("sex") == "attr_sex"


def test_no_other_module_spells_a_run_folder_name() -> None:
    modules = [p for p in sorted(SRC.rglob("*.py")) if p != SRC / "runfolder.py"]
    hits = [hit for path in modules for hit in _spelled(path)]
    assert not hits, "spell these with kdfair.runfolder's names:\n" + "\n".join(hits)


def test_the_check_sees_plain_and_formatted_literals(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    module.write_text(
        '"""Docstrings may name run.json."""\n'
        "# a comment may name DONE\n"
        'a = folder / "DONE"\n'
        'b = f"attr_{name}"\n'
        'c = f"{folder}: missing run.json"\n',
        encoding="utf-8",
    )
    assert _spelled(module, tmp_path) == ["mod.py:3: 'DONE'", "mod.py:4: 'attr_'"]


def test_finished_folder_round_trip(tmp_path: Path) -> None:
    run_dir = runfolder.run_path(tmp_path, "nds_s0")
    assert run_dir == tmp_path / "runs" / "nds_s0" and not runfolder.is_done(run_dir)
    runfolder.write_config(run_dir, {"run_id": "nds_s0", "seed": 0})
    runfolder.write_epochs(run_dir, [{"epoch": 1, "train_loss": 2.5}, {"epoch": 2, "lr": 0.1}])
    runfolder.write_finished(run_dir, {"sample_id": np.arange(3)}, {"role": "nds", "seed": 0})
    assert runfolder.read_config(run_dir) == {"run_id": "nds_s0", "seed": 0}
    assert (run_dir / "epochs.csv").read_text() == "epoch,train_loss,lr\n1,2.5,\n2,,0.1\n"
    assert runfolder.is_done(run_dir) and (run_dir / "DONE").read_text() == ""
    with np.load(run_dir / "predictions.npz") as arrays:
        assert arrays["sample_id"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "DONE",
        "config.json",
        "epochs.csv",
        "predictions.npz",
        "run.json",
    ]
