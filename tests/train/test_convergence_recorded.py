"""The trainer records kdfair.convergence's verdict in run.json ``settings["convergence"]``."""

from __future__ import annotations

import csv
from pathlib import Path

from train_helpers import run_config

from kdfair.convergence import assess_convergence
from kdfair.predictions import read_run_meta
from kdfair.train.runner import execute


def test_run_json_records_the_convergence_of_epochs_csv(tmp_path: Path) -> None:
    config = run_config("nds_s0", role="nds", train={"epochs": 4, "milestones": [3]})
    (folder,) = execute([config], tmp_path, device="cpu", progress=False)
    rows = list(csv.DictReader((folder / "epochs.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    loss = [float(r["train_loss"]) for r in rows]
    lr = [float(r["lr"]) for r in rows]
    recorded = read_run_meta(folder).settings["convergence"]
    assert recorded == assess_convergence(loss, lr).as_dict()
    assert recorded["epochs"] == 4 and isinstance(recorded["converged"], bool)
    # lr 0.05 for 3 epochs, then 0.005: the last epoch's lr is a tenth of the peak
    assert recorded["final_lr_ratio"] == 0.1
