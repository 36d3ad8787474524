"""The audit's fast paths give the values of the plain computations: AUROC modes, the kNN graph split
over forked workers, the float16 load path and the pre-validated individual unfairness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kdfair.audit import engine
from kdfair.audit.engine import audit_runs
from kdfair.audit.parallel import row_shares, shared_array
from kdfair.cli import main
from kdfair.errors import KdfairError, PredictionFormatError
from kdfair.metrics import consistency, individual_unfairness, knn_graph
from kdfair.metrics.individual import knn_rows, prepare_knn
from kdfair.predictions import load_predictions


def _metrics(result: engine.AuditResult) -> set[str]:
    return set(result.run_metrics["metric"])


def test_auroc_auto_computes_up_to_the_class_limit(sweep_dir: Path) -> None:
    auto = audit_runs(sweep_dir, jobs=1)  # 8 classes <= 100
    always = audit_runs(sweep_dir, jobs=1, auroc="always")
    assert "auroc" in _metrics(auto)
    assert auto.info["auroc"] == {"mode": "auto", "computed": True, "note": None}
    pd.testing.assert_frame_equal(auto.run_metrics, always.run_metrics)


def test_auroc_auto_leaves_it_out_above_the_limit_with_one_note(
    sweep_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = audit_runs(sweep_dir, jobs=1)
    monkeypatch.setattr(engine, "AUROC_MAX_CLASSES", 7)  # the sweep has 8 classes
    auto = audit_runs(sweep_dir, jobs=1)
    assert "auroc" not in _metrics(auto)
    assert auto.info["auroc"]["computed"] is False and "8 classes > 7" in auto.info["auroc"]["note"]
    assert not any("auroc" in w.lower() for w in auto.warnings)  # a note, not warnings
    rest = full.run_metrics[full.run_metrics["metric"] != "auroc"].reset_index(drop=True)
    pd.testing.assert_frame_equal(auto.run_metrics, rest)
    always = audit_runs(sweep_dir, jobs=1, auroc="always")
    pd.testing.assert_frame_equal(always.run_metrics, full.run_metrics)


def test_auroc_never_and_unknown_mode(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "auroc" not in _metrics(audit_runs(tiny_sweep, jobs=1, auroc="never"))
    with pytest.raises(KdfairError, match="always, auto, never"):
        audit_runs(tiny_sweep, auroc="sometimes")
    assert main(["audit", str(tiny_sweep), "--auroc", "never"]) == 0
    assert "AUROC left out (--auroc never)" in capsys.readouterr().out
    info = json.loads((tiny_sweep / "audit" / "audit.json").read_text())
    assert info["auroc"] == {"mode": "never", "computed": False, "note": "AUROC left out (--auroc never)"}


def test_pool_builds_the_same_knn_graph_and_metrics(sweep_dir: Path) -> None:
    one, two = audit_runs(sweep_dir, jobs=1), audit_runs(sweep_dir, jobs=2)
    pd.testing.assert_frame_equal(one.run_metrics, two.run_metrics)
    assert two.timings["knn"] > 0 and two.timings["load_total"] > 0


def test_knn_rows_in_shares_equal_the_whole_graph() -> None:
    points = np.random.default_rng(4).standard_normal((700, 6))
    expected = knn_graph(points, 4)
    problem = prepare_knn(points, 4)
    indices, distances = shared_array((700, 4), np.int64), shared_array((700, 4), np.float64)
    shares = row_shares(700, 64, 5)
    assert shares[0][0] == 0 and shares[-1][1] == 700
    assert all(a[1] == b[0] and (a[1] - a[0]) % 64 == 0 for a, b in zip(shares, shares[1:], strict=False))
    for start, stop in reversed(shares):
        knn_rows(problem, start, stop, indices, distances)
    np.testing.assert_array_equal(indices, expected[0])
    np.testing.assert_array_equal(distances, expected[1])


def _save_run(run_dir: Path, logits: np.ndarray) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"role": "teacher", "seed": 0}))
    n = len(logits)
    np.savez(
        run_dir / "predictions.npz",
        sample_id=np.arange(n),
        y_true=np.arange(n) % logits.shape[1],
        logits=logits,
    )


def test_float16_load_equals_the_plain_softmax(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((600, 37)) * 4).astype(np.float16)
    logits[5, :3] = logits[5, 3]  # ties stay ties
    _save_run(tmp_path / "r", logits)
    probs = load_predictions(tmp_path / "r").probs
    z = logits.astype(np.float32)  # the straightforward computation, in one piece
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    assert probs.dtype == np.float32
    np.testing.assert_array_equal(probs, z)
    assert probs[5, 0] == probs[5, 3]


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_non_finite_logits_counted_exactly(tmp_path: Path, dtype: type) -> None:
    logits = np.zeros((50, 3), dtype=dtype)
    logits[[3, 3, 7, 9], [0, 1, 2, 0]] = [np.nan, np.inf, -np.inf, np.inf]
    _save_run(tmp_path / "r", logits)
    with pytest.raises(PredictionFormatError, match="'logits' has NaN or inf values in 3 rows"):
        load_predictions(tmp_path / "r")


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_huge_finite_float32_logits_are_not_mistaken_for_inf(tmp_path: Path) -> None:
    logits = np.full((4, 3), 3e38, dtype=np.float32)  # row sums overflow to inf; values are finite
    logits[:, 0] = 0.0
    _save_run(tmp_path / "r", logits)
    np.testing.assert_allclose(load_predictions(tmp_path / "r").probs[:, 1], 0.5)


def test_prevalidated_individual_unfairness_and_consistency_with_n_classes() -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(6), size=300).astype(np.float32)
    graph = knn_graph(rng.standard_normal((300, 3)), 5)
    plain = individual_unfairness(probs, k=5, neighbors=graph)
    assert individual_unfairness(probs, k=5, neighbors=graph, validated=True) == plain
    y_pred = np.minimum(probs.argmax(axis=1), 4)  # class 5 never predicted: n_classes matters
    with_n = consistency(y_pred, k=5, neighbors=graph, n_classes=6)
    inferred = consistency(y_pred, k=5, neighbors=graph)
    assert with_n == pytest.approx(1 - (1 - inferred) * 5 / 6, abs=1e-12)
