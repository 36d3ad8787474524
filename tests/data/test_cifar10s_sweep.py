"""CIFAR-10S end to end (issue 18): a sweep on a tiny CIFAR-10 fixture writes each run's grey/colour twins to
counterfactual.npz, and the audit scores them per run against the grey attribute."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import yaml
from kdfair_data_formats import write_cifar10

from kdfair.cli import main
from kdfair.counterfactual import COUNTERFACTUAL_NPZ, load_counterfactual
from kdfair.predictions import load_predictions


def test_a_cifar10s_sweep_writes_and_audits_grey_colour_twins(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KDFAIR_CACHE", str(tmp_path / "cache"))
    write_cifar10(tmp_path / "data", per_class_train=4, per_class_test=2)
    config = {
        "name": "cifar10s-twins",
        "data": {"name": "cifar10s", "root": str(tmp_path / "data")},
        "teacher": {"model": "lenet5"},
        "student": {"model": "lenet5"},
        "train": {"epochs": 1, "batch_size": 16, "max_steps_per_epoch": 2, "augment": False, "threads": 1},
        "distill": {"methods": ["kd"], "temperatures": [4], "alphas": [0.5], "attribute": "grey"},
        "seeds": [0, 1],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["sweep", str(path), "--out", str(out), "--no-report"])
    assert status == 0, stderr.getvalue()

    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["ds_kd_T4_a0.5_s0", "ds_kd_T4_a0.5_s1", "nds_s0", "nds_s1", "teacher_s0", "teacher_s1"]
    for run_id in runs:
        folder = out / "runs" / run_id
        test = load_predictions(folder)
        twins = load_counterfactual(folder)
        assert twins is not None and (folder / COUNTERFACTUAL_NPZ).is_file()
        n = len(test.sample_id)  # CIFAR-10S tests every test image in colour and in grey: 2 x 20
        assert n == 40 and len(twins.sample_id) == n  # one twin each: the other mode of the same image
        assert set(twins.attribute) == {"grey"}
        np.testing.assert_array_equal(np.sort(twins.source_id), np.sort(test.sample_id))
        assert np.isfinite(twins.probs).all() and twins.probs.shape == (n, 10)
        np.testing.assert_allclose(twins.probs.sum(axis=1), 1.0, atol=1e-5)

    metrics = pd.read_csv(out / "audit" / "run_metrics.csv")
    cf = metrics[metrics["metric"].isin(["counterfactual_unfairness", "counterfactual_flip_rate"])]
    assert len(cf) == 6 * 2 and set(cf["attribute"]) == {"grey"}
    assert cf["value"].between(0, 1).all()
    # an untrained LeNet-5 sees grey and colour inputs differently: its twins are not all identical
    assert cf[cf["metric"] == "counterfactual_unfairness"]["value"].gt(0).all()
