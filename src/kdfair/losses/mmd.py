"""MFD's maximum mean discrepancy (Jung et al. 2021, CVPR, "Fair feature distillation"; SPEC §2 "MFD").

For every class c and group g present in the batch:
``MMD^2(c, g) = mean K(T_c, T_c) + mean K(S_cg, S_cg) - 2 mean K(T_c, S_cg)``, with ``T_c`` the (detached)
teacher features of the class-c samples and ``S_cg`` the student features of the class-c, group-g samples.
The kernel is ``K(a, b) = exp(-||a - b||^2 / (2 * sigma * s))``, where ``s`` is the mean squared distance over
all (teacher sample, student sample) pairs of the batch (detached). Squared distances are clamped at 1e-12
as in MFD's reference code. :func:`mfd_mmd` returns the sum over (c, g); the method weighs it by lambda_f / 2.
"""

from __future__ import annotations

import torch

from kdfair.losses.feature import upcast

DISTANCE_FLOOR = 1e-12  # clamp of squared distances (feature units^2), as in MFD's code


def pairwise_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_j||^2`` for (n, d) and (m, d) inputs, clamped below at ``DISTANCE_FLOOR``: (n, m)."""
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1).unsqueeze(0) - 2.0 * a @ b.t()
    return sq.clamp(min=DISTANCE_FLOOR)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: torch.Tensor | float) -> torch.Tensor:
    """``exp(-||a_i - b_j||^2 / bandwidth)``: (n, m); MFD uses ``bandwidth = 2 * sigma * s``."""
    return torch.exp(-pairwise_sq_distances(a, b) / bandwidth)


def mfd_mmd(
    student_features: torch.Tensor,
    teacher_features: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
    *,
    sigma: float = 1.0,
) -> torch.Tensor:
    """Sum over present (class, group) cells of MMD^2(teacher class features, student cell features).

    Inputs: student and teacher features (B, d) of the same width, labels and groups (B,) int64. Returns a
    scalar in kernel units (dimensionless); 0 when no cell is present. Gradients flow into the student only.
    """
    student = upcast(student_features).flatten(1)
    teacher = upcast(teacher_features).flatten(1).detach().to(student.dtype)
    with torch.no_grad():
        bandwidth = 2.0 * sigma * pairwise_sq_distances(teacher, student).mean()
    total = student.new_zeros(())
    for c in torch.unique(labels).tolist():
        in_class = labels == c
        teacher_c = teacher[in_class]
        k_tt = rbf_kernel(teacher_c, teacher_c, bandwidth).mean()
        for g in torch.unique(groups[in_class]).tolist():
            student_cg = student[in_class & (groups == g)]
            k_ss = rbf_kernel(student_cg, student_cg, bandwidth).mean()
            k_ts = rbf_kernel(teacher_c, student_cg, bandwidth).mean()
            total = total + k_tt + k_ss - 2.0 * k_ts
    return total
