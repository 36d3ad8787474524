"""BIRD, bias-aware distillation (seeds/004 §3, Algorithm 1; SPEC §2 "BIRD"), and its "w/o meta" ablation.

``FAIRDISTILL(h_T) = sigmoid(phi) * h_T`` with ``phi`` a learnable vector of the teacher's width. After
``warmup_epochs`` epochs of plain feature KD (``alpha * MSE(P(h_S), h_T) + (1 - alpha) * CE``), each step:

1. a virtual copy of the student takes one SGD step (``inner_lr``) on
   ``L_in = alpha * MSE(P(h_c), FAIRDISTILL(h_T)) + (1 - alpha) * CE`` (Eqn. 2), keeping the graph;
2. ``phi`` takes an Adam step on ``L_o`` (Eqn. 3, :func:`kdfair.losses.fairness.class_group_ce_gap`) of the
   updated copy on a meta batch; the gradient is exact second order through the virtual step
   (``torch.autograd.grad(create_graph=True)`` over ``torch.func.functional_call``);
3. the student minimises ``L_j = alpha * MSE(P(h_S), FAIRDISTILL(h_T)) + (1 - alpha) * CE + lambda * L_o``
   (Eqn. 4, ``L_o`` on the training batch with the real student; ``phi`` is a constant here).

Stages 1-2 run in :meth:`BIRD.before_step`, stage 3 in :meth:`BIRD.loss`. The virtual step never changes the
student: its BatchNorm layers normalise with the running statistics (``virtual_bn: running``, default) or
the batch's (``batch``) and their buffers are never updated. The feature projector ``P`` (widths differ)
is outside the virtual step: stage 1 steps only the student's parameters, so ``phi``'s meta-gradient flows
through the student's update alone; ``P`` is trained in stage 3 by the student's optimizer. (Stepping ``P``
virtually too would give the same meta-gradient: ``L_o`` reads only the updated student's logits.)
``bird_no_meta`` skips stages 1-2, so ``phi`` keeps its initial value. The paper gives neither how ``phi``
starts nor its learning rate ``mu_2`` (Algorithm 1): we start at ``phi_init = 0`` (gate 0.5, where the
sigmoid's slope is largest, 0.25) and use ``phi_lr = 1e-2``, so that the gate can move within a few hundred
meta steps (see :class:`BIRDOptions`).
The trainer must call :meth:`start_epoch` each epoch (0-based) when ``warmup_epochs > 0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from kdfair.losses.fairness import class_group_ce_gap
from kdfair.losses.feature import FeatureProjector, feature_mse, upcast
from kdfair.methods.base import Batch, MetaSource, Method, MethodContext, TeacherOutput
from kdfair.methods.feature_kd import (
    STRICT,
    batch_groups,
    functional_forward_all,
    resolve_alpha,
    resolve_attribute,
    teacher_feature_width,
    teacher_features,
)
from kdfair.models.base import KDModel, ModelOutput


class BIRDOptions(BaseModel):
    model_config = STRICT
    attribute: str | None = None  # protected attribute of L_o; None: the data set's first
    alpha: float | None = Field(None, ge=0.0, le=1.0)  # feature-KD weight; None: the run's, else 0.9 (paper)
    temperature: float = Field(4.0, gt=0.0)  # paper's tau = 4; recorded only, the feature loss has none
    fairness_weight: float = Field(0.1, ge=0.0)  # lambda of Eqn. 4 (paper Table 8: 0.05-0.2)
    warmup_epochs: int = Field(5, ge=0)  # epochs of plain feature KD before the meta steps (paper: 5 of 10)
    # Adam learning rate of phi (mu_2 of Algorithm 1; the paper does not state it, its 1e-3 is the students').
    # Adam moves phi by about phi_lr per step whatever the gradient's scale, so at 1e-3 and the few hundred
    # meta steps of a CPU-scale run the gate could move by a few hundredths at most (BIRD ~= BIRD w/o meta
    # by construction); 1e-2 lets a few hundred steps span the gate's range, as ~6000 steps at 1e-3 could
    # in the paper's CelebA runs (5 meta epochs of ~1270 batches of 128).
    phi_lr: float = Field(1e-2, gt=0.0)
    # initial phi (the gate's logit). The paper does not say; it writes phi in [0, 1]^d. 0 gives
    # sigmoid(0) = 0.5, where the sigmoid's slope is largest (0.25): a step of phi changes the gate 14x more
    # than at phi = 4 (slope 0.018, gate 0.982). The distillation target is halved when the warm-up ends;
    # the linear projector (or the student) absorbs the scale.
    phi_init: float = 0.0
    # SGD step of the virtual student copy (mu_1 of Algorithm 1, the student's lr). None: the run's
    # learning rate (MethodContext.learning_rate) when the trainer gives it, else 1e-3 (the paper's Adam lr)
    inner_lr: float | None = Field(None, gt=0.0)
    virtual_bn: Literal["running", "batch"] = "running"  # BatchNorm statistics in the virtual step


PAPER_LEARNING_RATE = 1e-3  # seeds/004 appendix A.1: Adam, lr 1e-3, for every model


def resolve_inner_lr(inner_lr: float | None, context: MethodContext) -> float:
    """The virtual step's SGD lr ``mu_1``: the option, else the run's student lr, else the paper's 1e-3."""
    if inner_lr is not None:
        return float(inner_lr)
    if context.learning_rate is not None:
        return float(context.learning_rate)
    return PAPER_LEARNING_RATE


