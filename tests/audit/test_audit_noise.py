"""The audit's noise floor (kdfair.audit.noise): its tables recomputed independently, planted effects found,
reproducible and independent of the row order, the between-condition test calibrated, the CLI and --json."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from kdfair.audit.conditions import Condition
from kdfair.audit.engine import audit_runs
from kdfair.audit.noise import NULL_SEED, fairness_tests_table, noise_summary_table, welch_p_value
from kdfair.audit.summary import format_table, json_document
from kdfair.audit.write import write_audit
from kdfair.cli import main
from kdfair.metrics import group, noise
from kdfair.predictions import load_predictions, read_run_meta
from kdfair.stats import benjamini_hochberg
from kdfair.synthetic import draw_test_set, make_synthetic_sweep

B = 199
# DS students lose 30 points of accuracy on group 1 of "group"; teacher and NDS errors ignore the groups.
EFFECTS = {"group_gap": {"teacher": 0.0, "nds": 0.0, "ds": 0.3}, "degrade_drop": 0.0}


def _sweep(root: Path, shuffle: bool) -> Path:
    make_synthetic_sweep(
        root,
        n_classes=4,
        n_samples=800,
        seeds=[0, 1, 2, 3],
        temperatures=[1, 8],
        attributes={"group": 2, "region": 3},
        effects=EFFECTS,
        seed=11,
        shuffle_rows=shuffle,
    )
    return root


def _audit(root: Path) -> tuple[dict[str, pd.DataFrame], dict]:
    result = audit_runs(root, representation="none", auroc="never", permutations=B)
    out = write_audit(result, root / "audit")
    tables = {name: pd.read_csv(out / f"{name}.csv") for name in ("noise_floor", "noise_floor_summary")}
    tables["fairness_tests"] = pd.read_csv(out / "fairness_tests.csv")
    tables["run_metrics"] = pd.read_csv(out / "run_metrics.csv")
    return tables, {"result": result, "out": out, "info": json.loads((out / "audit.json").read_text())}


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory):
    root = _sweep(tmp_path_factory.mktemp("noise_sweep"), shuffle=False)
    tables, extra = _audit(root)
    return root, tables, extra


def test_values_equal_run_metrics(audited):
    _, tables, _ = audited
    floor, run_metrics = tables["noise_floor"], tables["run_metrics"]
    keys = ["condition", "seed", "metric", "attribute"]
    merged = floor.merge(run_metrics, on=keys, suffixes=("", "_run"), validate="one_to_one")
    assert len(merged) == len(floor) == 16 * 2 * 4
    assert np.allclose(merged["value"], merged["value_run"], rtol=1e-12, atol=0)
    assert np.allclose(floor["excess"], floor["value"] - floor["null_mean"])
    assert (floor["n_permutations"] == B).all() and (floor["null_q95"] >= floor["null_mean"]).all()


def test_run_p_values_equal_a_slow_loop_over_permutations(audited):
    """Redraw the audit's permutations (seed: NULL_SEED and the attribute's name, sample_id order) and
    recompute one run's null with kdfair.metrics.group, permutation by permutation."""
    root, tables, _ = audited
    run_dir = root / "runs" / "ds_kd_T8_a0.8_s2"
    run = load_predictions(run_dir, read_run_meta(run_dir))
    y_pred = run.probs.argmax(axis=1)
    seed = np.random.SeedSequence([NULL_SEED, zlib.crc32(b"group")])
    perms = noise.within_class_permutations(
        run.y_true, run.attributes["group"], n_permutations=B, random_state=seed, sample_id=run.sample_id
    )
    null = [
        group.equalized_odds_difference(run.y_true, y_pred, sensitive_features=perms.permuted_codes(b))
        for b in range(1, B + 1)
    ]
    observed = group.equalized_odds_difference(run.y_true, y_pred, sensitive_features=run.attributes["group"])
    row = tables["noise_floor"].query("condition == 'ds_kd_T8_a0.8' and seed == 2 and metric == 'eod'")
    row = row.query("attribute == 'group'").iloc[0]
    assert row["null_mean"] == pytest.approx(np.mean(null), rel=1e-12)
    assert row["p_value"] == pytest.approx((1 + np.sum(np.array(null) >= observed - 1e-12)) / (1 + B))


