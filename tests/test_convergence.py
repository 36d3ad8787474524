"""kdfair.convergence: the criterion on hand-worked curves and on exponential curves of known tau."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kdfair.convergence import assess_convergence, high_lr_epochs, window_change


def _exp_curve(n_epochs: int, tau: float, floor: float = 0.3, amplitude: float = 2.0) -> np.ndarray:
    """Epoch-mean losses ``floor + amplitude exp(-(e - 0.5) / tau)``, e = 1..n."""
    epochs = np.arange(1, n_epochs + 1)
    return floor + amplitude * np.exp(-(epochs - 0.5) / tau)


def test_window_change_by_hand() -> None:
    # losses 10, 8, 6, 4, 3, 2: last 2 epochs mean 2.5, the 2 before mean 5.0; range 8 -> (5 - 2.5) / 8
    loss = np.array([10.0, 8.0, 6.0, 4.0, 3.0, 2.0])
    assert window_change(loss, 2, 8.0) == pytest.approx(2.5 / 8)
    assert window_change(loss, 3, 8.0) == pytest.approx((8.0 - 3.0) / 8)  # (10+8+6)/3 - (4+3+2)/3
    assert math.isnan(window_change(loss, 4, 8.0))  # needs 8 epochs


def test_a_loss_still_falling_is_flagged() -> None:
    # a straight line: the last 10% (2 epochs of 20) fall by 2/19 of the range, > 2 %
    loss = np.linspace(2.0, 1.0, 20)
    result = assess_convergence(loss)
    assert not result.converged
    assert result.tail_epochs == 2 and result.late_epochs == 5
    assert result.tail_change == pytest.approx(2 / 19)  # each epoch falls 1/19 of the range
    assert result.late_change == pytest.approx(5 / 19)
    assert "still falling" in result.reason


def test_a_converged_loss_is_not_flagged() -> None:
    loss = _exp_curve(40, tau=4.0)  # 10 time constants
    result = assess_convergence(loss)
    assert result.converged and result.reason == "converged"
    assert abs(result.tail_change) < 1e-3 and abs(result.late_change) < 0.02
    assert result.epochs == 40 and result.tail_epochs == 4 and result.late_epochs == 10


@pytest.mark.parametrize("tau", [3.0, 5.0, 10.0, 20.0])
def test_calibration_on_exponential_curves(tau: float) -> None:
    # documented in kdfair.convergence: 4 tau (1.8 % of the drop left) is flagged, 5 tau (0.7 %) passes
    assert not assess_convergence(_exp_curve(int(4 * tau), tau)).converged
    assert assess_convergence(_exp_curve(int(5 * tau), tau)).converged
    assert not assess_convergence(_exp_curve(int(2 * tau), tau)).converged


def test_high_lr_epochs() -> None:
    assert high_lr_epochs(None, 7) == 7
    assert high_lr_epochs([0.1] * 5, 5) == 5
    # step decay after epoch 3: lr 0.1, 0.1, 0.1, 0.01, 0.01 -> 3 high-lr epochs
    assert high_lr_epochs([0.1, 0.1, 0.1, 0.01, 0.01], 5) == 3
    # warm-up 0.05 then 0.1 counts from the start; cosine over 8 epochs: lr >= 0.05 up to epoch 5 (0.5 at e=4)
    cosine = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 8)) for e in range(8)]
    assert high_lr_epochs(cosine, 8) == 5


def test_an_annealed_schedule_that_stopped_early_is_flagged() -> None:
    # 20 epochs: still falling steeply while the lr is high (epochs 1-10), then the lr drops 100x and the
    # loss freezes. The end is flat (tail change 0), but the high-lr epochs were not.
    loss = np.concatenate([np.linspace(2.3, 1.0, 10), np.full(10, 1.0)])
    lr = [0.1] * 10 + [0.001] * 10
    annealed = assess_convergence(loss, lr)
    assert annealed.tail_change == pytest.approx(0.0)
    assert annealed.late_end_epoch == 10 and annealed.late_epochs == 3  # ceil(0.25 * 10)
    # epochs 5-7 vs 8-10 of a line falling 1.3/9 per epoch over a range of 1.3: 3/9
    assert annealed.late_change == pytest.approx(3 / 9)
    assert not annealed.converged and "before the lr fell" in annealed.reason
    # without the lr the same curve passes the late test on all epochs: the lr column matters
    assert assess_convergence(loss).late_end_epoch == 20
    assert annealed.final_lr_ratio == pytest.approx(0.01)


def test_too_short_non_finite_and_rising() -> None:
    short = assess_convergence([2.0, 1.0, 0.5])
    assert not short.converged and "too few" in short.reason and math.isnan(short.tail_change)
    assert not assess_convergence([2.0, 1.0, float("nan"), 0.5, 0.4]).converged
    rising = assess_convergence(np.concatenate([_exp_curve(30, 3.0), [0.8, 1.2, 1.6]]))
    assert not rising.converged and "rising" in rising.reason


def test_a_flat_loss_is_judged_on_its_level_not_its_noise() -> None:
    # a loss that never moved: noise of 0.001 on 2.3, judged against 5 % (min_scale) of the loss -> converged
    rng = np.random.default_rng(0)
    loss = 2.3 + 0.001 * rng.standard_normal(20)
    assert assess_convergence(loss).converged


def test_thresholds_are_keyword_arguments() -> None:
    loss = _exp_curve(16, 4.0)  # 4 tau: flagged by default
    assert not assess_convergence(loss).converged
    assert assess_convergence(loss, late_tolerance=0.1, tail_tolerance=0.05).converged


def test_as_dict_is_json_safe() -> None:
    record = assess_convergence([1.0, 0.5]).as_dict()
    assert record["converged"] is False and record["tail_change"] is None and record["epochs"] == 2


def test_final_lr_segment() -> None:
    from kdfair.convergence import final_lr_segment

    assert final_lr_segment(None, 6) == 6
    assert final_lr_segment([0.1] * 6, 6) == 6
    assert final_lr_segment([0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001], 7) == 3
    cosine = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 8)) for e in range(8)]
    assert final_lr_segment(cosine, 8) == 1
    assert final_lr_segment([0.1, 0.1], 3) == 3  # a mismatched lr column is ignored


def test_a_late_step_decay_is_not_read_as_a_loss_still_falling() -> None:
    # the UTKFace BIRD student's shape (bug: flagged at 2.4 %): 96 epochs, lr steps after epochs 80 and 84;
    # the loss drops at each step and then stays flat at the final lr. The old windows (epochs 77-86 against
    # 87-96) straddled the second step; now both lie in epochs 85-96 (6 epochs each).
    held = _exp_curve(80, 10.0, floor=0.0105, amplitude=0.2)
    loss = np.concatenate([held, [0.0108, 0.0035, 0.0030, 0.0028], np.linspace(0.0026, 0.0023, 12)])
    lr = [5e-3] * 80 + [5e-4] * 4 + [5e-5] * 12
    result = assess_convergence(loss, lr)
    assert result.tail_epochs == 6
    scale = loss.max() - loss.min()
    assert result.tail_change == pytest.approx((loss[84:90].mean() - loss[90:].mean()) / scale)
    assert result.converged, result.reason
    # the same loss without the lr column: the windows straddle the step and the run is flagged
    assert not assess_convergence(loss).converged
    # a loss still falling inside the final segment is still flagged
    falling = loss.copy()
    falling[84:] = np.linspace(0.0026, 0.0026 - 0.12 * scale, 12)
    assert not assess_convergence(falling, lr).converged


def test_a_final_segment_too_short_keeps_the_plain_windows() -> None:
    # the last step 3 epochs before the end: too few epochs at the final lr (< 4), plain 2-epoch windows
    loss = np.concatenate([_exp_curve(17, 3.0), [0.2, 0.2, 0.2]])
    lr = [0.1] * 17 + [0.01] * 3
    result = assess_convergence(loss, lr)
    assert result.tail_epochs == 2
    scale = loss.max() - loss.min()
    assert result.tail_change == pytest.approx((loss[16:18].mean() - loss[18:].mean()) / scale)
