"""MFD's MMD against a direct double loop over samples (SPEC §2 "MFD")."""

import math

import numpy as np
import pytest
import torch

from kdfair.losses.mmd import mfd_mmd, pairwise_sq_distances


def double_loop_mmd(
    student: np.ndarray, teacher: np.ndarray, labels: np.ndarray, groups: np.ndarray, sigma: float
) -> float:
    n = len(labels)
    s = (
        sum(max(float(((teacher[i] - student[j]) ** 2).sum()), 1e-12) for i in range(n) for j in range(n))
        / n**2
    )

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-max(float(((a - b) ** 2).sum()), 1e-12) / (2 * sigma * s))

    def mean_k(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
        return sum(k(x, y) for x in xs for y in ys) / (len(xs) * len(ys))

    total = 0.0
    for c in sorted(set(labels.tolist())):
        t_c = [teacher[i] for i in range(n) if labels[i] == c]
        for g in sorted(set(groups[labels == c].tolist())):
            s_cg = [student[i] for i in range(n) if labels[i] == c and groups[i] == g]
            total += mean_k(t_c, t_c) + mean_k(s_cg, s_cg) - 2 * mean_k(t_c, s_cg)
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sigma", [1.0, 0.5])
def test_mmd_matches_double_loop(seed: int, sigma: float) -> None:
    rng = np.random.default_rng(seed)
    n, d = 11, 4
    student = rng.normal(size=(n, d))
    teacher = rng.normal(size=(n, d)) + 0.5
    labels = rng.integers(0, 3, size=n)
    groups = rng.integers(0, 2, size=n)
    got = mfd_mmd(
        torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), torch.tensor(groups), sigma=sigma
    )
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(double_loop_mmd(student, teacher, labels, groups, sigma), rel=1e-10)


def test_mmd_gradient_reaches_student_only() -> None:
    student = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    groups = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    mfd_mmd(student, teacher, labels, groups).backward()
    assert teacher.grad is None
    assert student.grad is not None and torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0


def test_mmd_zero_when_student_equals_teacher_and_one_group() -> None:
    x = torch.randn(6, 2, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    got = mfd_mmd(x, x, labels, torch.zeros(6, dtype=torch.int64))
    assert got.item() == pytest.approx(0.0, abs=1e-12)


def test_distances_and_mmd_are_float32_under_bf16_autocast() -> None:
    """Issue 20, defect 2: under bf16 autocast ``a @ b.t()`` ran in bf16, and ``|a|^2 + |b|^2 - 2 a.b`` lost
    most of its precision: near-duplicate pairs (squared distance ~0.03 at squared norms ~600) came out
    several units off. They must agree with float64 as float32 does."""
    gen = torch.Generator().manual_seed(0)
    a = 3.0 * torch.randn(16, 64, generator=gen)
    b = a + 0.02 * torch.randn(16, 64, generator=gen)
    exact = pairwise_sq_distances(a.double(), b.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = pairwise_sq_distances(a, b)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), exact, rtol=1e-4, atol=2e-3)
    assert float(exact.diagonal().mean()) == pytest.approx(0.0256, rel=0.1)  # the near pairs themselves

    labels, groups = torch.arange(16) % 2, (torch.arange(16) // 2) % 2
    student = b.bfloat16()  # as an autocast forward returns them
    reference = mfd_mmd(student.double(), a.double(), labels, groups)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = mfd_mmd(student, a, labels, groups)
    assert mixed.dtype == torch.float32
    assert float(mixed) == pytest.approx(float(reference), rel=1e-4, abs=1e-5)
