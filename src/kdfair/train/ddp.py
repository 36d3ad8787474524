"""Train ONE run across processes with DistributedDataParallel.

    python -m torch.distributed.run --nproc_per_node 2 -m kdfair.train.ddp RUN_CONFIG.json --sweep-dir DIR

gloo on the CPU, nccl on CUDA (one GPU per process, ``cuda:<LOCAL_RANK>``). Every rank builds the same
batches (order and augmentation depend only on ``(seed, epoch)``) and takes its shard ``batch[rank::world]``;
DDP averages the student's gradients, the method's own trainable parts are all-reduced by hand. BatchNorm
statistics stay per rank (no SyncBatchNorm). Rank 0 writes the run folder and the test predictions.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kdfair.models.base import KDModel, ModelOutput
from kdfair.train.config import parse_run_config
from kdfair.train.lockstep import Student


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


def distribute(students: list[Student]) -> None:
    """Route each student's forward through DDP and all-reduce (average) its method's gradients."""
    world = dist.get_world_size()
    for student in students:
        student.net = DDPStudent(student.model)
        params = [p for p in student.method.parameters() if p.requires_grad]

        def sync(params: list[nn.Parameter] = params) -> None:
            for p in params:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world

        student.sync_grads = sync


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdfair.train.ddp", description=__doc__.splitlines()[0])
    parser.add_argument("run_config", type=Path, help="a RunConfig as JSON (e.g. a run folder's config.json)")
    parser.add_argument(
        "--sweep-dir", type=Path, required=True, help="the sweep folder (runs/<run_id> below it)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = parse_run_config(json.loads(args.run_config.read_text()), str(args.run_config))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)  # before init: each nccl rank talks through its own GPU
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = f"cuda:{local_rank}" if cuda else "cpu"
    from kdfair.train.runner import execute_sharded

    try:
        execute_sharded(
            [config], args.sweep_dir, device=device, progress=not args.no_progress, shard=(rank, world)
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
