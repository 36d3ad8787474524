"""Issue "Fair distillation", end to end: one small sweep with every method, from config to report.

Every method writes the same per-run folder and predictions as KD, so the audit and the report need no
special cases: the BIRD tables list all of them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from kdfair.cli import main
from kdfair.methods.registry import METHODS
from kdfair.predictions import load_predictions

FAIR_METHODS = ["kd", "fkd", "fitnet", "at", "ad", "mfd", "bird", "bird_no_meta"]


@pytest.fixture(scope="module")
def sweep_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("all_methods")
    config = {
        "name": "all-methods",
        "data": {
            "name": "trifeature",
            "options": {"image_size": 16, "per_combination": 1, "cache_dir": str(folder / "cache")},
        },
        "teacher": {"model": "lenet5"},
        "student": {"model": "lenet5"},
        "train": {
            "epochs": 2,
            "batch_size": 32,
            "lr": 0.05,
            "milestones": [],
            "max_steps_per_epoch": 3,
            "threads": 1,
        },
        "distill": {
            "methods": FAIR_METHODS,
            "temperatures": [4],
            "alphas": [0.9],
            "attribute": "colour",
            "method_options": {"bird": {"warmup_epochs": 1}, "bird_no_meta": {"warmup_epochs": 1}},
        },
        "seeds": [0, 1],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["sweep", str(path), "--out", str(folder / "out")]) == 0
    return folder / "out"


def test_every_registered_method_is_in_the_sweep() -> None:
    assert sorted(FAIR_METHODS + ["ce"]) == sorted(METHODS)


def test_every_method_writes_a_finished_run_with_audit_format_predictions(sweep_out: Path) -> None:
    for method in FAIR_METHODS:
        for seed in (0, 1):
            run = sweep_out / "runs" / f"ds_{method}_T4_a0.9_s{seed}"
            assert (run / "DONE").exists(), run
            predictions = load_predictions(run)
            assert predictions.meta.method == method
            assert predictions.probs.shape == (1000, 10)
            assert set(predictions.attributes) == {"colour", "texture"}
            assert predictions.features is not None and np.isfinite(predictions.features).all()


def test_bird_meta_moves_phi_and_no_meta_does_not(sweep_out: Path) -> None:
    import torch

    def phi(run: str) -> torch.Tensor:
        state = torch.load(sweep_out / "runs" / run / "checkpoint.pt", map_location="cpu", weights_only=False)
        method_state = state["methods"][0] if "methods" in state else state["method"]
        return next(v for k, v in method_state.items() if k.endswith("phi"))

    from kdfair.methods.bird import BIRDOptions

    initial = torch.full_like(phi("ds_bird_T4_a0.9_s0"), BIRDOptions().phi_init)
    assert not torch.equal(phi("ds_bird_T4_a0.9_s0"), initial)
    assert torch.equal(phi("ds_bird_no_meta_T4_a0.9_s0"), initial)


BIRD_COLUMNS = {  # report column (percent) -> audit metric (fraction) in summary.csv
    "AUROC (%)": ("auroc", ""),
    "F1 (%)": ("f1", ""),
    "mean-DEO (%)": ("deo_mean", "colour"),
    "max-DEO (%)": ("deo_max", "colour"),
}


def _summary(sweep_out: Path) -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """(role, method, metric, attribute) -> (mean, std) from the audit's summary.csv (fractions)."""
    rows = csv.DictReader((sweep_out / "audit" / "summary.csv").open())
    return {
        (r["role"], r["method"], r["metric"], r["attribute"]): (float(r["mean"]), float(r["std"]))
        for r in rows
    }


def _markdown_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, body rows) of the one pipe table in a report .md file, cells stripped."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    assert set(cells[1]) <= {"---", "---:"}, path  # the alignment row
    return cells[0], cells[2:]


def test_report_has_the_bird_table_with_every_method(sweep_out: Path) -> None:
    counts = list(csv.DictReader((sweep_out / "audit" / "significance_counts.csv").open()))
    assert {row["method"] for row in counts} == set(FAIR_METHODS)
    tables = sweep_out / "report" / "tables"
    rows = list(csv.DictReader((tables / "bird_methods_colour.csv").open()))
    roles = {"Teacher": "teacher", "NDS": "nds", "DS": "ds"}
    keys = [(roles[r["Model"]], r["Method"]) for r in rows]
    # one row per condition: the teacher and NDS (both trained with ce), then one per distillation method
    assert sorted(keys) == sorted([("teacher", "ce"), ("nds", "ce")] + [("ds", m) for m in FAIR_METHODS])
    summary = _summary(sweep_out)
    for row, (role, method) in zip(rows, keys, strict=True):
        if role == "ds":
            assert (float(row["T"]), float(row["α"])) == (4.0, 0.9)
        for column, (metric, attribute) in BIRD_COLUMNS.items():
            mean, std = float(row[f"{column} mean"]), float(row[f"{column} std"])
            assert np.isfinite(mean) and np.isfinite(std), (method, column)
            audit_mean, audit_std = summary[(role, method, metric, attribute)]
            # the report writes percent, the audit fractions
            assert mean == pytest.approx(100.0 * audit_mean, rel=1e-9, abs=1e-9), (role, method, column)
            assert std == pytest.approx(100.0 * audit_std, rel=1e-9, abs=1e-9), (role, method, column)
            assert 0.0 <= mean <= 100.0
    # the Markdown rendering: the same rows, each number the CSV's at 2 decimals (mean ± std), DEO cells
    # of a condition the audit flags as degenerate (condition_health.csv) marked † (kdfair.degenerate)
    flags = csv.DictReader((sweep_out / "audit" / "condition_health.csv").open())
    health = {r["condition"]: r["degenerate"] == "True" for r in flags}
    header, md_rows = _markdown_rows(tables / "bird_methods_colour.md")
    assert header[:4] == ["Method", "Model", "T", "α"]
    assert [(r[0], r[1]) for r in md_rows] == [(r["Method"], r["Model"]) for r in rows]
    for md_row, row, (role, method) in zip(md_rows, rows, keys, strict=True):
        degenerate = health[role if role != "ds" else f"ds_{method}_T4_a0.9"]
        for column in BIRD_COLUMNS:
            mean, std = float(row[f"{column} mean"]), float(row[f"{column} std"])
            marked = degenerate and "DEO" in column  # other marks (n.s.: the noise floor) may follow
            cell = md_row[header.index(column)]
            assert cell.startswith(f"{mean:.2f} ± {std:.2f}"), (row["Method"], column)
            assert ("†" in cell) == marked, (row["Method"], column)
            assert ("†" in row.get(f"{column} mark", "")) == marked, (row["Method"], column)
    inheritance = list(csv.DictReader((tables / "bird_inheritance_colour.csv").open()))
    assert [r["Training"] for r in inheritance[:2]] == ["teacher", "from scratch (NDS)"]
    assert len(inheritance) == 2 + len(FAIR_METHODS)
    _, inheritance_md = _markdown_rows(tables / "bird_inheritance_colour.md")
    assert len(inheritance_md) == len(inheritance)
    html = (sweep_out / "report" / "index.html").read_text()
    assert "bird_methods_colour" in html or "BIRD table" in html