def test_planted_disparity_exceeds_the_floor_and_the_rest_does_not(audited):
    _, tables, extra = audited
    summary = tables["noise_floor_summary"].set_index(["condition", "metric", "attribute"])
    for cond in ("ds_kd_T1_a0.8", "ds_kd_T8_a0.8"):
        for metric in ("eod", "deo_mean"):
            assert summary.loc[(cond, metric, "group"), "p_value"] == pytest.approx(1 / (1 + B))
            assert summary.loc[(cond, metric, "group"), "excess"] > 0.1
    for cond in ("teacher", "nds"):
        assert summary.loc[(cond, "eod", "group"), "p_value"] > 0.05
    assert not summary.xs("region", level="attribute")["significant_bh"].any()
    exceeds = extra["info"]["noise_floor"]["exceeds"]
    assert exceeds["group"]["eod"] == ["ds_kd_T1_a0.8", "ds_kd_T8_a0.8"] and exceeds["region"]["eod"] == []
    tests = tables["fairness_tests"].set_index(["comparison", "condition", "metric", "attribute"])
    for comparison in ("nds_vs_ds", "teacher_vs_ds"):
        found = tests.loc[(comparison, "ds_kd_T8_a0.8", "eod", "group")]
        assert found["difference"] > 0.1 and found["p_value_bh"] < 0.01  # DS less fair, beyond the floor


def test_summary_is_the_seed_mean_and_its_bh(audited):
    _, tables, _ = audited
    floor, summary = tables["noise_floor"], tables["noise_floor_summary"]
    keys = ["condition", "metric", "attribute"]
    by_run = floor.groupby(keys)
    means = by_run[["value", "null_mean", "excess"]].mean().add_suffix("_runs")
    joined = summary.join(means, on=keys).join(by_run["excess"].std(ddof=1).rename("std_runs"), on=keys)
    for column, runs in (("mean", "value"), ("null_mean", "null_mean"), ("excess", "excess")):
        assert np.allclose(joined[column], joined[f"{runs}_runs"])
    assert np.allclose(joined["excess_std"], joined["std_runs"])
    for _, family in summary.groupby(["metric", "attribute"]):
        assert np.allclose(family["p_value_bh"], benjamini_hochberg(family["p_value"].to_numpy()))
        assert (family["significant"] == (family["p_value"] <= 0.05)).all()


def test_fairness_tests_are_welch_over_seeds_of_the_excess_with_bh_over_temperatures(audited):
    _, tables, _ = audited
    floor, tests = tables["noise_floor"], tables["fairness_tests"]
    assert len(tests) == 2 * 2 * 2 * 4  # comparisons x DS conditions x attributes x metrics
    for row in tests.itertuples():
        pick = floor.query("metric == @row.metric and attribute == @row.attribute")
        mine = pick.query("condition == @row.condition")["excess"]
        theirs = pick.query("condition == @row.reference")["excess"]
        expected = scipy_stats.ttest_ind(theirs, mine, equal_var=False).pvalue
        assert row.p_value == pytest.approx(expected)
        assert row.difference == pytest.approx(mine.mean() - theirs.mean())
    for _, family in tests.groupby(["comparison", "metric", "attribute", "method", "alpha"]):
        assert len(family) == 2  # the two temperatures
        assert np.allclose(family["p_value_bh"], scipy_stats.false_discovery_control(family["p_value"]))


def test_reproducible_and_independent_of_the_row_order(audited, tmp_path: Path):
    _, tables, _ = audited
    shuffled, _ = _audit(_sweep(tmp_path / "shuffled", shuffle=True))
    for name in ("noise_floor", "noise_floor_summary", "fairness_tests"):
        pd.testing.assert_frame_equal(tables[name], shuffled[name], rtol=1e-12)


