"""BIRD's fairness objective L_o (seeds/004 Eqn. 3; SPEC §2 "BIRD") and its well-posed variants.

Paper (Eqn. 3): ``L_o = sum over classes c of max over groups g of |CE(class c and group g) - CE(class c)|``,
each CE the mean per-sample cross-entropy (nats) over the named samples of the batch. Classes absent from the
batch contribute 0; groups absent from a class are left out of that class's max (never a division by zero).

On real batches the hard max is often taken over a one-sample cell (UTKFace, batch 128: the smallest
(class, race) cell holds a median of 1 sample), where a single sample's CE gets a weight of nearly 1 against
``1 / B`` in the mean CE. The variants below (:class:`FairnessTerm`, named in :data:`FAIRNESS_TERMS`) bound
that weight; ``docs/methods.md`` ("bird") gives the measurements behind the choice:

* ``cell_prior`` k (pseudo-samples, >= 0): each cell's mean CE is shrunk towards its class mean as if the cell
  held k more samples at the class mean, ``(sum_cg + k CE_c) / (n_cg + k)``, so its gap is
  ``n_cg / (n_cg + k) * (CE_cg - CE_c)``: a one-sample cell's gap is scaled by ``1 / (1 + k)``. (The gap keeps
  its sign and, once k is much smaller than the cell sizes, its value.)
* ``min_cell_size`` m: cells with fewer than m samples are left out of the class's reduction.
* ``group_reduce``: ``max`` (paper); ``smooth_max``, ``tau * log(mean_g exp(gap_g / tau))`` with
  ``tau = smooth_temperature`` nats (between the mean and the max of the gaps, 0 when all are 0);
  ``weighted_mean``, ``sum_g n_cg / n_c * gap_g``, where every sample's CE weighs at most ``2 / n_c``.
* ``gap_penalty``: ``abs`` (paper) or ``huber``, ``gap^2 / (2 delta)`` below ``huber_delta`` nats and
  ``|gap| - delta / 2`` above. ``|gap|`` pulls with full force however small the gap: every input-blind
  predictor has all gaps 0, and near it the pull does not fade (like an L1 penalty's pull to exact zeros).
  Huber's pull fades linearly below ``delta``.
* ``class_reduce``: ``sum`` (paper) or ``mean`` over the classes present (the scale no longer grows with C).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from kdfair.losses.feature import upcast


@dataclass(frozen=True)
class FairnessTerm:
    """One variant of L_o, as data. The defaults are the paper's Eqn. 3."""

    group_reduce: Literal["max", "smooth_max", "weighted_mean"] = "max"
    class_reduce: Literal["sum", "mean"] = "sum"
    cell_prior: float = 0.0  # pseudo-samples at the class mean added to every cell (0: none)
    min_cell_size: int = 1  # cells with fewer samples are left out (1: every present cell counts)
    smooth_temperature: float = 0.1  # tau of smooth_max, nats
    gap_penalty: Literal["abs", "huber"] = "abs"  # of each gap: |gap| (paper), or Huber with huber_delta
    huber_delta: float = 0.1  # nats: gap^2 / (2 delta) below delta, |gap| - delta / 2 above

    def __post_init__(self) -> None:
        if (
            self.cell_prior < 0
            or self.min_cell_size < 1
            or min(self.smooth_temperature, self.huber_delta) <= 0
        ):
            raise ValueError(f"invalid fairness term {self}")


# The variants BIRD's ``fairness_term`` option can name. "paper" is Eqn. 3 exactly; "shrunk_huber" is BIRD's
# default. Median ratio ||d(0.2 L_o)/d(logits)|| / ||d(0.1 CE)/d(logits)|| on 300 real UTKFace batches of 128
# (LeNet-5 after 1 epoch of CE; scripts/bird_gradients.py, docs/methods.md "bird"): paper 28, shrunk 1.9,
# shrunk_huber 1.5, weighted_mean 5.4, min_cell 8.8, smooth_max 21.
FAIRNESS_TERMS: dict[str, FairnessTerm] = {
    "paper": FairnessTerm(),
    # cell means shrunk by 8 pseudo-samples (a one-sample cell weighs 1/9, not ~1), mean over classes
    "shrunk": FairnessTerm(cell_prior=8.0, class_reduce="mean"),
    # "shrunk" with a Huber penalty of 0.1 nats: the pull towards an input-blind predictor fades near it
    "shrunk_huber": FairnessTerm(cell_prior=8.0, class_reduce="mean", gap_penalty="huber", huber_delta=0.1),
    "weighted_mean": FairnessTerm(group_reduce="weighted_mean"),  # cell-size-weighted mean over groups
    "min_cell": FairnessTerm(min_cell_size=5),  # cells under 5 samples left out of the max
    "smooth_max": FairnessTerm(group_reduce="smooth_max", smooth_temperature=0.1),  # log-sum-exp, 0.1 nats
}


