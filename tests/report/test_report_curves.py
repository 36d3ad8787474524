"""Learning curves in the report (fig8_learning_curves) and the convergence warnings of tables and page."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_sweep import copy_sweep

from kdfair.audit.engine import audit_runs
from kdfair.audit.write import write_audit
from kdfair.report import build_report
from kdfair.report.figures_curves import mean_curves

EPOCHS = 12


def _curve(converged: bool, seed: int) -> pd.DataFrame:
    epochs = np.arange(1, EPOCHS + 1)
    loss = 0.3 + 2.0 * np.exp(-epochs / 1.5) if converged else np.linspace(2.3, 1.0 + 0.1 * seed, EPOCHS)
    acc = 0.9 - 0.6 * np.exp(-epochs / 1.5)
    return pd.DataFrame({"epoch": epochs, "lr": 0.05, "train_loss": loss, "train_acc": acc})


@pytest.fixture(scope="module")
def curves_report(real_sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(audit, report) of the real sweep with epochs.csv everywhere: NDS still falling, the rest converged."""
    root = copy_sweep(real_sweep, tmp_path_factory.mktemp("curves") / "sweep")
    for run in sorted((root / "runs").iterdir()):
        seed = int(run.name.rsplit("_s", 1)[1])
        _curve(not run.name.startswith("nds"), seed).to_csv(run / "epochs.csv", index=False)
    audit = write_audit(audit_runs(root), root / "audit")
    build_report(audit, root / "report")
    return audit, root / "report"


def test_mean_curves_by_hand() -> None:
    curves = pd.DataFrame(
        {
            "condition": ["nds"] * 4 + ["teacher"],
            "seed": [0, 0, 1, 1, 0],
            "epoch": [1, 2, 1, 2, 1],
            "train_loss": [2.0, 1.0, 4.0, 2.0, 9.0],
        }
    )
    stats = mean_curves(curves, "nds", "train_loss")
    assert stats["epoch"].tolist() == [1, 2]
    assert stats["mean"].tolist() == [3.0, 1.5]
    np.testing.assert_allclose(stats["std"], [np.sqrt(2.0), np.sqrt(0.5)])  # ddof 1
    assert stats["n"].tolist() == [2, 2]


def test_the_figure_is_written_and_on_the_page(curves_report: tuple[Path, Path]) -> None:
    _, out = curves_report
    for suffix in ("png", "svg"):
        assert (out / "figures" / f"fig8_learning_curves.{suffix}").stat().st_size > 1000
    page = (out / "index.html").read_text()
    start = page.index('<figure id="fig8_learning_curves"><img src="data:image/png;base64,')
    caption = html.unescape(page[start : page.index("</figure>", start)])
    assert "Training loss and training accuracy per epoch" in caption
    assert "1 condition(s) had not converged by the audit's criterion" in caption
    svg = (out / "figures" / "fig8_learning_curves.svg").read_text()
    # the legend (matplotlib writes each text as a comment before its glyph paths)
    assert "<!-- NDS (not converged 2/2) -->" in svg and "<!-- DS kd T=2 a=0.8 -->" in svg


def test_tables_and_page_warn_about_the_unconverged_condition(curves_report: tuple[Path, Path]) -> None:
    audit, out = curves_report
    table1 = (out / "tables" / "table1_accuracy_significance.md").read_text()
    assert "_Note:_ Not converged: NDS (2/2 seeds); their numbers may change with longer training." in table1
    assert "†" not in (out / "tables.md").read_text()  # nothing degenerate here
    page = (out / "index.html").read_text()
    assert "<strong>NDS: not converged</strong> in 2 of 2 seeds with learning curves (seeds 0, 1)" in page
    assert "Convergence criterion: training loss flat at the end" in page
    curves = pd.read_csv(audit / "learning_curves.csv")
    assert set(curves["condition"]) == {"teacher", "nds", "ds_kd_T2_a0.8", "ds_kd_T4_a0.8"}


def test_without_curves_the_figure_is_left_out_with_a_note(real_sweep: Path, tmp_path: Path) -> None:
    root = copy_sweep(real_sweep, tmp_path / "sweep")
    audit = write_audit(audit_runs(root), root / "audit")
    assert not (audit / "learning_curves.csv").exists()
    page = build_report(audit, root / "report").read_text()
    assert not (root / "report" / "figures" / "fig8_learning_curves.png").exists()
    assert "Learning curves (need epochs.csv in the run folders) omitted" in page
    assert "Not converged" not in page and 'id="health"' not in page
