"""Adversarial debiasing (Zhang et al. 2018; SPEC §2 "AD") on the student's penultimate features.

A group classifier (MLP) reads the student's features through a gradient reversal layer (GRL, scale lambda):

* the adversary is trained with its own Adam optimizer to predict the protected group: ``adversary_steps``
  steps per student step (the "training ratio", seeds/004 appendix A.3), in :meth:`before_step`, on the
  current batch's (detached) features;
* the student minimises ``CE + kd_weight * KD + CE_adv``; through the GRL its features receive
  ``-lambda * dCE_adv/dh``, i.e. they are pushed to make the group unpredictable.

The adversary's parameters are :meth:`own_parameters`; their Adam state is saved with the method's
``state_dict`` (``get_extra_state``) so a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from kdfair.losses.adversarial import GroupAdversary, grad_reverse
from kdfair.losses.feature import upcast
from kdfair.methods.base import LOGITS, Batch, MetaSource, Method, MethodContext, StepLogs, TeacherOutput
from kdfair.methods.common import (
    STRICT,
    batch_groups,
    functional_forward_all,
    resolve_attribute,
    resolve_temperature,
    task_terms,
)
from kdfair.models.base import KDModel


class AdversarialOptions(BaseModel):
    model_config = STRICT
    attribute: str | None = None  # protected attribute the adversary predicts; None: the data set's first
    reversal_scale: float = Field(1.0, ge=0.0)  # lambda of the GRL: student gets -lambda x adversary gradient
    adversary_hidden: int = Field(64, ge=1)  # hidden units of the adversary MLP
    # adversary (group classifier) Adam steps per student step, each on the current batch: BIRD's "training
    # ratio" (seeds/004 A.3: 3 when training > 20 epochs, else 1). A.3 words it as "base model updates
    # compared to domain classifier", but the code it follows (princetonvisualai/DomainBiasMitigation,
    # models/cifar_gradproj_adv.py) steps the domain classifier every batch and the main network only in
    # epochs with epoch % training_ratio == 0: r adversary updates per main update. We follow the code,
    # interleaved per step instead of per epoch.
    adversary_steps: int = Field(1, ge=1)
    adversary_lr: float = Field(1e-3, gt=0.0)  # Adam learning rate of the adversary (BIRD's baselines: 1e-3)
    kd_weight: float = Field(0.0, ge=0.0)  # weight of the Hinton KD term on logits; 0 = off
    temperature: float | None = Field(None, gt=0.0)  # KD temperature; None: the run's, else 4


class AdversarialDebiasing(Method):
    """CE (+ KD) on the task, and a gradient-reversed group classifier on the features."""

    name = "ad"
    needs_teacher = False
    needs_teacher_logits = False

    def __init__(self, options: AdversarialOptions, context: MethodContext) -> None:
        super().__init__()
        self.options = options
        self.attribute, num_groups = resolve_attribute(self.name, options.attribute, context)
        self.t2_scaling = context.t2_scaling
        self.temperature = resolve_temperature(options.temperature, context, default=4.0)
        self.adversary = GroupAdversary(context.student.feature_dim, num_groups, options.adversary_hidden)
        self.optimizer = torch.optim.Adam(self.adversary.parameters(), lr=options.adversary_lr)
        self.needs_teacher = self.needs_teacher_logits = options.kd_weight > 0

    def own_parameters(self) -> Iterator[nn.Parameter]:
        return iter(self.adversary.parameters())

    def get_extra_state(self) -> Any:
        return {"adversary_optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: Any) -> None:
        self.optimizer.load_state_dict(state["adversary_optimizer"])

    def before_step(
        self, student: KDModel, batch: Batch, teacher: TeacherOutput | None, meta: MetaSource | None
    ) -> StepLogs:
        """``adversary_steps`` Adam steps of the adversary on this batch's detached student features (under
        DDP each step's gradient averaged over the ranks); logs the last step's adversary CE (nats)."""
        groups = batch_groups(self.name, batch, self.attribute)
        with torch.no_grad():
            features = functional_forward_all(student, batch.inputs, use_running_stats=False).features
        features = features.to(next(self.adversary.parameters()).dtype)
        for _ in range(self.options.adversary_steps):
            self.optimizer.zero_grad(set_to_none=True)
            adversary_ce = F.cross_entropy(self.adversary(features), groups)
            adversary_ce.backward()
            self.step_own(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        return {"adversary_ce": adversary_ce.detach()}

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        out = student.forward_all(batch.inputs)
        groups = batch_groups(self.name, batch, self.attribute)
        reversed_features = grad_reverse(out.features, self.options.reversal_scale)
        # the adversary's weights enter as constants here: it is trained only in before_step
        frozen = {k: v.detach() for k, v in self.adversary.named_parameters()}
        adversary_logits = torch.func.functional_call(self.adversary, frozen, (reversed_features,))
        adversary_ce = F.cross_entropy(upcast(adversary_logits), groups)
        parts = task_terms(
            self.name,
            out.logits,
            batch.labels,
            teacher,
            kd_weight=self.options.kd_weight,
            temperature=self.temperature,
            t2_scaling=self.t2_scaling,
        )
        total = parts.pop("task") + adversary_ce
        return {"loss": total, "adversary_ce": adversary_ce, **parts, LOGITS: out.logits.detach()}


def build_ad(options: AdversarialOptions, context: MethodContext) -> Method:
    return AdversarialDebiasing(options, context)
