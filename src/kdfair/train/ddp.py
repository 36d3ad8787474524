"""Train ONE run across processes with DistributedDataParallel: the library (the command line that starts it
is :mod:`kdfair.train.ddp_cli`).

Every rank builds the same batches (order and augmentation depend only on ``(seed, epoch)``) and takes its
shard ``batch[rank::world]``. DDP averages the student's gradients; the gradients of the method's trainable
parts are all-reduced here: those the student's optimizer steps after the backward pass, and those of a
method's own optimizers (BIRD's ``phi``, AD's adversary) inside ``before_step``, before each of their steps
(:meth:`kdfair.methods.base.Method.step_own`). So every rank's copy takes the same steps.

Shards of unequal size (the last batch of an epoch) are weighted by their size: each rank scales its loss by
``world * n_rank / n_batch`` (:attr:`GradientAverage.weight`), so that DDP's plain mean over ranks is the
gradient of the whole batch's mean loss. A rank whose shard would be empty (a batch smaller than the world
size) trains on a stand-in sample with weight 0: it joins every collective and adds nothing.

BatchNorm statistics stay per rank (no SyncBatchNorm). Rank 0 writes the run folder and the test
predictions; the teacher cache is filled by rank 0 alone and read from its file by the others.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kdfair.models.base import KDModel, ModelOutput
from kdfair.train.student import DDPHandles, Student


class _AllOutputs(nn.Module):
    """Makes ``forward`` return everything ``forward_all`` does, so DDP sees every use of the model."""

    def __init__(self, model: KDModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        out = self.model.forward_all(x)
        return out.logits, out.features, tuple(out.maps)


class DDPStudent(KDModel):
    """The view of a DDP-wrapped student that methods call (``forward`` / ``forward_all``)."""

    def __init__(self, model: KDModel) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = model.num_classes, model.feature_dim
        self.ddp = DistributedDataParallel(_AllOutputs(model))

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        logits, features, maps = self.ddp(x)
        return ModelOutput(logits, features, list(maps))


class GradientAverage:
    """All-reduces a student's method gradients over the ranks (the student's own gradients: DDP).

    ``weight``: this rank's share of the current batch, ``world * n_rank / n_batch`` (1 for equal shards,
    0 for a stand-in sample); the trainer sets it before each step and scales the loss by it.
    """

    def __init__(self, method_params: list[nn.Parameter], world: int) -> None:
        self.method_params, self.world = method_params, world
        self.weight = 1.0

    def __call__(self) -> None:
        """After the backward pass: average the gradients of the method parameters that the student's
        optimizer steps (the loss was scaled by ``weight`` already)."""
        self.average(self.method_params, scale=1.0)

    def own(self, params: list[nn.Parameter]) -> None:
        """Before a method's own optimizer steps: average ``params``' gradients, weighted by ``weight``
        (they come from the method's unscaled per-shard losses)."""
        self.average(params, scale=self.weight)

    def average(self, params: list[nn.Parameter], *, scale: float) -> None:
        """``grad <- sum over ranks of scale_rank * grad_rank / world``, in place."""
        for p in params:
            if p.grad is not None:
                if scale != 1.0:
                    p.grad.mul_(scale)
                dist.all_reduce(p.grad)
                p.grad /= self.world


def distribute(students: list[Student]) -> None:
    """Route each student's forward through DDP, start every rank's method parameters from rank 0's, and
    average the method's gradients over the ranks (:class:`GradientAverage`)."""
    world = dist.get_world_size()
    for student in students:
        with torch.no_grad():
            for tensor in [*student.method.parameters(), *student.method.buffers()]:
                dist.broadcast(tensor, src=0)
        own = {id(p) for p in student.method.own_parameters()}
        shared = [p for p in student.method.parameters() if p.requires_grad and id(p) not in own]
        average = GradientAverage(shared, world)
        student.ddp = DDPHandles(net=DDPStudent(student.model), sync_grads=average)
        student.method.gradient_sync = average.own


if __name__ == "__main__":  # the command line moved: say where, instead of doing nothing
    raise SystemExit(
        "kdfair.train.ddp is the DDP library; train with: "
        "torchrun --nproc_per_node N -m kdfair.train.ddp_cli RUN_CONFIG.json --sweep-dir DIR"
    )
