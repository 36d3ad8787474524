"""Hinton KD loss (SPEC §2, src/kdfair/losses/kd.py): hand-worked values, an oracle, gradients, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kdfair.losses.kd import hinton_kd_loss, soft_kl


def random_logits(seed: int, batch: int = 6, classes: int = 5, scale: float = 3.0) -> torch.Tensor:
    return scale * torch.randn(
        batch, classes, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def oracle_kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(p_t^T || p_s^T)`` with torch's own kl_div, batch-mean."""
    return temperature**2 * F.kl_div(
        F.log_softmax(student / temperature, dim=1),
        F.log_softmax(teacher / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )


def test_hand_worked_two_class_case() -> None:
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # p_teacher = (0.75, 0.25) at T = 1
    labels = torch.tensor([0])
    kl_t1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    parts = hinton_kd_loss(student, teacher, labels, temperature=1.0, alpha=0.5)
    assert parts["kd"].item() == pytest.approx(kl_t1, rel=1e-6)
    assert parts["ce"].item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert parts["loss"].item() == pytest.approx(0.5 * kl_t1 + 0.5 * math.log(2.0), rel=1e-6)
    # T = 2: p_teacher = (sqrt 3, 1) / (sqrt 3 + 1); the soft term is scaled by T^2 = 4
    p = math.sqrt(3.0) / (math.sqrt(3.0) + 1.0)
    kl_t2 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    parts = hinton_kd_loss(student, teacher, labels, temperature=2.0, alpha=0.8)
    assert parts["kd"].item() == pytest.approx(4.0 * kl_t2, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(0.8 * 4.0 * kl_t2 + 0.2 * math.log(2.0), rel=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_zero_when_student_equals_teacher_at_alpha_one(temperature: float) -> None:
    logits = random_logits(0)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    parts = hinton_kd_loss(logits, logits.clone(), labels, temperature=temperature, alpha=1.0)
    assert parts["loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["kd"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["ce"].item() > 0.0  # the hard term is still computed, just weighted by 0


@pytest.mark.parametrize("temperature", [0.5, 2.0, 4.0, 10.0])
def test_t2_scaling_and_kl_div_oracle(temperature: float) -> None:
    student, teacher = random_logits(1), random_logits(2)
    labels = torch.tensor([1, 0, 4, 2, 2, 3])
    scaled = hinton_kd_loss(student, teacher, labels, temperature=temperature, alpha=0.7)
    unscaled = hinton_kd_loss(student, teacher, labels, temperature=temperature, alpha=0.7, t2_scaling=False)
    torch.testing.assert_close(scaled["kd"], temperature**2 * unscaled["kd"])
    torch.testing.assert_close(scaled["ce"], unscaled["ce"])
    expected_kd = oracle_kd(student.float(), teacher.float(), temperature)
    torch.testing.assert_close(scaled["kd"], expected_kd, rtol=1e-5, atol=1e-6)
    expected_ce = F.cross_entropy(student.float(), labels)
    torch.testing.assert_close(scaled["loss"], 0.7 * expected_kd + 0.3 * expected_ce, rtol=1e-5, atol=1e-6)


def test_alpha_zero_is_plain_cross_entropy() -> None:
    student, teacher = random_logits(3), random_logits(4)
    labels = torch.tensor([0, 1, 2, 3, 4, 4])
    parts = hinton_kd_loss(student, teacher, labels, temperature=4.0, alpha=0.0)
    torch.testing.assert_close(parts["loss"], F.cross_entropy(student.float(), labels))


@pytest.mark.parametrize(("temperature", "alpha"), [(1.0, 1.0), (4.0, 0.8), (8.0, 0.3)])
def test_gradient_wrt_student_logits(temperature: float, alpha: float) -> None:
    """d loss / d z_s = alpha * T * (p_s^T - p_t^T) / B + (1 - alpha) * (p_s - onehot(y)) / B."""
    student = random_logits(5).float().requires_grad_(True)
    teacher = random_logits(6).float()
    labels = torch.tensor([4, 3, 2, 1, 0, 1])
    batch = student.shape[0]
    hinton_kd_loss(student, teacher, labels, temperature=temperature, alpha=alpha)["loss"].backward()
    with torch.no_grad():
        p_s_t = torch.softmax(student / temperature, dim=1)
        p_t_t = torch.softmax(teacher / temperature, dim=1)
        soft = alpha * temperature * (p_s_t - p_t_t) / batch
        hard = (1 - alpha) * (torch.softmax(student, dim=1) - F.one_hot(labels, 5).float()) / batch
    torch.testing.assert_close(student.grad, soft + hard, rtol=1e-5, atol=1e-7)


def test_soft_gradient_without_t2_scaling_shrinks_by_temperature() -> None:
    """Without T^2 the soft-term gradient is (p_s^T - p_t^T) / (T B): Hinton's reason for the T^2 factor."""
    temperature = 5.0
    student = random_logits(7).float().requires_grad_(True)
    teacher = random_logits(8).float()
    soft_kl(student, teacher, temperature).backward()
    with torch.no_grad():
        delta = torch.softmax(student / temperature, 1) - torch.softmax(teacher / temperature, 1)
    torch.testing.assert_close(student.grad, delta / (temperature * student.shape[0]), rtol=1e-5, atol=1e-8)


def test_low_precision_logits_are_computed_in_float32() -> None:
    student, teacher = random_logits(9).bfloat16(), random_logits(10).bfloat16()
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    parts = hinton_kd_loss(student, teacher, labels, temperature=4.0, alpha=0.8)
    assert all(v.dtype == torch.float32 for v in parts.values())
    expected = oracle_kd(student.float(), teacher.float(), 4.0)
    torch.testing.assert_close(parts["kd"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_bad_temperature_raises(temperature: float) -> None:
    logits = random_logits(11)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        hinton_kd_loss(logits, logits, torch.zeros(6, dtype=torch.long), temperature=temperature, alpha=0.5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_bad_alpha_raises(alpha: float) -> None:
    logits = random_logits(12)
    with pytest.raises(ValueError, match="alpha must be in \\[0, 1\\]"):
        hinton_kd_loss(logits, logits, torch.zeros(6, dtype=torch.long), temperature=4.0, alpha=alpha)


logit_arrays = st.integers(1, 5).flatmap(
    lambda batch: st.integers(2, 6).flatmap(
        lambda classes: st.tuples(
            arrays(np.float64, (batch, classes), elements=st.floats(-15, 15)),
            arrays(np.float64, (batch, classes), elements=st.floats(-15, 15)),
            arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)),
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(
    data=logit_arrays,
    temperature=st.floats(0.25, 30.0),
    alpha=st.floats(0.0, 1.0),
    shift=st.floats(-50, 50),
)
def test_properties_over_random_logits(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], temperature: float, alpha: float, shift: float
) -> None:
    student, teacher, labels = (torch.from_numpy(a) for a in data)
    parts = hinton_kd_loss(student, teacher, labels, temperature=temperature, alpha=alpha)
    expected_kd = oracle_kd(student.float(), teacher.float(), temperature)
    torch.testing.assert_close(parts["kd"], expected_kd, rtol=1e-4, atol=1e-4 * temperature**2)
    assert parts["kd"].item() >= -1e-5 * temperature**2  # a KL divergence is non-negative
    torch.testing.assert_close(parts["loss"], alpha * parts["kd"] + (1 - alpha) * parts["ce"])
    # softmax is invariant to adding a constant to every logit of a row
    shifted = hinton_kd_loss(student + shift, teacher - shift, labels, temperature=temperature, alpha=alpha)
    torch.testing.assert_close(shifted["loss"], parts["loss"], rtol=1e-4, atol=1e-3)
