"""The prediction format: run.json and predictions.npz are validated with one-line, named errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kdfair.discovery import discover_runs
from kdfair.errors import PredictionFormatError
from kdfair.io import save_npz_atomic, write_json_atomic
from kdfair.predictions import load_predictions, read_run_meta, softmax


def _write_run(path: Path, meta: dict, **arrays: np.ndarray) -> Path:
    write_json_atomic(path / "run.json", meta)
    save_npz_atomic(path / "predictions.npz", **arrays)
    return path


def _arrays(n: int = 6, c: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "sample_id": np.arange(n),
        "y_true": np.arange(n) % c,
        "logits": rng.normal(size=(n, c)).astype(np.float32),
        "attr_sex": np.array(["f", "m"] * (n // 2)),
    }


def test_round_trip_decodes_groups_and_softmaxes(tmp_path: Path) -> None:
    arrays = _arrays()
    _write_run(tmp_path / "r", {"role": "ds", "seed": 1, "temperature": 4, "alpha": 0.8}, **arrays)
    run = load_predictions(tmp_path / "r")
    assert run.meta.method == "kd" and run.meta.group_key == ("ds", "kd", 4.0, 0.8)
    assert run.attribute_levels == {"sex": ["f", "m"]}
    np.testing.assert_array_equal(run.attributes["sex"], np.arange(6) % 2)
    expected = np.exp(arrays["logits"]) / np.exp(arrays["logits"]).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(run.probs, expected, rtol=1e-6)
    np.testing.assert_array_equal(run.y_pred, arrays["logits"].argmax(axis=1))


def test_teacher_defaults_to_ce_and_rejects_temperature(tmp_path: Path) -> None:
    _write_run(tmp_path / "t", {"role": "teacher", "seed": 0}, **_arrays())
    assert read_run_meta(tmp_path / "t").method == "ce"
    write_json_atomic(tmp_path / "t" / "run.json", {"role": "teacher", "seed": 0, "temperature": 2})
    with pytest.raises(PredictionFormatError, match="takes no 'temperature'"):
        read_run_meta(tmp_path / "t")


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"role": "student", "seed": 0}, "unknown role 'student'"),
        ({"role": "ds", "seed": 0, "temperature": 2}, "needs both"),
        ({"role": "ds", "seed": 0, "temperature": -1, "alpha": 0.5}, "temperature must be > 0"),
        ({"role": "ds", "seed": 0, "temperature": 1, "alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"role": "nds", "seed": 0, "colour": "red"}, "colour"),
    ],
)
def test_bad_run_json(tmp_path: Path, meta: dict, match: str) -> None:
    _write_run(tmp_path / "r", meta, **_arrays())
    with pytest.raises(PredictionFormatError, match=match):
        read_run_meta(tmp_path / "r")


def _mutate(arrays: dict[str, np.ndarray], key: str, value: np.ndarray | None) -> dict[str, np.ndarray]:
    out = dict(arrays)
    if value is None:
        out.pop(key)
    else:
        out[key] = value
    return out


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("y_true", np.arange(5), "expected \\(6,\\)"),
        ("logits", np.full((6, 3), np.nan, dtype=np.float32), "NaN or inf values in 6 rows"),
        ("y_true", np.array([0, 1, 2, 3, 0, 1]), "outside \\[0, 3\\)"),
        ("attr_sex", np.array(["f"] * 6), "only one group"),
        ("sample_id", np.zeros(6, dtype=int), "not unique"),
        ("y_true", None, "missing array 'y_true'"),
        ("y_true", np.linspace(0, 1, 6), "integer class indices"),
    ],
)
def test_bad_arrays(tmp_path: Path, key: str, value: np.ndarray | None, match: str) -> None:
    _write_run(tmp_path / "r", {"role": "nds", "seed": 0}, **_mutate(_arrays(), key, value))
    with pytest.raises(PredictionFormatError, match=match):
        load_predictions(tmp_path / "r")


def test_probs_must_be_distributions(tmp_path: Path) -> None:
    arrays = _mutate(_arrays(), "logits", None)
    arrays["probs"] = np.full((6, 3), 0.5, dtype=np.float32)
    _write_run(tmp_path / "r", {"role": "nds", "seed": 0}, **arrays)
    with pytest.raises(PredictionFormatError, match="sum to 1"):
        load_predictions(tmp_path / "r")


def test_truncated_npz(tmp_path: Path) -> None:
    _write_run(tmp_path / "r", {"role": "nds", "seed": 0}, **_arrays(n=200))
    npz = tmp_path / "r" / "predictions.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    with pytest.raises(PredictionFormatError, match="truncated or corrupt"):
        load_predictions(tmp_path / "r")


def test_discover_runs_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(PredictionFormatError, match="no run folders"):
        discover_runs(tmp_path)
    for name in ("b", "a"):
        _write_run(tmp_path / name, {"role": "nds", "seed": 0}, **_arrays())
    assert [p.name for p in discover_runs(tmp_path)] == ["a", "b"]


def test_softmax_is_stable_for_large_logits() -> None:
    logits = np.array([[1000.0, 0.0], [0.0, 0.0]], dtype=np.float16)
    probs = softmax(logits)
    np.testing.assert_allclose(probs, [[1.0, 0.0], [0.5, 0.5]], atol=1e-6)
    assert json.dumps(probs.tolist())
