"""Hinton knowledge distillation (SPEC §2).

``L = alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(y, softmax(z_student))``, with the KL
summed over classes and averaged over the batch. The T^2 factor (Hinton et al. 2015) keeps the soft term's
gradient size constant across temperatures; it is an option, on by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``KL(softmax(teacher/T) || softmax(student/T))``, summed over classes, batch-averaged (nats)."""
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1).mean()


def hinton_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    t2_scaling: bool = True,
) -> dict[str, torch.Tensor]:
    """Hinton KD loss parts: ``loss`` (the total), ``kd`` (the scaled soft term) and ``ce`` (hard term).

    ``alpha`` weighs the soft term (paper: 0.8); ``temperature`` > 0 softens both distributions.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    scale = temperature**2 if t2_scaling else 1.0
    kd = scale * soft_kl(student_logits, teacher_logits, temperature)
    ce = F.cross_entropy(student_logits.float(), labels)
    return {"loss": alpha * kd + (1.0 - alpha) * ce, "kd": kd, "ce": ce}