def test_console_and_json_carry_the_noise_floor(audited):
    _, _, extra = audited
    text = format_table(extra["result"])
    teacher = next(line for line in text.splitlines() if line.startswith("teacher"))
    assert "n.s." in teacher
    assert "group, conditions beyond the floor (BH over 4): DPD: " in text
    assert "EOD: ds_kd_T1_a0.8, ds_kd_T8_a0.8" in text
    assert "region, conditions beyond the floor (BH over 4): DPD: none; EOD: none" in text
    doc = json_document(extra["result"], extra["out"])
    assert doc["audit"]["noise_floor"]["permutations"] == B
    assert len(doc["noise_floor"]) == 4 * 2 * 4 and len(doc["fairness_tests"]) == 32
    row = next(r for r in doc["table"] if r["condition"] == "ds_kd_T8_a0.8")
    assert row["eod_p_value"]["group"] == pytest.approx(1 / (1 + B)) and row["eod_null_mean"]["region"] > 0


def test_no_permutations_no_noise_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    root = tmp_path / "s"
    make_synthetic_sweep(root, n_classes=3, n_samples=90, seeds=[0, 1], temperatures=[2], seed=1)
    assert main(["audit", str(root), "--permutations", "0", "--representation", "none"]) == 0
    out = capsys.readouterr().out
    assert "noise floor not computed (--permutations 0)" in out and "n.s." not in out
    assert pd.read_csv(root / "audit" / "noise_floor.csv").empty
    assert json.loads((root / "audit" / "audit.json").read_text())["noise_floor"]["computed"] is False
    assert main(["audit", str(root), "--permutations", "-3"]) == 2
    assert "--permutations must be an integer >= 0, got -3" in capsys.readouterr().err


def _simulated_results(gap_ds: float, sim: int, n_permutations: int) -> tuple[list[Condition], dict]:
    """NDS and one DS, 4 seeds each, on one simulated test set, with nulls from shared permutations.

    Both have the same accuracy; the NDS's group 1 loses 10 points of accuracy, the DS's ``gap_ds``.
    """
    effects = {"group_gap": {"teacher": 0.0, "nds": 0.1, "ds": gap_ds}, "accuracy": {"nds": 0.7, "ds": 0.7}}
    effects["degrade_drop"] = 0.0
    y_true, attributes, predictions = draw_test_set(
        ["nds", "ds"], n_classes=3, n_samples=300, n_seeds=4, effects=effects, temperature=4.0, seed=sim
    )
    perms = noise.within_class_permutations(
        y_true, attributes["group"], n_permutations=n_permutations, random_state=sim
    )
    conditions = [
        Condition("nds", "nds", "ce", None, None, "NDS"),
        Condition("ds", "ds", "kd", 4.0, 0.8, "DS"),
    ]
    results = {
        role: [
            SimpleNamespace(
                seed=s, nulls={("group", m): r for m, r in noise.null_distribution(p, perms).items()}
            )
            for s, p in enumerate(predictions[role])
        ]
        for role in ("nds", "ds")
    }
    return conditions, results


def test_between_condition_test_is_calibrated():
    """Equal planted disparity in NDS and DS: about 5% of 200 simulations reject at 0.05 (Binomial(200,
    0.05): 10 +- 3.1; the bounds are 3 sd, and every simulation has a fixed seed, so they cannot flake)."""
    p_values = []
    for sim in range(200):
        _, results = _simulated_results(0.1, sim, n_permutations=19)  # the null mean needs few permutations
        excess = {role: [r.nulls[("group", "eod")].excess for r in runs] for role, runs in results.items()}
        p_values.append(welch_p_value(excess["nds"], excess["ds"], "simulation"))
    p_values = np.array(p_values)
    assert 1 <= np.sum(p_values <= 0.05) <= 20
    assert 0.4 <= np.mean(p_values <= 0.5) <= 0.6  # sd 0.035


def test_between_condition_test_finds_a_planted_difference():
    """The DS's group 1 loses 40 points, the NDS's 10: DS less fair beyond the floor in (almost) every
    simulation; the DS's seed mean is beyond its own floor with the smallest p."""
    found = []
    for sim in range(1000, 1012):
        conditions, results = _simulated_results(0.4, sim, n_permutations=39)
        tests = fairness_tests_table(conditions, results, 0.05).set_index("metric")
        assert tests.loc["eod", "difference"] > 0
        found.append(tests.loc["eod", "p_value"])
        summary = noise_summary_table(conditions, results, 0.05).set_index(["condition", "metric"])
        assert summary.loc[("ds", "eod"), "p_value"] == pytest.approx(1 / 40)
    assert np.mean(np.array(found) <= 0.05) >= 0.9