def class_group_gaps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
    num_groups: int,
    cell_prior: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(|gap|, n)``, both (C, G): ``|CE_cg - CE_c|`` in nats (shrunk by ``cell_prior``, 0 for absent cells)
    and the cell sample counts, from logits (B, C) and int64 labels and group codes (B,)."""
    num_classes = logits.shape[1]
    per_sample = F.cross_entropy(upcast(logits), labels, reduction="none")
    class_count = counts_of(labels, num_classes)
    class_mean = per_sample.new_zeros(num_classes).index_add(0, labels, per_sample) / class_count.clamp(min=1)
    cell = labels * num_groups + groups
    cell_count = counts_of(cell, num_classes * num_groups).view(num_classes, num_groups)
    cell_sum = per_sample.new_zeros(num_classes * num_groups).index_add(0, cell, per_sample)
    cell_mean = cell_sum.view(num_classes, num_groups) / cell_count.clamp(min=1)
    gap = cell_mean - class_mean.unsqueeze(1)
    if cell_prior > 0:
        counts = cell_count.to(gap.dtype)
        gap = gap * counts / (counts + cell_prior)
    return gap.abs().masked_fill(cell_count == 0, 0.0), cell_count


def counts_of(codes: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of ``0 .. size - 1`` occurs in the int64 ``codes``: (size,) int64. ``torch.bincount``
    without its host syncs (on CUDA it reads the codes' max and min back to size its output)."""
    counts = torch.zeros(size, dtype=torch.int64, device=codes.device)
    return counts.index_add_(0, codes, torch.ones_like(codes))


def reduce_groups(gap: torch.Tensor, count: torch.Tensor, term: FairnessTerm) -> torch.Tensor:
    """Per-class reduction (C,) of gaps (C, G) over the cells with at least ``term.min_cell_size`` samples;
    0 for a class without such a cell."""
    kept = count >= term.min_cell_size
    if term.group_reduce == "max":  # gaps are >= 0, so a 0 for a left-out cell never changes the max
        return gap.masked_fill(~kept, 0.0).max(dim=1).values
    if term.group_reduce == "weighted_mean":
        weight = count.to(gap.dtype) * kept
        return (weight * gap).sum(dim=1) / weight.sum(dim=1).clamp(min=1)
    tau = term.smooth_temperature
    scaled = (gap / tau).masked_fill(~kept, -math.inf)
    n_kept = kept.sum(dim=1)
    smooth = tau * (torch.logsumexp(scaled, dim=1) - n_kept.clamp(min=1).to(gap.dtype).log())
    return smooth.masked_fill(n_kept == 0, 0.0)


def class_group_ce_gap(
    logits: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
    num_groups: int | None = None,
    term: FairnessTerm | None = None,
) -> torch.Tensor:
    """L_o of one batch (Eqn. 3, or the variant ``term``): logits (B, C), labels and group codes (B,) int64
    -> differentiable scalar (nats)."""
    term = FAIRNESS_TERMS["paper"] if term is None else term
    num_groups = int(groups.max().item()) + 1 if num_groups is None else num_groups
    gap, count = class_group_gaps(logits, labels, groups, num_groups, term.cell_prior)
    if term.gap_penalty == "huber":
        delta = term.huber_delta
        gap = torch.where(gap < delta, gap.square() / (2 * delta), gap - delta / 2)
    per_class = reduce_groups(gap, count, term)
    if term.class_reduce == "sum":
        return per_class.sum()
    present = (count.sum(dim=1) > 0).sum().clamp(min=1)
    return per_class.sum() / present
