"""FitNet (Romero et al. 2015; SPEC §2): ``CE + kd_weight * KD + hint_weight * MSE(R(guided), hint)``.

On live convolutional teachers the hint pairs a student stage map (the guided layer) with a teacher stage
map through a 1x1 conv + BatchNorm regressor; on black-box teachers (features only) it pairs the
penultimate features through a linear + BatchNorm regressor. ``hint_weight`` 0.1 is the FitNet strength of
Knowledge-Distillation-Zoo, which BIRD uses (seeds/004, appendix A.3).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, Field

from kdfair.errors import ConfigError
from kdfair.losses.fitnet import HintRegressor, hint_loss
from kdfair.methods.base import LOGITS, Batch, Method, MethodContext, TeacherOutput
from kdfair.methods.common import (
    STRICT,
    resolve_temperature,
    task_terms,
    teacher_feature_width,
    teacher_features,
)
from kdfair.models.base import KDModel


class FitNetOptions(BaseModel):
    model_config = STRICT
    hint_weight: float = Field(0.1, ge=0.0)  # weight of the hint MSE (squared activation units)
    hint: Literal["auto", "maps", "features"] = "auto"  # auto: stage maps when the teacher's are known
    student_layer: int = -1  # guided layer: index into the student's stage maps (negative from the end)
    teacher_layer: int = -1  # hint layer: index into the teacher's stage maps (negative from the end)
    kd_weight: float = Field(0.0, ge=0.0)  # weight of the Hinton KD term on logits; 0 = off
    temperature: float | None = Field(None, gt=0.0)  # KD temperature; None: the run's, else 4


def _channel(method: str, channels: tuple[int, ...], index: int, who: str) -> int:
    if not -len(channels) <= index < len(channels):
        raise ConfigError(
            f"method '{method}' option '{who}_layer': index {index} is out of range "
            f"for {len(channels)} stage maps"
        )
    return channels[index]


class FitNet(Method):
    """FitNet hint loss plus cross-entropy (and optional Hinton KD)."""

    name = "fitnet"
    needs_teacher_features = True

    def __init__(self, options: FitNetOptions, context: MethodContext) -> None:
        super().__init__()
        self.options = options
        self.t2_scaling = context.t2_scaling
        self.temperature = resolve_temperature(options.temperature, context, default=4.0)
        student_channels = context.student_map_channels or getattr(context.student, "map_channels", None)
        on_maps = options.hint == "maps" or (options.hint == "auto" and bool(context.teacher_map_channels))
        if on_maps:
            if not context.teacher_map_channels or not student_channels:
                raise ConfigError(
                    "method 'fitnet' option 'hint': 'maps' needs the stage-map channels of a live "
                    "convolutional teacher and of the student; use hint: features for black-box teachers"
                )
            s_dim = _channel(self.name, tuple(student_channels), options.student_layer, "student")
            t_dim = _channel(self.name, tuple(context.teacher_map_channels), options.teacher_layer, "teacher")
        else:
            s_dim, t_dim = context.student.feature_dim, teacher_feature_width(context)
        self.on_maps = on_maps
        self.regressor = HintRegressor(s_dim, t_dim, on_maps=on_maps)
        # instance-level flags: what the trainer must provide for these options
        self.needs_teacher_logits = options.kd_weight > 0
        self.needs_teacher_maps = on_maps
        self.needs_teacher_features = not on_maps

    def teacher_maps_read(self, n_teacher_maps: int) -> tuple[int, ...]:
        """The hint layer's map when the hint is on maps; none on features."""
        return (self.options.teacher_layer % n_teacher_maps,) if self.on_maps else ()

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        out = student.forward_all(batch.inputs)
        if self.on_maps:
            if teacher is None or not teacher.maps:
                raise ValueError(
                    "method 'fitnet' with map hints needs the teacher's stage maps (a live teacher)"
                )
            guided = out.maps[self.options.student_layer]
            target = teacher.maps[self.options.teacher_layer]
        else:
            guided, target = out.features, teacher_features(self.name, teacher)
        hint = hint_loss(self.regressor(guided), target)
        parts = task_terms(
            self.name,
            out.logits,
            batch.labels,
            teacher,
            kd_weight=self.options.kd_weight,
            temperature=self.temperature,
            t2_scaling=self.t2_scaling,
        )
        total = parts.pop("task") + self.options.hint_weight * hint
        return {"loss": total, "hint": hint, **parts, LOGITS: out.logits.detach()}


def build_fitnet(options: FitNetOptions, context: MethodContext) -> Method:
    return FitNet(options, context)
