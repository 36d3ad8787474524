"""Fused students (``train.fuse_students``): the lockstep students of one architecture train as one model.

Only the arithmetic is fused. Each student keeps its own model, optimiser (and its state), scheduler, RNG
state, checkpoint, predictions and run folder, exactly as in today's lockstep (:mod:`kdfair.train.lockstep`):

- An epoch starts by stacking the students' parameters, buffers and optimiser states into one
  :class:`~kdfair.models.fused_nets.FusedStudents` and one optimiser of the same kind and hyperparameters
  (lr, momentum, weight decay, Adam's betas and eps are equal within a lockstep group; the students of an
  epoch share their step count). SGD and Adam are elementwise, so slice ``k`` of the fused update is student
  ``k``'s own update, bias correction and eps included.
- Each step runs one fused forward, then each student's own ``method.loss`` on its slice of the logits (the
  method calls a stand-in student that returns that slice), and one backward of the sum of the losses: the
  gradient of slice ``k`` is the gradient of student ``k``'s loss alone.
- The epoch ends by copying every slice back into its student's model and optimiser state (unfusing); the
  lockstep engine then steps each student's scheduler and writes its checkpoint in today's format, so a
  folder trained fused resumes unfused and the other way round.

Fusable: LeNet-5 and the CIFAR ResNets (:func:`~kdfair.models.fused_nets.fusable_architecture`) with the
methods ``kd`` and ``ce``, on one process (not DDP). Other students of the unit train as today, which is
said once per unit on stdout.

RNG: LeNet-5, the CIFAR ResNets and the KD/CE losses draw no random numbers (no dropout), so a fused step
leaves every student's saved torch RNG state as it is, as an unfused step would.

Tolerance: a fused run is not bit-identical to an unfused one; the convolutions (run channels_last) and
matmuls sum in other orders. In float64 fused and unfused gradients agree to 1e-14 relative. In float32, on
the tests' stand-in data after 3-6 steps: LeNet-5 losses, test logits, parameters and momentum buffers agree
within 1e-5 absolute (measured 1e-7 to 1e-6). A ResNet's training amplifies round-off much more: unfused
channels_last against unfused NCHW, a layout change alone, already moves its parameters by 2e-3 and its
eval logits by 0.3 after 3 steps; fused against unfused channels_last agree within 1e-4 (parameters,
measured 2e-5) and 1e-5 (losses). Student ``k``'s forward does not depend on the other slots, but some
gradients' summation order depends on ``K``, so an epoch always fuses the whole group: a student that
catches up alone after a resume is fused with stand-in copies of itself in the other slots (their results
are discarded), and a killed fused sweep resumes bit for bit on the CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from kdfair.io import say
from kdfair.methods.base import LOGITS, LOSS, Batch, TeacherOutput, logged_parts
from kdfair.methods.standard import CrossEntropy, HintonKD
from kdfair.models.base import KDModel, ModelOutput
from kdfair.models.fused_nets import FusedStudents, fusable_architecture
from kdfair.train.device import Runtime

if TYPE_CHECKING:
    from kdfair.train.lockstep import StepTotals
    from kdfair.train.student import Student

FUSABLE_METHODS = (HintonKD, CrossEntropy)  # exact classes: their loss calls student(batch.inputs) once


def fusion_blocker(student: Student, world_size: int) -> str | None:
    """Why ``student`` cannot train fused (None: it can)."""
    if world_size > 1:
        return "DDP runs are not fused"
    method = student.method
    if type(method) not in FUSABLE_METHODS:
        return f"method '{method.name}' is not fusable (kd and ce are)"
    if any(True for _ in method.parameters()) or any(True for _ in method.buffers()):
        return f"method '{method.name}' has trainable parts"
    reason = fusable_architecture([student.model])
    if reason is not None:
        return reason
    groups = student.optimizer.param_groups
    if len(groups) != 1 or [id(p) for p in groups[0]["params"]] != [
        id(p) for p in student.model.parameters()
    ]:
        return "its optimizer does not hold exactly the model's parameters"
    return None


def plan_fusion(students: list[Student], world_size: int) -> list[list[Student]]:
    """The unit's fused groups: fusable students with equal architectures, in input order.

    Prints one line for the unit on stdout: the groups, and every student that trains unfused and why.
    """
    groups: dict[tuple[Any, ...], list[Student]] = {}
    unfused = []
    for student in students:
        reason = fusion_blocker(student, world_size)
        if reason is not None:
            unfused.append(f"{student.run_id} ({reason})")
            continue
        state = student.model.state_dict()
        key = (type(student.model).__name__, tuple((k, tuple(v.shape)) for k, v in state.items()))
        groups.setdefault(key, []).append(student)
    sizes = " + ".join(str(len(g)) for g in groups.values()) or "no"
    line = f"fuse_students: {sizes} student(s) fused"
    if unfused:
        line += f"; trained unfused as today's lockstep: {'; '.join(unfused)}"
    say(line)
    return list(groups.values())


class FusedGroup:
    """One epoch of fused training for the ``active`` members of a fused group.

    ``members`` is the whole group in its fixed order (its size ``K`` fixes the arithmetic); slots of members
    that are not active this epoch (already ahead after a resume) hold stand-in copies of the first active
    student, whose results are never written back.
    """

    def __init__(self, members: list[Student], active: list[Student], totals: dict[str, StepTotals]) -> None:
        active_ids = {s.run_id for s in active}
        self.active = [s for s in members if s.run_id in active_ids]
        self.slots = [i for i, s in enumerate(members) if s.run_id in active_ids]
        stand_in = self.active[0]
        filled = [s if s.run_id in active_ids else stand_in for s in members]
        self.size = len(members)
        self.net = FusedStudents([s.model for s in filled])
        self.optimizer = fuse_optimizer([s.optimizer for s in filled], self.net)
        self.totals = [totals[s.run_id] for s in self.active]
        self.proxies = [SliceStudent(s.model) for s in self.active]

    def step(
        self, batch: Batch, live: TeacherOutput | None, cached: TeacherOutput | None, runtime: Runtime
    ) -> None:
        """One fused optimisation step of every active student; logged values stay on the device."""
        with runtime.autocast():
            logits = self.net.forward(batch.inputs)
            parts = []
            for student, slot, proxy in zip(self.active, self.slots, self.proxies, strict=True):
                teacher = (live if student.live_teacher else cached) if student.method.needs_teacher else None
                proxy.feed(batch.inputs, logits[slot])
                parts.append(student.method.loss(proxy, batch, teacher))
                proxy.check_used()
        self.optimizer.zero_grad(set_to_none=True)
        torch.stack([p[LOSS] for p in parts]).sum().backward()
        self.optimizer.step()
        n = len(batch.labels)
        for totals, part in zip(self.totals, parts, strict=True):
            correct = (part[LOGITS].argmax(dim=1) == batch.labels).sum()  # the slot's logits
            totals.add(n, part[LOSS], correct, logged_parts(part))

    def finish(self) -> None:
        """Copy the active slots back into their students' models and optimiser states."""
        self.net.unfuse([s.model for s in self.active], self.slots)
        unfuse_optimizer(self.optimizer, self.net, [s.optimizer for s in self.active], self.slots)


