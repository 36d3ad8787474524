"""BIRD, bias-aware distillation (seeds/004 §3, Algorithm 1; SPEC §2 "BIRD"), and its "w/o meta" ablation.

``FAIRDISTILL(h_T) = sigmoid(phi) * h_T`` with ``phi`` a learnable vector of the teacher's width. After
``warmup_epochs`` epochs of plain feature KD (``alpha * MSE(P(h_S), h_T) + (1 - alpha) * CE``), each step:

1. a virtual copy of the student takes one SGD step (``inner_lr``) on
   ``L_in = alpha * MSE(P(h_c), FAIRDISTILL(h_T)) + (1 - alpha) * CE`` (Eqn. 2), keeping the graph;
2. ``phi`` takes an Adam step on the meta objective of the updated copy on a meta batch: ``L_o`` (Eqn. 3,
   :func:`kdfair.losses.fairness.class_group_ce_gap`; ``meta_objective: fairness``, Algorithm 1) or, by
   default, ``(1 - alpha) * CE + lambda * L_o`` (``task_and_fairness``); the gradient is exact second order
   through the virtual step (``torch.autograd.grad(create_graph=True)`` over ``torch.func.functional_call``);
3. the student minimises ``L_j = alpha * MSE(P(h_S), FAIRDISTILL(h_T)) + (1 - alpha) * CE + lambda * L_o``
   (Eqn. 4, ``L_o`` on the training batch with the real student; ``phi`` is a constant here).

``L_o`` is the variant named by ``fairness_term`` (:data:`kdfair.losses.fairness.FAIRNESS_TERMS`): ``paper``
is Eqn. 3; the default ``shrunk_huber`` keeps it well-posed on real batches (docs/methods.md "bird").

Stages 1-2 run in :meth:`BIRD.before_step`, stage 3 in :meth:`BIRD.loss`. The virtual step never changes the
student: its BatchNorm layers normalise with the running statistics (``virtual_bn: running``, default) or
the batch's (``batch``) and their buffers are never updated. The feature projector ``P`` (widths differ)
is outside the virtual step: stage 1 steps only the student's parameters, so ``phi``'s meta-gradient flows
through the student's update alone; ``P`` is trained in stage 3 by the student's optimizer. (Stepping ``P``
virtually too would give the same meta-gradient: the meta objective reads only the logits.)
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

from kdfair.losses.fairness import FAIRNESS_TERMS, class_group_ce_gap
from kdfair.losses.feature import FeatureProjector, feature_mse, upcast
from kdfair.methods.base import LOGITS, Batch, MetaSource, Method, MethodContext, StepLogs, TeacherOutput
from kdfair.methods.common import (
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
    # The variant of L_o (kdfair.losses.fairness.FAIRNESS_TERMS) in stage 2 (meta objective) and stage 3
    # (L_reg of Eqn. 4); "paper" is Eqn. 3 exactly. Default "shrunk_huber" (a departure; docs/methods.md
    # "bird"): on real UTKFace batches of 128 the paper's term has 28x the CE term's gradient on the logits
    # (lambda 0.2, CE weight 0.1; its max is usually taken over a 1-sample cell, and |gap| pulls at full force
    # even at an input-blind predictor) and every student collapsed to one class; shrunk_huber: 0.03x at init,
    # 1.5x after one epoch, and no collapse
    fairness_term: Literal[tuple(FAIRNESS_TERMS)] = "shrunk_huber"  # type: ignore[valid-type]
    # epochs over which lambda rises linearly after the warm-up: lambda * min(1, (e - warmup + 1) / ramp) in
    # epoch e (0-based). 0: the full lambda at once (paper); not needed with shrunk_huber in our runs
    fairness_ramp_epochs: int = Field(0, ge=0)
    # meta batches (of the run's batch size) joined into one meta step's batch (paper: 1). 4 lifts the
    # smallest (class, race) cell's median on UTKFace from 1 to 3 samples, at 4x the meta forward's cost
    meta_batches: int = Field(1, ge=1)
    # the objective of stage 2 on the meta batch. "fairness": L_o alone (Algorithm 1, line 7).
    # "task_and_fairness" (default, a departure): (1 - alpha) * CE + lambda * L_o, L_j of Eqn. 4 without its
    # distillation term. L_o alone is smallest for a student that knows nothing, so its gate hides the
    # informative dimensions: on a synthetic task the paper's objective lowered the gate on the label
    # dimensions (to 0.31, attribute dimensions 0.50; the default: 0.61 and 0.45), and on UTKFace the mean
    # gate fell to 0.23 in 4 epochs (default: rose to 0.60); tests/methods/test_bird_meta_gate.py,
    # docs/methods.md "bird"
    meta_objective: Literal["fairness", "task_and_fairness"] = "task_and_fairness"


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
        self.term = FAIRNESS_TERMS[options.fairness_term]

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

    def fairness_weight(self) -> float:
        """lambda of Eqn. 4 in the current epoch, ramped over ``fairness_ramp_epochs`` after the warm-up."""
        ramp = self.options.fairness_ramp_epochs
        if ramp == 0 or self.epoch is None:
            return self.options.fairness_weight
        done = self.epoch - self.options.warmup_epochs + 1  # post-warm-up epochs including this one
        return self.options.fairness_weight * min(1.0, max(done, 0) / ramp)

    def fairness(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """L_o of ``batch`` (Eqn. 3, or the ``fairness_term`` variant), nats."""
        groups = batch_groups(self.name, batch, self.attribute)
        return class_group_ce_gap(logits, batch.labels, groups, self.num_groups, self.term)

    def meta_objective(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Stage 2's objective (``meta_objective``) of the virtually stepped student on a meta batch, nats."""
        fairness = self.fairness(logits, batch)
        if self.options.meta_objective == "fairness":
            return fairness
        ce = F.cross_entropy(upcast(logits), batch.labels)
        return (1.0 - self.alpha) * ce + self.fairness_weight() * fairness

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
        """Stages 1-2 without the update: ``(meta objective M of the virtually updated student on meta_batch,
        dM/dphi)``, M per ``meta_objective`` (nats).

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
        outer = self.meta_objective(meta_out.logits, meta_batch)
        (grad_phi,) = torch.autograd.grad(outer, [self.phi], allow_unused=True)
        if grad_phi is None:
            grad_phi = torch.zeros_like(self.phi)
        return outer.detach(), grad_phi.detach()

    def before_step(
        self, student: KDModel, batch: Batch, teacher: TeacherOutput | None, meta: MetaSource | None
    ) -> StepLogs:
        """Stages 1-2: one Adam step of ``phi`` on the meta-gradient (none in warm-up or in the ablation).

        A non-finite meta-gradient (a diverged virtual step) skips the step: ``phi`` and its Adam state keep
        their values and ``meta_skipped`` logs 1. Decided on the device (no host sync); under DDP after the
        gradient is averaged over the ranks, so every rank skips alike."""
        if not self.meta_update or self.warming_up:
            return {}
        if meta is None:
            raise ValueError(f"method '{self.name}' needs a meta batch source (the trainer's meta split)")
        # the meta batches' teacher outputs are not used (needs_meta_teacher = False)
        meta_batch = concat_batches([meta()[0] for _ in range(self.options.meta_batches)])
        outer, grad_phi = self.meta_gradient(student, batch, teacher, meta_batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.phi.grad = grad_phi.to(self.phi.dtype)
        finite = self.step_own(self.optimizer, skip_non_finite=True)
        self.phi.grad = None
        return {
            "meta_objective": outer,
            "meta_skipped": (~finite).to(outer.dtype),
            "gate_mean": self.gate().mean().detach(),
        }

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        """Stage 3 (``L_j``), or plain feature KD during the warm-up."""
        out = student.forward_all(batch.inputs)
        h_teacher = teacher_features(self.name, teacher).detach()
        if self.warming_up:
            parts = self.feature_kd(out, h_teacher, batch.labels)
            return {"loss": parts.pop("total"), **parts, LOGITS: out.logits.detach()}
        parts = self.feature_kd(out, self.gate().detach() * h_teacher, batch.labels)
        fairness = self.fairness(out.logits, batch)
        total = parts.pop("total") + self.fairness_weight() * fairness
        return {"loss": total, "fairness": fairness, **parts, LOGITS: out.logits.detach()}


def concat_batches(batches: list[Batch]) -> Batch:
    """One batch of the samples of ``batches`` in order (the first batch itself when there is one)."""
    if len(batches) == 1:
        return batches[0]
    index = None if any(b.index is None for b in batches) else torch.cat([b.index for b in batches])
    return Batch(
        inputs=torch.cat([b.inputs for b in batches]),
        labels=torch.cat([b.labels for b in batches]),
        attributes={k: torch.cat([b.attributes[k] for b in batches]) for k in batches[0].attributes},
        index=index,
    )


class BIRDNoMeta(BIRD):
    """The ablation "BIRD w/o meta" (seeds/004 Table 7): stage 3 only; ``phi`` never changes."""

    name = "bird_no_meta"
    meta_update = False


def build_bird(options: BIRDOptions, context: MethodContext) -> Method:
    return BIRD(options, context)


def build_bird_no_meta(options: BIRDOptions, context: MethodContext) -> Method:
    return BIRDNoMeta(options, context)
