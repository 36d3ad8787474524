"""What the distillation methods share (``fkd``, ``fitnet``, ``at``, ``ad``, ``mfd``, ``bird``): the strict
options config, how options default to the run's values, the protected attribute and the batch's groups,
the teacher's outputs, the CE + Hinton-KD task terms, and a functional forward pass (BIRD's virtual step,
AD's meta batches).

Conventions:

* ``alpha`` / ``temperature`` options left at ``None`` take the run's value (``MethodContext``), and the
  method's documented default when the run has none (teacher and NDS runs).
* ``attribute`` names the protected attribute (a key of ``Batch.attributes``); ``None`` means the first in
  ``MethodContext.attribute_levels``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from pydantic import ConfigDict
from torch import nn

from kdfair.errors import ConfigError
from kdfair.losses.feature import upcast
from kdfair.losses.kd import soft_kl
from kdfair.methods.base import Batch, MethodContext, TeacherOutput
from kdfair.models.base import KDModel, ModelOutput

STRICT = ConfigDict(extra="forbid", frozen=True)  # every method's options: unknown keys fail, frozen


def resolve_alpha(option: float | None, context: MethodContext, default: float) -> float:
    """The explicit option, else the run's alpha, else ``default``."""
    if option is not None:
        return float(option)
    return float(context.alpha) if context.alpha is not None else default


def resolve_temperature(option: float | None, context: MethodContext, default: float) -> float:
    """The explicit option, else the run's temperature, else ``default``."""
    if option is not None:
        return float(option)
    return float(context.temperature) if context.temperature is not None else default


def resolve_attribute(method: str, option: str | None, context: MethodContext) -> tuple[str, int]:
    """The protected attribute a fair method uses and its number of groups; ConfigError when unavailable."""
    levels = context.attribute_levels
    if option is None:
        if not levels:
            raise ConfigError(f"method '{method}' needs a protected attribute but the data set has none")
        option = next(iter(levels))
    if option not in levels:
        valid = ", ".join(levels) or "none"
        raise ConfigError(
            f"method '{method}' option 'attribute': unknown attribute '{option}'; valid: {valid}"
        )
    return option, max(len(levels[option]), 2)


def teacher_feature_width(context: MethodContext) -> int:
    """The teacher's penultimate width; the student's when the context does not say (same-width pairs)."""
    return int(context.teacher_feature_dim or context.student.feature_dim)


def batch_groups(method: str, batch: Batch, attribute: str) -> torch.Tensor:
    """The batch's group codes for ``attribute``; a ValueError naming the attributes present otherwise."""
    if attribute not in batch.attributes:
        raise ValueError(
            f"method '{method}' needs attribute '{attribute}' in the batch "
            f"(has: {', '.join(batch.attributes) or 'none'})"
        )
    return batch.attributes[attribute]


def teacher_features(method: str, teacher: TeacherOutput | None) -> torch.Tensor:
    if teacher is None or teacher.features is None:
        raise ValueError(f"method '{method}' needs the teacher's penultimate features")
    return teacher.features


def teacher_logits(method: str, teacher: TeacherOutput | None) -> torch.Tensor:
    if teacher is None or teacher.logits is None:
        raise ValueError(f"method '{method}' needs the teacher's logits")
    return teacher.logits


def task_terms(
    method: str,
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher: TeacherOutput | None,
    *,
    kd_weight: float,
    temperature: float,
    t2_scaling: bool,
) -> dict[str, torch.Tensor]:
    """``ce`` and, when ``kd_weight > 0``, the Hinton ``kd`` term (T^2-scaled KL, SPEC §2); ``task`` sums them
    as ``CE + kd_weight * KD`` (nats per sample)."""
    ce = F.cross_entropy(upcast(logits), labels)
    parts = {"ce": ce, "task": ce}
    if kd_weight > 0:
        scale = temperature**2 if t2_scaling else 1.0
        kd = scale * soft_kl(logits, teacher_logits(method, teacher), temperature)
        parts["kd"] = kd
        parts["task"] = ce + kd_weight * kd
    return parts


@contextmanager
def frozen_statistics(model: nn.Module, use_running_stats: bool) -> Iterator[None]:
    """Within the block, ``model`` runs in eval mode (``use_running_stats``: BatchNorm normalises with its
    running statistics) or keeps its modes; each module's training flag is restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    if use_running_stats:
        model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


class _ForwardAll(nn.Module):
    def __init__(self, model: KDModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> ModelOutput:
        return self.model.forward_all(inputs)


def functional_forward_all(
    model: KDModel,
    inputs: torch.Tensor,
    params: dict[str, torch.Tensor] | None = None,
    *,
    use_running_stats: bool,
) -> ModelOutput:
    """``model.forward_all(inputs)`` with parameters replaced by ``params`` (names as in
    ``named_parameters``) and the buffers copied, so BatchNorm running statistics are never updated.
    ``use_running_stats`` normalises with the running statistics (eval mode) instead of the batch's."""
    params = dict(model.named_parameters()) if params is None else params
    state = {f"model.{k}": v for k, v in params.items()}
    state.update({f"model.{k}": v.clone() for k, v in model.named_buffers()})
    with frozen_statistics(model, use_running_stats):
        return torch.func.functional_call(_ForwardAll(model), state, (inputs,))