class SliceStudent(KDModel):
    """The student a fusable method sees: ``student(batch.inputs)`` returns its slice of the fused logits."""

    def __init__(self, model: KDModel) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = model.num_classes, model.feature_dim
        self._inputs: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None

    def feed(self, inputs: torch.Tensor, logits: torch.Tensor) -> None:
        self._inputs, self._logits = inputs, logits

    def check_used(self) -> None:
        if self._logits is not None:
            raise RuntimeError("a fused method must call the student once per step")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._logits is None or x is not self._inputs:
            raise RuntimeError("a fused student gives logits once per step, for the batch's own inputs")
        logits, self._logits = self._logits, None
        return logits

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        raise RuntimeError("fused students give logits only (methods that read features are not fused)")


def fuse_optimizer(optimizers: list[torch.optim.Optimizer], net: FusedStudents) -> torch.optim.Optimizer:
    """One optimiser of the students' kind over ``net``'s stacked parameters, with their stacked state.

    Hyperparameters (lr, momentum, ...) and per-parameter scalars (Adam's ``step``) must be equal across the
    students; tensors of a parameter's shape (momentum buffers, Adam moments) are stacked.
    """
    first = optimizers[0]
    hyper = [{k: v for k, v in o.param_groups[0].items() if k != "params"} for o in optimizers]
    if any(h != hyper[0] for h in hyper):
        raise RuntimeError("fused students need equal optimiser hyperparameters")
    fused = type(first)(net.parameters(), **first.defaults)
    fused.param_groups[0].update(hyper[0])
    for i, param in enumerate(net.parameters()):
        states = [o.state.get(o.param_groups[0]["params"][i], {}) for o in optimizers]
        if any(s.keys() != states[0].keys() for s in states):
            raise RuntimeError("fused students need optimiser states of one shape")
        if states[0]:
            fused.state[param] = {key: _stack_state([s[key] for s in states]) for key in states[0]}
    return fused


def _stack_state(values: list[Any]) -> Any:
    first = values[0]
    if torch.is_tensor(first) and first.dim() > 0:
        return torch.stack(values)
    same = all(torch.equal(v, first) if torch.is_tensor(first) else v == first for v in values)
    if not same:
        raise RuntimeError("fused students need equal optimiser step counts")
    return first.clone() if torch.is_tensor(first) else first


def unfuse_optimizer(
    fused: torch.optim.Optimizer,
    net: FusedStudents,
    optimizers: list[torch.optim.Optimizer],
    slots: list[int],
) -> None:
    """Write slot ``slots[j]`` of the fused optimiser state into ``optimizers[j]`` (hyperparameters stay)."""
    for i, param in enumerate(net.parameters()):
        state = fused.state.get(param)
        if not state:
            continue
        for optimizer, slot in zip(optimizers, slots, strict=True):
            own = optimizer.param_groups[0]["params"][i]
            optimizer.state[own] = {
                key: value[slot].clone() if _stacked(value, param) else _copy(value)
                for key, value in state.items()
            }
    for optimizer in optimizers:  # stepped by proxy: tell its lr scheduler (else torch warns of the order)
        optimizer._opt_called = True  # type: ignore[attr-defined]


def _stacked(value: Any, param: torch.Tensor) -> bool:
    return torch.is_tensor(value) and value.shape == param.shape


def _copy(value: Any) -> Any:
    return value.clone() if torch.is_tensor(value) else value
