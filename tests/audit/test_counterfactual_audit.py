"""The audit's pairs: counterfactual twins with known answers, kNN pairs in the teacher's feature space by
default, pair diagnostics and the warning for pixel-like pairs (SPEC §6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from counterfactual_fixtures import write_pair_runs

from kdfair.audit.engine import audit_runs
from kdfair.audit.summary import format_table, json_document
from kdfair.cli import main
from kdfair.counterfactual import COUNTERFACTUAL_NPZ, save_counterfactual
from kdfair.errors import PredictionFormatError


def _metric(result, condition: str, metric: str, attribute: str) -> tuple[float, float]:
    summary = result.summary
    hit = summary[
        (summary["condition"] == condition)
        & (summary["metric"] == metric)
        & (summary["attribute"] == attribute)
    ]
    return float(hit["mean"].item()), float(hit["std"].item())


def test_known_counterfactual_values_per_condition_and_attribute(tmp_path: Path) -> None:
    """Teacher and DS ignore colour and texture: 0. The NDS predicts the colour alone: every colour twin is
    disjoint (TV 1, all flip), texture twins keep the colour (0)."""
    write_pair_runs(tmp_path)
    result = audit_runs(tmp_path)
    for condition in ("teacher", "ds_kd_T2_a0.8"):
        for attribute in ("colour", "texture"):
            for metric in ("counterfactual_unfairness", "counterfactual_flip_rate"):
                assert _metric(result, condition, metric, attribute) == (0.0, 0.0)
    assert _metric(result, "nds", "counterfactual_unfairness", "colour") == pytest.approx((1.0, 0.0))
    assert _metric(result, "nds", "counterfactual_flip_rate", "colour") == (1.0, 0.0)
    assert _metric(result, "nds", "counterfactual_unfairness", "texture") == (0.0, 0.0)
    info = result.info["counterfactual"]
    assert info == {
        "n_runs": 6,
        "n_runs_total": 6,
        "pairs": {"colour": 200, "texture": 100},
        "runs_without": [],
    }
    rows = {row["condition"]: row for row in json_document(result, tmp_path)["table"]}
    assert rows["nds"]["counterfactual_flip_rate"] == {"colour": 1.0, "texture": 0.0}
    table = format_table(result)
    assert "CF TV colour" in table and "CF flips texture %" in table
    nds_line = next(line for line in table.splitlines() if line.startswith("nds "))
    assert "1.0000" in nds_line and "100.00" in nds_line


def test_knn_pairs_default_to_the_teacher_features_with_diagnostics(tmp_path: Path) -> None:
    write_pair_runs(tmp_path, pixel_like_representation=True)
    fairness = audit_runs(tmp_path).info["individual_fairness"]
    assert fairness["space"] == "teacher" and fairness["option"] == "auto"
    assert fairness["representation"] == "teacher features (teacher_s0)"
    assert fairness["pairs"]["same_label"] == 1.0  # teacher features cluster by shape, the label
    assert fairness["pairs"]["same_group"]["colour"] == 0.0  # each shape comes in 10 colours
    assert "favours the teacher" in fairness["note"]


def test_pixel_like_pairs_trigger_the_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Neighbours in a colour-dominated space (like raw pixels) share the colour, not the shape label."""
    write_pair_runs(tmp_path, pixel_like_representation=True)
    assert main(["audit", str(tmp_path), "--representation", "input"]) == 0
    stdout = capsys.readouterr().out
    info = json.loads((tmp_path / "audit" / "audit.json").read_text())
    pairs = info["individual_fairness"]["pairs"]
    assert info["individual_fairness"]["space"] == "input"
    assert pairs["same_label"] < 0.5 and pairs["same_group"]["colour"] == 1.0
    assert any("of the kNN pairs (input space) have the same true label" in w for w in info["warnings"])
    assert "WARNING: only" in stdout and "measure accuracy here, not fairness" in stdout


