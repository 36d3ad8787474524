"""A 1,000-class audit renders; the class-wise figures show at most the top-k classes, chosen by "
"|mean change|."""

from __future__ import annotations

import numpy as np
from report_synthetic import write_synthetic_audit

from kdfair.report import load_audit
from kdfair.report.figures import HEATMAP_CLASSES, fig_class_accuracy, fig_disagreement, top_classes


def test_thousand_classes_top_k(tmp_path):
    audit = write_synthetic_audit(
        tmp_path / "audit",
        n_classes=1000,
        temperatures=(2, 8),
        seeds=(0, 1, 2),
        shifted_classes=(5, 500, 999),
    )
    data = load_audit(tmp_path / "audit")
    figure = fig_class_accuracy(data, tmp_path / "fig", top_k=12)
    shown = figure.meta["classes_shown"]
    tests = audit.class_tests[audit.class_tests.comparison == "nds_vs_ds"]
    score = tests.assign(a=tests.mean_change.abs()).groupby("class").a.max().to_numpy()
    assert len(shown) == 12
    assert sorted(shown) == sorted(np.argsort(-score, kind="stable")[:12].tolist())
    assert {5, 500, 999} <= set(shown)  # the shifted classes change most
    assert figure.png.stat().st_size > 10_000 and figure.svg.stat().st_size > 10_000
    heat = fig_disagreement(data, tmp_path / "fig")
    assert len(heat.meta["classes_shown"]) == HEATMAP_CLASSES
    assert top_classes(data, ["ds_kd_T2_a0.8"], 2000) == list(range(1000))
