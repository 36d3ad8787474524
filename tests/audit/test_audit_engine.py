"""End-to-end audit of a synthetic sweep: values recomputed independently from the prediction files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_helpers import load_npz
from scipy import stats

from kdfair.audit.engine import audit_runs
from kdfair.audit.summary import json_document
from kdfair.audit.write import write_audit

AUDIT_FILES = {
    "audit.json",
    "run_metrics.csv",
    "summary.csv",
    "class_accuracy.csv",
    "class_tests.csv",
    "significance_counts.csv",
    "disagreement_rate.csv",
    "run_health.csv",  # no learning_curves.csv: the synthetic runs have no epochs.csv
    "condition_health.csv",
    "noise_floor.csv",  # kdfair.audit.noise
    "noise_floor_summary.csv",
    "fairness_tests.csv",
}


@pytest.fixture(scope="module")
def audited(sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out") / "audit"
    result = audit_runs(sweep_dir)
    write_audit(result, out)
    return out, json_document(result, out)


def _by_id(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) of a run, sorted by sample_id: an alignment independent of the engine's."""
    arrays = load_npz(run_dir / "predictions.npz")
    order = np.argsort(arrays["sample_id"])
    return arrays["y_true"][order], arrays["logits"][order].argmax(axis=1)


def _run(sweep_dir: Path, name: str) -> Path:
    return sweep_dir / "runs" / name


def test_writes_exactly_the_documented_files(audited: tuple[Path, dict]) -> None:
    out, _ = audited
    assert {p.name for p in out.iterdir() if p.is_file()} == AUDIT_FILES
    npys = {p.name for p in (out / "disagreement").iterdir()}
    assert npys == {"nds.npy", "ds_kd_T1_a0.8.npy", "ds_kd_T8_a0.8.npy"}
    info = json.loads((out / "audit.json").read_text())
    assert info["n_runs"] == 16 and info["n_classes"] == 8
    assert info["n_seeds"] == {"teacher": 4, "nds": 4, "ds_kd_T1_a0.8": 4, "ds_kd_T8_a0.8": 4}
    assert info["attributes"] == {"group": ["0", "1"], "region": ["0", "1", "2"]}
    assert info["individual_fairness"]["k"] == 5
    # default kNN space: the teacher's penultimate features (SPEC §6), not representation.npz beside the runs
    assert info["individual_fairness"]["representation"] == "teacher features (teacher_s0)"
    assert info["individual_fairness"]["space"] == "teacher"
    assert info["individual_fairness"]["pairs"]["same_label"] > 0.5
    assert [c["id"] for c in info["conditions"]] == ["teacher", "nds", "ds_kd_T1_a0.8", "ds_kd_T8_a0.8"]


def test_accuracy_recomputed_from_files(audited: tuple[Path, dict], sweep_dir: Path) -> None:
    out, _ = audited
    metrics = pd.read_csv(out / "run_metrics.csv")
    accuracy = metrics[metrics["metric"] == "accuracy"].set_index(["condition", "seed"])["value"]
    for condition, run_id in [("teacher", "teacher_s2"), ("ds_kd_T8_a0.8", "ds_kd_T8_a0.8_s1")]:
        y_true, y_pred = _by_id(_run(sweep_dir, run_id))
        assert accuracy[(condition, int(run_id[-1]))] == pytest.approx(np.mean(y_true == y_pred), abs=1e-12)
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary["condition"] == "nds") & (summary["metric"] == "accuracy")].iloc[0]
    seeds = [np.mean(np.equal(*_by_id(_run(sweep_dir, f"nds_s{s}")))) for s in range(4)]
    assert row["n_seeds"] == 4
    assert row["mean"] == pytest.approx(np.mean(seeds)) and row["std"] == pytest.approx(np.std(seeds, ddof=1))


def test_group_metric_per_attribute_present(audited: tuple[Path, dict]) -> None:
    out, _ = audited
    metrics = pd.read_csv(out / "run_metrics.csv", keep_default_na=False)
    per_run = metrics[(metrics["condition"] == "nds") & (metrics["seed"] == 0)]
    keys = set(zip(per_run["metric"], per_run["attribute"], strict=True))
    expected = {(m, "") for m in ("accuracy", "auroc", "f1", "individual_unfairness", "consistency")}
    expected |= {(m, a) for m in ("dpd", "eod", "deo_mean", "deo_max") for a in ("group", "region")}
    assert keys == expected