def test_no_teacher_features_skips_knn_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """External predictions without features: no silent fallback to representation.npz."""
    write_pair_runs(tmp_path, pixel_like_representation=True, teacher_features=False)
    assert main(["audit", str(tmp_path)]) == 0
    stdout = capsys.readouterr().out
    info = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert info["individual_fairness"]["space"] == "none" and info["individual_fairness"]["pairs"] is None
    assert "no teacher run with a 'features' array" in info["individual_fairness"]["note"]
    assert any("individual fairness (kNN) skipped" in w for w in info["warnings"])
    assert "note: kNN individual fairness skipped" in stdout
    metrics = set(pd.read_csv(tmp_path / "audit" / "run_metrics.csv")["metric"])
    assert "individual_unfairness" not in metrics and "counterfactual_unfairness" in metrics


def test_runs_without_twins_are_named_and_bad_twins_are_errors(tmp_path: Path) -> None:
    write_pair_runs(tmp_path)
    (tmp_path / "runs" / "nds_s1" / COUNTERFACTUAL_NPZ).unlink()
    result = audit_runs(tmp_path)
    assert result.info["counterfactual"]["runs_without"] == ["nds_s1"]
    assert any("cover 5 of 6 runs" in w for w in result.info["warnings"])
    assert _metric(result, "nds", "counterfactual_flip_rate", "colour")[0] == 1.0  # n_seeds 1
    with np.load(tmp_path / "runs" / "nds_s0" / COUNTERFACTUAL_NPZ) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["source_id"] = arrays["source_id"].copy()
    arrays["source_id"][3] = 10_000
    save_counterfactual(tmp_path / "runs" / "nds_s0", **arrays)
    with pytest.raises(PredictionFormatError, match="1 'source_id' values are not sample ids"):
        audit_runs(tmp_path)


def test_report_shows_the_counterfactual_table_figure_and_the_pair_warning(tmp_path: Path) -> None:
    from kdfair.audit.write import write_audit
    from kdfair.report import build_report

    write_pair_runs(tmp_path, pixel_like_representation=True)
    write_audit(audit_runs(tmp_path, representation="input"), tmp_path / "audit")
    index = build_report(tmp_path / "audit", tmp_path / "report")
    table = (tmp_path / "report" / "tables" / "table4_counterfactual_fairness.md").read_text()
    assert "CF unfairness colour" in table and "Flips texture (%)" in table
    nds = next(line for line in table.splitlines() if line.startswith("| NDS"))
    assert "1.0000 ± 0.0000" in nds and "100.00 ± 0.00" in nds and "0.0000 ± 0.0000" in nds
    assert "Pairs per seed: colour: 200 twins, texture: 100 twins" in table
    knn = (tmp_path / "report" / "tables" / "table4_individual_fairness.md").read_text()
    assert "Pairs with the same true label: 0%; with the same protected group: colour 100%" in knn
    assert "WARNING: fewer than half of these pairs share the true label" in knn
    assert {p.name for p in (tmp_path / "report" / "figures").glob("fig9_*.png")} == {
        "fig9_counterfactual_colour.png",
        "fig9_counterfactual_texture.png",
    }
    page = index.read_text(encoding="utf-8")
    assert "of the kNN pairs (input space) have the same true label" in page  # the audit's warning


def test_report_says_the_knn_space_is_the_teachers(tmp_path: Path) -> None:
    from kdfair.audit.write import write_audit
    from kdfair.report import build_report

    write_pair_runs(tmp_path)
    write_audit(audit_runs(tmp_path), tmp_path / "audit")
    build_report(tmp_path / "audit", tmp_path / "report", figures=False)
    knn = (tmp_path / "report" / "tables" / "table4_individual_fairness.md").read_text()
    assert "k = 5 nearest in the teacher's penultimate feature space (teacher_s0), the same pairs" in knn
    assert "This favours the teacher" in knn and "WARNING" not in knn
