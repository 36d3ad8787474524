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
    """``||a_i - b_j||^2`` for (n, d) and (m, d) inputs, clamped below at ``DISTANCE_FLOOR``: (n, m).

    Computed in float32 (float64 inputs stay float64) with autocast off: under bf16 autocast ``a @ b.t()``
    would run in bf16, and ``||a||^2 + ||b||^2 - 2 a.b`` cancels most of its precision for near pairs.
    """
    with torch.autocast(a.device.type, enabled=False):
        a, b = upcast(a), upcast(b)
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

    All cells at once, with no host sync: the kernels of every pair of the batch and (B, B) same-class and
    same-cell masks give each sample its class's and cell's kernel sums; a cell's MMD^2 is then spread over
    its ``n_cg`` samples (``1 / n_cg`` each) and summed. Float32 (or float64) with autocast off.
    """
    with torch.autocast(student_features.device.type, enabled=False):
        student = upcast(student_features).flatten(1)
        teacher = upcast(teacher_features).flatten(1).detach().to(student.dtype)
        with torch.no_grad():
            bandwidth = 2.0 * sigma * pairwise_sq_distances(teacher, student).mean()
        same_class = (labels[:, None] == labels[None, :]).to(student.dtype)  # (B, B)
        same_cell = same_class * (groups[:, None] == groups[None, :]).to(student.dtype)
        n_class, n_cell = same_class.sum(1), same_cell.sum(1)  # n_c and n_cg of each sample's class / cell
        with torch.no_grad():
            k_tt = rbf_kernel(teacher, teacher, bandwidth)
            tt = same_class @ (same_class * k_tt).sum(1)  # sum of K(T_c, T_c) over the sample's class
        ss = same_cell @ (same_cell * rbf_kernel(student, student, bandwidth)).sum(1)  # over its cell
        # K(teacher j, student k) summed over j in k's class, then over k in the sample's cell
        ts = same_cell @ (same_class * rbf_kernel(teacher, student, bandwidth).t()).sum(1)
        mmd = tt / n_class**2 + ss / n_cell**2 - 2.0 * ts / (n_class * n_cell)  # its cell's MMD^2
        return (mmd / n_cell).sum()
