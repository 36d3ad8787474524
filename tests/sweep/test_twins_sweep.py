"""Counterfactual twins in a sweep: written at the end of each run, added to finished runs from checkpoint.pt
without retraining (re-running the sweep command), audited per protected attribute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sweep_helpers import TINY, merged, run_cli, temporary_files, write_config

from kdfair.counterfactual import COUNTERFACTUAL_NPZ, load_counterfactual
from kdfair.errors import ConfigError
from kdfair.predictions import load_predictions
from kdfair.train.twins import add_missing_counterfactuals, add_run_counterfactual

# 2 twins per test image: one other colour, one other texture (2,000 twins of 1,000 test images)
TWINS = merged(
    TINY,
    name="twins",
    data={**TINY["data"], "options": {**TINY["data"]["options"], "twins_per_image": 1}},
    distill={"methods": ["kd"], "temperatures": [2], "alphas": [0.8]},
)
RUN_IDS = ["teacher_s0", "teacher_s1", "nds_s0", "nds_s1", "ds_kd_T2_a0.8_s0", "ds_kd_T2_a0.8_s1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_cache: Path) -> tuple[Path, Path]:
    """The sweep trained once, without audit: (config, output folder)."""
    folder = tmp_path_factory.mktemp("twins")
    config = write_config(folder, TWINS)
    status, _, err = run_cli("sweep", str(config), "--out", str(folder / "out"), "--no-audit")
    assert status == 0, err
    return config, folder / "out"


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def test_every_run_writes_its_twins_before_done(trained: tuple[Path, Path]) -> None:
    _, out = trained
    for run_id in RUN_IDS:
        arrays = _arrays(out / "runs" / run_id / COUNTERFACTUAL_NPZ)
        assert sorted(arrays) == ["attribute", "level", "logits", "sample_id", "source_id"]
        assert arrays["logits"].shape == (2000, 10)
        assert sorted(set(arrays["attribute"])) == ["colour", "texture"]
        test_ids = _arrays(out / "runs" / run_id / "predictions.npz")["sample_id"]
        assert set(arrays["source_id"]) == set(test_ids)  # every test image has its twins
        first = arrays["sample_id"][0]
        assert first == f"{arrays['source_id'][0]}/{arrays['attribute'][0]}={arrays['level'][0]}"


def test_finished_runs_get_their_twins_from_the_checkpoint(trained: tuple[Path, Path]) -> None:
    """Runs made before twins existed (DONE, no counterfactual.npz): the same predictions, no retraining."""
    config, out = trained
    written = {r: _arrays(out / "runs" / r / COUNTERFACTUAL_NPZ) for r in RUN_IDS}
    stamps = {r: (out / "runs" / r / "predictions.npz").stat().st_mtime_ns for r in RUN_IDS}
    for run_id in RUN_IDS:
        (out / "runs" / run_id / COUNTERFACTUAL_NPZ).unlink()
    status, stdout, err = run_cli("sweep", str(config), "--out", str(out), "--no-report")
    assert status == 0, err
    assert "units: 0 trained, 6 done already" in stdout
    for run_id in RUN_IDS:
        run = out / "runs" / run_id
        assert f"counterfactual twins: wrote {run / COUNTERFACTUAL_NPZ}" in stdout
        again = _arrays(run / COUNTERFACTUAL_NPZ)
        for key in ("sample_id", "source_id", "attribute", "level"):
            np.testing.assert_array_equal(again[key], written[run_id][key])
        np.testing.assert_allclose(again["logits"], written[run_id]["logits"], atol=1e-5)
        assert run.joinpath("predictions.npz").stat().st_mtime_ns == stamps[run_id]  # not retrained
    assert temporary_files(out) == []
    metrics = pd.read_csv(out / "audit" / "run_metrics.csv")
    cf = metrics[metrics["metric"].isin(["counterfactual_unfairness", "counterfactual_flip_rate"])]
    assert len(cf) == 6 * 2 * 2  # runs x metrics x attributes (colour, texture)
    assert cf["value"].between(0, 1).all()
    info = json.loads((out / "audit" / "audit.json").read_text())
    assert info["counterfactual"]["n_runs"] == 6 and info["counterfactual"]["pairs"] == {
        "colour": 1000,
        "texture": 1000,
    }
    _check_one_run_by_hand(out / "runs" / "nds_s0", metrics)
    assert add_missing_counterfactuals(out, log=lambda _: None) == []  # nothing left to add


def _check_one_run_by_hand(run: Path, metrics: pd.DataFrame) -> None:
    """The audit's counterfactual values of one run, recomputed from the two npz files."""
    pred, twins = load_predictions(run), load_counterfactual(run)
    assert twins is not None
    row_of = {sid: i for i, sid in enumerate(pred.sample_id.tolist())}
    source = np.array([row_of[s] for s in twins.source_id.tolist()])
    tv = 0.5 * np.abs(pred.probs[source] - twins.probs).sum(axis=1)
    flips = pred.probs[source].argmax(1) != twins.probs.argmax(1)
    mine = metrics[(metrics["condition"] == "nds") & (metrics["seed"] == 0)]
    for attribute in ("colour", "texture"):
        keep = twins.attribute == attribute
        value = mine[(mine["metric"] == "counterfactual_unfairness") & (mine["attribute"] == attribute)][
            "value"
        ]
        assert value.item() == pytest.approx(tv[keep].mean(), abs=1e-6)
        rate = mine[(mine["metric"] == "counterfactual_flip_rate") & (mine["attribute"] == attribute)][
            "value"
        ]
        assert rate.item() == pytest.approx(flips[keep].mean())


def test_a_checkpoint_that_is_not_final_or_does_not_reproduce_is_refused(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = trained
    run = tmp_path / "runs" / "nds_s0"
    run.mkdir(parents=True)
    for name in ("config.json", "predictions.npz", "run.json", "DONE"):
        (run / name).write_bytes((out / "runs" / "nds_s0" / name).read_bytes())
    state = torch.load(out / "runs" / "nds_s0" / "checkpoint.pt", weights_only=False)
    torch.save({**state, "epoch": 1}, run / "checkpoint.pt")
    with pytest.raises(ConfigError, match="holds epoch 1, not the final epoch 2"):
        add_run_counterfactual(run)
    broken = {k: torch.zeros_like(v) if k.startswith("fc3") else v for k, v in state["model"].items()}
    torch.save({**state, "model": broken}, run / "checkpoint.pt")
    with pytest.raises(ConfigError, match="reproduces only"):
        add_run_counterfactual(run)
    lines: list[str] = []
    assert add_missing_counterfactuals(tmp_path, log=lines.append) == []
    assert len(lines) == 1 and "reproduces only" in lines[0] and not (run / COUNTERFACTUAL_NPZ).exists()