def test_welch_p_values_match_scipy_on_recomputed_ratios(audited: tuple[Path, dict], sweep_dir: Path) -> None:
    out, _ = audited

    def ratios(prefix: str) -> np.ndarray:
        rows = []
        for s in range(4):
            y_true, y_pred = _by_id(_run(sweep_dir, f"{prefix}_s{s}"))
            per_class = np.array([np.mean(y_pred[y_true == c] == c) for c in range(8)])
            rows.append(per_class / np.mean(y_true == y_pred))
        return np.array(rows)

    expected = stats.ttest_ind(ratios("nds"), ratios("ds_kd_T8_a0.8"), axis=0, equal_var=False).pvalue
    tests = pd.read_csv(out / "class_tests.csv")
    mine = tests[(tests["comparison"] == "nds_vs_ds") & (tests["condition"] == "ds_kd_T8_a0.8")]
    np.testing.assert_allclose(mine.sort_values("class")["p_value"].to_numpy(), expected, rtol=1e-9)


def test_planted_effect_is_detected(audited: tuple[Path, dict]) -> None:
    out, _ = audited
    tests = pd.read_csv(out / "class_tests.csv").set_index(["comparison", "condition", "class"])
    for comparison in ("nds_vs_ds", "teacher_vs_ds"):
        for c in (0, 1):  # degraded at T = 8, not at T = 1
            hot = tests.loc[(comparison, "ds_kd_T8_a0.8", c)]
            assert hot["significant"] and hot["significant_bh"] and hot["mean_change"] < -0.3
            assert tests.loc[(comparison, "ds_kd_T1_a0.8", c)]["mean_change"] > -0.15
    counts = pd.read_csv(out / "significance_counts.csv").set_index("condition")
    hot = tests.xs(("nds_vs_ds", "ds_kd_T8_a0.8"), level=(0, 1))
    assert counts.loc["ds_kd_T8_a0.8", "sc"] == int(hot["significant"].sum()) >= 2
    assert counts.loc["ds_kd_T8_a0.8", "sc_bh"] == int(hot["significant_bh"].sum())
    assert counts.loc["ds_kd_T8_a0.8", "n_classes"] == 8 and counts.loc["ds_kd_T8_a0.8", "n_seeds"] == 4


def test_disagreement_matrix_averaged_over_paired_seeds(audited: tuple[Path, dict], sweep_dir: Path) -> None:
    out, _ = audited
    expected = np.zeros((8, 8))
    rates = np.zeros(8)
    for s in range(4):
        y_true, teacher = _by_id(_run(sweep_dir, f"teacher_s{s}"))
        _, student = _by_id(_run(sweep_dir, f"ds_kd_T8_a0.8_s{s}"))
        for i, j in zip(teacher, student, strict=True):
            expected[i, j] += (i != j) / 4
        rates += np.array([np.mean(teacher[y_true == c] != student[y_true == c]) for c in range(8)]) / 4
    np.testing.assert_allclose(np.load(out / "disagreement" / "ds_kd_T8_a0.8.npy"), expected)
    table = pd.read_csv(out / "disagreement_rate.csv")
    mine = table[table["condition"] == "ds_kd_T8_a0.8"].sort_values("class")["rate"].to_numpy()
    np.testing.assert_allclose(mine, rates)


def test_class_accuracy_table(audited: tuple[Path, dict], sweep_dir: Path) -> None:
    out, _ = audited
    table = pd.read_csv(out / "class_accuracy.csv")
    assert len(table) == 16 * 8
    mine = table[(table["condition"] == "nds") & (table["seed"] == 3)].sort_values("class")
    y_true, y_pred = _by_id(_run(sweep_dir, "nds_s3"))
    per_class = np.array([np.mean(y_pred[y_true == c] == c) for c in range(8)])
    np.testing.assert_allclose(mine["accuracy"], per_class)
    np.testing.assert_allclose(mine["normalized_accuracy"], per_class / np.mean(y_true == y_pred))


def test_process_pool_gives_the_same_tables(sweep_dir: Path) -> None:
    one, two = audit_runs(sweep_dir, jobs=1), audit_runs(sweep_dir, jobs=2)
    pd.testing.assert_frame_equal(one.run_metrics, two.run_metrics)
    pd.testing.assert_frame_equal(one.class_tests, two.class_tests)
    np.testing.assert_array_equal(one.disagreement["nds"], two.disagreement["nds"])


def test_representation_options(sweep_dir: Path) -> None:
    teacher = audit_runs(sweep_dir, representation="teacher", jobs=1)
    assert teacher.info["individual_fairness"]["representation"].startswith("teacher features")
    none = audit_runs(sweep_dir, representation="none", jobs=1)
    assert "individual_unfairness" not in set(none.run_metrics["metric"])
    assert not none.warnings
