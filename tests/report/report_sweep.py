"""A small sweep in the prediction format (kdfair.synthetic) whose run.json files carry the settings a
trainer writes, for tests that run the real audit engine; and copies of it with some roles left out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kdfair.synthetic import make_synthetic_sweep

SWEEP_SETTINGS = {"epochs": 7, "device": "cuda:0", "batch_size": 32}
SWEEP_MODELS = {"teacher": "wrn40_2", "nds": "wrn16_1", "ds": "wrn16_1"}
SWEEP_DATASET = "cifar100"
TEACHER_LR, STUDENT_LR = 0.1, 0.05  # differs by condition: shown per condition on the page


def make_real_sweep(root: Path) -> Path:
    """Teacher, NDS and DS at T = 2, 4 (2 seeds, 4 classes, 240 samples, attribute 'group') under ``root``."""
    make_synthetic_sweep(
        root, n_classes=4, n_samples=240, seeds=(0, 1), temperatures=(2, 4), attributes={"group": 2}
    )
    for run_json in sorted(root.rglob("run.json")):
        meta = json.loads(run_json.read_text())
        meta.update(dataset=SWEEP_DATASET, model=SWEEP_MODELS[meta["role"]])
        lr = TEACHER_LR if meta["role"] == "teacher" else STUDENT_LR
        meta["settings"] = {**SWEEP_SETTINGS, "lr": lr}
        run_json.write_text(json.dumps(meta))
    return root


def copy_sweep(sweep: Path, dest: Path, drop_roles: tuple[str, ...] = ()) -> Path:
    """Copy ``sweep`` to ``dest`` without the run folders of ``drop_roles`` (e.g. no NDS runs)."""
    shutil.copytree(sweep, dest)
    for run_json in sorted(dest.rglob("run.json")):
        if json.loads(run_json.read_text())["role"] in drop_roles:
            shutil.rmtree(run_json.parent)
    return dest
