"""BIRD's L_o (seeds/004 Eqn. 3): hand-worked example, absent groups and classes, recomputation."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdfair.losses.fairness import class_group_ce_gap


def logits_with_ce(label: int, p_true: float, classes: int = 3) -> list[float]:
    """Logits whose softmax gives the true class probability p_true (so CE = -log p_true)."""
    rest = (1.0 - p_true) / (classes - 1)
    return [math.log(p_true if c == label else rest) for c in range(classes)]


def test_hand_worked_example_with_absent_group_and_class() -> None:
    # (label, group, p_true): CE = ln 2 for p = 1/2, 2 ln 2 for p = 1/4
    rows = [(0, 0, 0.5), (0, 0, 0.5), (0, 1, 0.25), (1, 0, 0.25), (1, 1, 0.5)]
    logits = torch.tensor([logits_with_ce(c, p) for c, _, p in rows], dtype=torch.float64)
    labels = torch.tensor([c for c, _, _ in rows])
    groups = torch.tensor([g for _, g, _ in rows])
    # class 0: mean 4/3 ln2; group gaps 1/3 ln2 and 2/3 ln2 -> 2/3 ln2. class 1: mean 3/2 ln2, gaps 1/2 ln2.
    # class 2 is absent (0); group 2 is absent everywhere (left out of the max).
    expected = (2 / 3 + 1 / 2) * math.log(2)
    got = class_group_ce_gap(logits, labels, groups, num_groups=3)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert class_group_ce_gap(logits, labels, groups).item() == pytest.approx(expected, rel=1e-12)


def test_single_group_per_class_gives_zero_and_finite_gradient() -> None:
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    loss = class_group_ce_gap(logits, torch.tensor([0, 0, 2, 2]), torch.tensor([1, 1, 0, 0]), num_groups=2)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def reference(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    ce = -F.log_softmax(torch.tensor(logits), dim=1).numpy()[np.arange(len(labels)), labels]
    total = 0.0
    for c in np.unique(labels):
        in_c = labels == c
        total += max(abs(ce[in_c & (groups == g)].mean() - ce[in_c].mean()) for g in np.unique(groups[in_c]))
    return float(total)


@pytest.mark.parametrize("seed", range(5))
def test_matches_boolean_mask_recomputation_and_order_invariance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 17
    logits = rng.normal(size=(n, 4))
    labels = rng.integers(0, 4, size=n)
    groups = rng.integers(0, 3, size=n)
    got = class_group_ce_gap(torch.tensor(logits), torch.tensor(labels), torch.tensor(groups), num_groups=3)
    assert got.item() == pytest.approx(reference(logits, labels, groups), rel=1e-10)
    perm = rng.permutation(n)
    permuted = class_group_ce_gap(
        torch.tensor(logits[perm]), torch.tensor(labels[perm]), torch.tensor(groups[perm]), num_groups=3
    )
    assert permuted.item() == pytest.approx(got.item(), rel=1e-10)