class BIRD(Method):
    """BIRD with the meta update of its FAIRDISTILL gate."""

    name = "bird"
    needs_teacher_logits = False
    needs_teacher_features = True
    uses_meta_split = True  # bird_no_meta keeps it too, so both train on the same split
    # L_o on the meta batch (Eqn. 3) reads only the virtually updated student's logits, labels and groups:
    # before_step discards the meta batch's teacher outputs, so the trainer need not compute them
    needs_meta_teacher = False
    meta_update: ClassVar[bool] = True

    def __init__(self, options: BIRDOptions, context: MethodContext) -> None:
        super().__init__()
        self.options = options
        self.alpha = resolve_alpha(options.alpha, context, default=0.9)
        self.inner_lr = resolve_inner_lr(options.inner_lr, context)
        self.attribute, self.num_groups = resolve_attribute(self.name, options.attribute, context)
        width = teacher_feature_width(context)
        self.projector = FeatureProjector(context.student.feature_dim, width)
        self.phi = nn.Parameter(torch.full((width,), float(options.phi_init)))
        self.optimizer = torch.optim.Adam([self.phi], lr=options.phi_lr)
        self.epoch: int | None = None

    def own_parameters(self) -> Iterator[nn.Parameter]:
        return iter([self.phi])

    def get_extra_state(self) -> Any:
        return {"phi_optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: Any) -> None:
        self.optimizer.load_state_dict(state["phi_optimizer"])

    def start_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def warming_up(self) -> bool:
        """True during the first ``warmup_epochs`` epochs (plain feature KD, no gate, no L_o)."""
        if self.options.warmup_epochs == 0:
            return False
        if self.epoch is None:
            raise RuntimeError(
                f"method '{self.name}' has warmup_epochs={self.options.warmup_epochs} but the trainer never "
                "called start_epoch(epoch)"
            )
        return self.epoch < self.options.warmup_epochs

    def gate(self) -> torch.Tensor:
        """``sigmoid(phi)``: FAIRDISTILL's per-dimension weight on the teacher's features, in (0, 1)."""
        return torch.sigmoid(self.phi)

    def feature_kd(
        self, out: ModelOutput, target: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``alpha * MSE(P(h), target) + (1 - alpha) * CE`` as ``total``, with its parts."""
        feature = feature_mse(self.projector(out.features), target)
        ce = F.cross_entropy(upcast(out.logits), labels)
        return {"total": self.alpha * feature + (1.0 - self.alpha) * ce, "feature": feature, "ce": ce}

    def meta_gradient(
        self, student: KDModel, batch: Batch, teacher: TeacherOutput | None, meta_batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stages 1-2 without the update: ``(L_o of the virtually updated student on meta_batch, dL_o/dphi)``.

        Leaves the student, its buffers and every ``.grad`` unchanged."""
        running = self.options.virtual_bn == "running"
        h_teacher = teacher_features(self.name, teacher).detach()
        params = {k: p for k, p in student.named_parameters() if p.requires_grad}
        out = functional_forward_all(student, batch.inputs, params, use_running_stats=running)
        inner = self.feature_kd(out, self.gate() * h_teacher, batch.labels)["total"]
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=True, allow_unused=True)
        updated = {
            k: p if g is None else p - self.inner_lr * g
            for (k, p), g in zip(params.items(), grads, strict=True)
        }
        meta_out = functional_forward_all(student, meta_batch.inputs, updated, use_running_stats=running)
        groups = batch_groups(self.name, meta_batch, self.attribute)
        outer = class_group_ce_gap(meta_out.logits, meta_batch.labels, groups, self.num_groups)
        (grad_phi,) = torch.autograd.grad(outer, [self.phi], allow_unused=True)
        if grad_phi is None:
            grad_phi = torch.zeros_like(self.phi)
        return outer.detach(), grad_phi.detach()

    def before_step(
        self, student: KDModel, batch: Batch, teacher: TeacherOutput | None, meta: MetaSource | None
    ) -> dict[str, float]:
        """Stages 1-2: one Adam step of ``phi`` on the meta-gradient (none in warm-up or in the ablation)."""
        if not self.meta_update or self.warming_up:
            return {}
        if meta is None:
            raise ValueError(f"method '{self.name}' needs a meta batch source (the trainer's meta split)")
        meta_batch, _ = meta()  # the meta batch's teacher outputs are not used (needs_meta_teacher = False)
        outer, grad_phi = self.meta_gradient(student, batch, teacher, meta_batch)
        if not torch.isfinite(grad_phi).all():  # a diverged virtual step: keep phi, report the skip
            return {"meta_fairness": float(outer), "meta_skipped": 1.0}
        self.optimizer.zero_grad(set_to_none=True)
        self.phi.grad = grad_phi.to(self.phi.dtype)
        self.optimizer.step()
        self.phi.grad = None
        return {"meta_fairness": float(outer), "gate_mean": float(self.gate().mean().detach())}

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        """Stage 3 (``L_j``), or plain feature KD during the warm-up."""
        out = student.forward_all(batch.inputs)
        h_teacher = teacher_features(self.name, teacher).detach()
        if self.warming_up:
            parts = self.feature_kd(out, h_teacher, batch.labels)
            return {"loss": parts.pop("total"), **parts}
        parts = self.feature_kd(out, self.gate().detach() * h_teacher, batch.labels)
        groups = batch_groups(self.name, batch, self.attribute)
        fairness = class_group_ce_gap(out.logits, batch.labels, groups, self.num_groups)
        total = parts.pop("total") + self.options.fairness_weight * fairness
        return {"loss": total, "fairness": fairness, **parts}


class BIRDNoMeta(BIRD):
    """The ablation "BIRD w/o meta" (seeds/004 Table 7): stage 3 only; ``phi`` never changes."""

    name = "bird_no_meta"
    meta_update = False


def build_bird(options: BIRDOptions, context: MethodContext) -> Method:
    return BIRD(options, context)


def build_bird_no_meta(options: BIRDOptions, context: MethodContext) -> Method:
    return BIRDNoMeta(options, context)
