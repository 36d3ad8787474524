"""BIRD's L_o (seeds/004 Eqn. 3): hand-worked example, absent groups and classes, recomputation."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdfair.losses.fairness import FAIRNESS_TERMS, FairnessTerm, class_group_ce_gap


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


# --- variants of L_o (kdfair.losses.fairness.FairnessTerm) and the paper option ----------------------------

LN2 = math.log(2)


def hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The hand-worked batch above. In units of ln 2: class 0 (mean CE 4/3) has cell gaps 1/3 (two samples,
    group 0) and 2/3 (one sample, group 1); class 1 (mean 3/2) has gaps 1/2 and 1/2 (one sample each)."""
    rows = [(0, 0, 0.5), (0, 0, 0.5), (0, 1, 0.25), (1, 0, 0.25), (1, 1, 0.5)]
    logits = torch.tensor([logits_with_ce(c, p) for c, _, p in rows], dtype=torch.float64)
    return logits, torch.tensor([c for c, _, _ in rows]), torch.tensor([g for _, g, _ in rows])


@pytest.mark.parametrize(
    ("term", "expected_in_ln2"),
    [
        # cell_prior k = 1 scales gaps by n / (n + 1): class 0 max(1/3 * 2/3, 2/3 * 1/2) = 1/3, class 1 1/4
        (FairnessTerm(cell_prior=1.0), 1 / 3 + 1 / 4),
        # ... and the mean over the 2 classes present (class 2 is absent)
        (FairnessTerm(cell_prior=1.0, class_reduce="mean"), (1 / 3 + 1 / 4) / 2),
        # cell-size-weighted mean: class 0 (2 * 1/3 + 1 * 2/3) / 3 = 4/9; class 1 (1/2 + 1/2) / 2 = 1/2
        (FairnessTerm(group_reduce="weighted_mean"), 4 / 9 + 1 / 2),
        # cells under 2 samples left out: class 0 keeps only its 2-sample cell (1/3); class 1 keeps none (0)
        (FairnessTerm(min_cell_size=2), 1 / 3),
        # Huber, delta = ln2 / 2: 1/3 -> (1/3)^2 / (2 * 1/2) = 1/9; 2/3 -> 2/3 - 1/4 = 5/12; 1/2 -> 1/4
        (FairnessTerm(gap_penalty="huber", huber_delta=LN2 / 2), 5 / 12 + 1 / 4),
        # smooth max, tau = ln 2: tau * log(mean exp(gap / tau)) per class
        (
            FairnessTerm(group_reduce="smooth_max", smooth_temperature=LN2),
            math.log((math.exp(1 / 3) + math.exp(2 / 3)) / 2) + math.log(math.exp(1 / 2)),
        ),
    ],
)
def test_variants_hand_worked(term: FairnessTerm, expected_in_ln2: float) -> None:
    logits, labels, groups = hand_batch()
    got = class_group_ce_gap(logits, labels, groups, num_groups=3, term=term)
    assert got.item() == pytest.approx(expected_in_ln2 * LN2, rel=1e-12)


def test_smooth_max_lies_between_mean_and_max_and_tends_to_max() -> None:
    logits, labels, groups = hand_batch()
    hard = class_group_ce_gap(logits, labels, groups, 3).item()
    mean_of_gaps = (1 / 2 + 1 / 2) * LN2  # class 0: (1/3 + 2/3) / 2; class 1: 1/2
    smooth = [
        class_group_ce_gap(logits, labels, groups, 3, FairnessTerm("smooth_max", smooth_temperature=t)).item()
        for t in (10.0, 0.1, 1e-3)
    ]
    assert mean_of_gaps < smooth[0] < smooth[1] < smooth[2] <= hard + 1e-12
    assert smooth[0] == pytest.approx(mean_of_gaps, rel=1e-2)
    assert smooth[2] == pytest.approx(hard, abs=1e-2)


def previous_class_group_ce_gap(
    logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, num_groups: int
) -> torch.Tensor:
    """The L_o of kdfair before the variants (git 7061530), kept verbatim as the paper option's oracle."""
    num_classes = logits.shape[1]
    per_sample = F.cross_entropy(logits, labels, reduction="none")
    zeros_c = per_sample.new_zeros(num_classes)
    class_mean = zeros_c.index_add(0, labels, per_sample) / torch.bincount(
        labels, minlength=num_classes
    ).clamp(min=1)
    cell = labels * num_groups + groups
    cell_count = torch.bincount(cell, minlength=num_classes * num_groups)
    cell_sum = per_sample.new_zeros(num_classes * num_groups).index_add(0, cell, per_sample)
    cell_mean = (cell_sum / cell_count.clamp(min=1)).view(num_classes, num_groups)
    gap = (cell_mean - class_mean.unsqueeze(1)).abs()
    gap = gap.masked_fill(cell_count.view(num_classes, num_groups) == 0, 0.0)
    return gap.max(dim=1).values.sum()


