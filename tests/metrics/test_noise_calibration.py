"""Calibration of the permutation null (SPEC §5 "Noise floor") on simulated models from kdfair.synthetic.

Under the null (``group_gap`` 0: errors independent of the group given the class) the p-values must be close
to uniform: about 5% at or below 0.05 over a few hundred simulations. A planted disparity must give small
p-values. Every simulation has its own fixed seed, so the counts below are deterministic: the bounds (about
+-3 binomial standard deviations around the nominal rate) cannot flake.
"""

from __future__ import annotations

import numpy as np
import pytest

from kdfair.metrics import noise
from kdfair.synthetic import draw_test_set

N_SIMULATIONS = 400
N_PERMUTATIONS = 99  # p on a grid of 0.01: the 0.05 and 0.5 cut-offs fall on it


def _gap(value: float) -> dict[str, object]:
    return {"group_gap": {"teacher": value, "nds": value, "ds": value}}


def _p_values(gap: float, n_simulations: int, seed: int) -> dict[str, np.ndarray]:
    """Per metric, one p-value per simulated test set and model (a fresh test set each time)."""
    p_values: dict[str, list[float]] = {m: [] for m in noise.NULL_METRICS}
    for sim in range(n_simulations):
        y_true, attributes, predictions = draw_test_set(
            ["nds"], n_classes=4, n_samples=400, effects=_gap(gap), seed=seed + sim
        )
        result = noise.permutation_null(
            y_true,
            predictions["nds"][0],
            sensitive_features=attributes["group"],
            n_permutations=N_PERMUTATIONS,
            random_state=seed + sim,
        )
        for metric, found in result.items():
            p_values[metric].append(found.p_value)
    return {m: np.array(v) for m, v in p_values.items()}


@pytest.fixture(scope="module")
def null_p_values() -> dict[str, np.ndarray]:
    return _p_values(0.0, N_SIMULATIONS, seed=10_000)


@pytest.mark.parametrize("metric", noise.NULL_METRICS)
def test_p_values_are_calibrated_when_errors_ignore_the_group(null_p_values, metric):
    p = null_p_values[metric]
    assert np.all((p > 0) & (p <= 1))
    # Binomial(400, 0.05): mean 20, sd 4.4; a valid permutation test may be conservative (ties), not liberal.
    assert 7 <= np.sum(p <= 0.05) <= 33
    assert 0.42 <= np.mean(p <= 0.5) <= 0.6  # sd 0.025 around 0.5 (a little above it: ties)
    # roughly uniform over the whole range: each decile holds 40 +- 20 (3.3 sd)
    deciles = np.histogram(p, bins=np.linspace(0, 1, 11))[0]
    assert deciles.min() >= 20 and deciles.max() <= 60


def test_planted_disparity_gives_small_p_values():
    """A group-1 accuracy 25 points lower: EOD and DEO beyond the noise floor in (almost) every simulation."""
    p = _p_values(0.25, 40, seed=20_000)
    for metric in ("eod", "deo_mean"):
        assert np.mean(p[metric] <= 0.02) >= 0.95
        assert np.median(p[metric]) == pytest.approx(1 / (1 + N_PERMUTATIONS))


def test_noise_floor_is_large_when_cells_are_small():
    """With errors independent of the group, the observed EOD sits near the null mean, far from 0."""
    y_true, attributes, predictions = draw_test_set(
        ["nds"], n_classes=10, n_samples=200, effects=_gap(0.0), seed=3
    )
    result = noise.permutation_null(
        y_true, predictions["nds"][0], sensitive_features=attributes["group"], n_permutations=199
    )["eod"]
    assert result.null_mean > 0.15  # about 10 samples per (class, group) cell
    assert abs(result.excess) < 0.5 * result.null_mean
    assert result.null_q95 > result.null_mean
