"""The command line that trains one run (or one lockstep unit of runs) across processes with DDP (the
library: :mod:`kdfair.train.ddp`).

    torchrun --nproc_per_node 2 -m kdfair.train.ddp_cli RUN_CONFIG.json [...] --sweep-dir DIR [--device cpu]

``--device auto`` (default): nccl and ``cuda:<LOCAL_RANK>`` (one GPU per process) when CUDA is available,
else gloo on the CPU. ``--device cpu`` forces gloo on the CPU even on a GPU machine; ``--device cuda``
requires CUDA. On CUDA, ``LOCAL_RANK`` must be below the number of GPUs this process sees (its
``CUDA_VISIBLE_DEVICES``): a clean error otherwise, before any process group starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from kdfair.errors import ConfigError
from kdfair.train.config import parse_run_config
from kdfair.train.runner import execute_sharded

PROG = "python -m kdfair.train.ddp_cli"


def choose_device(requested: str, local_rank: int) -> torch.device:
    """The device of the rank with ``LOCAL_RANK`` ``local_rank`` for ``--device`` ``requested``."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("--device cuda, but CUDA is not available here")
    count = torch.cuda.device_count()
    if not 0 <= local_rank < count:
        mask = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise ConfigError(
            f"LOCAL_RANK {local_rank} has no GPU: this process sees {count} GPU(s)"
            f"{'' if mask is None else f' (CUDA_VISIBLE_DEVICES={mask!r})'}; start at most {count} processes "
            "per node, or train on the CPU with --device cpu"
        )
    return torch.device("cuda", local_rank)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "run_config",
        type=Path,
        nargs="+",
        help="a RunConfig as JSON (e.g. a run folder's config.json); several: one lockstep unit",
    )
    parser.add_argument(
        "--sweep-dir", type=Path, required=True, help="the sweep folder (runs/<run_id> below it)"
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: one GPU per process (nccl) when CUDA is available, else the CPU (gloo)",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        configs = [parse_run_config(json.loads(path.read_text()), str(path)) for path in args.run_config]
        device = choose_device(args.device, int(os.environ.get("LOCAL_RANK", "0")))
    except (ConfigError, OSError, json.JSONDecodeError) as exc:  # before any process group starts
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before init: each nccl rank talks through its own GPU
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        execute_sharded(
            configs, args.sweep_dir, device=str(device), progress=not args.no_progress, shard=(rank, world)
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