@pytest.mark.parametrize("seed", range(5))
def test_paper_option_equals_the_previous_l_o_in_value_and_gradient(seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = torch.tensor(rng.normal(size=(40, 3)), requires_grad=True)
    labels, groups = torch.tensor(rng.integers(0, 3, 40)), torch.tensor(rng.integers(0, 4, 40))
    new = class_group_ce_gap(logits, labels, groups, 4, FAIRNESS_TERMS["paper"])
    (new_grad,) = torch.autograd.grad(new, [logits])
    old = previous_class_group_ce_gap(logits, labels, groups, 4)
    (old_grad,) = torch.autograd.grad(old, [logits])
    assert new.item() == old.item()
    torch.testing.assert_close(new_grad, old_grad, rtol=0, atol=0)
    assert FAIRNESS_TERMS["paper"] == FairnessTerm()  # the defaults are Eqn. 3


def one_sample_cell_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """128 samples, 3 classes, 4 groups; class 0 has a single sample of group 3, which it gets very wrong."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(128) % 3
    groups = torch.arange(128) % 3  # groups 0-2 only ...
    groups[0] = 3  # ... except one class-0 sample: a one-sample (class 0, group 3) cell
    logits = 0.3 * torch.randn(128, 3, generator=gen, dtype=torch.float64)
    logits[0] = torch.tensor([-4.0, 2.0, 2.0], dtype=torch.float64)  # CE about 6.0 nats
    return logits, labels, groups


@pytest.mark.parametrize("name", sorted(FAIRNESS_TERMS))
def test_gradient_is_finite_and_bounded_on_a_one_sample_cell(name: str) -> None:
    logits, labels, groups = one_sample_cell_batch()
    leaf = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(class_group_ce_gap(leaf, labels, groups, 4, FAIRNESS_TERMS[name]), [leaf])
    assert torch.isfinite(grad).all()
    # the one-sample cell's mean CE is its sample's CE, so the max gives that sample a weight of 1 - 1/n_c in
    # the paper; |dCE_i/dlogits_i| <= sqrt(2), so no row of any variant can exceed sqrt(2)
    assert grad.norm(dim=1).max() <= math.sqrt(2)
    lone = grad[0].norm().item()
    ce_row = torch.autograd.grad(F.cross_entropy(leaf, labels), [leaf])[0][0].norm().item()
    if (
        name == "paper"
    ):  # the lone sample weighs about (1 - 1/43) / (1/128) = 125 times its weight in the mean CE
        assert lone == pytest.approx((1 - 1 / 43) * 128 * ce_row, rel=1e-6)
    term = FAIRNESS_TERMS[name]
    if term.cell_prior > 0:  # shrinkage bounds a one-sample cell's weight by 1 / (1 + k)
        classes = 3 if term.class_reduce == "mean" else 1
        assert lone <= ce_row * 128 / (1 + term.cell_prior) / classes + 1e-12


@pytest.mark.parametrize("name", sorted(FAIRNESS_TERMS))
def test_absent_class_and_group_give_zero_and_finite_gradients(name: str) -> None:
    """Class 2 and group 2 are absent: group 2 adds nothing, and no variant's gradient is NaN (log-sum-exp
    over an empty row included)."""
    logits = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    logits.requires_grad_(True)
    labels, groups = torch.tensor([0, 0, 1, 1, 0, 1]), torch.tensor([0, 1, 0, 1, 1, 0])
    term = FAIRNESS_TERMS[name]
    value = class_group_ce_gap(logits, labels, groups, 3, term)
    (grad,) = torch.autograd.grad(value, [logits])
    assert torch.isfinite(grad).all() and torch.isfinite(value)
    # group 2 adds nothing: declaring only 2 groups gives the same value
    two_groups = class_group_ce_gap(logits, labels, groups, 2, term)
    assert value.item() == pytest.approx(two_groups.item(), rel=1e-12)
