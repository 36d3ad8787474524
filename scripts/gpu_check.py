"""The measuring steps of scripts/gpu_check.sh (issue 14); each writes one JSON document.

    python scripts/gpu_check.py device OUT.json          # fails (exit 3) without a CUDA device
    python scripts/gpu_check.py throughput OUT.json      # ResNet-20, fp32 NCHW vs bf16 + channels_last
    python scripts/gpu_check.py lockstep OUT.json        # K = 10 KD students, lockstep vs fused
    python scripts/gpu_check.py ddp OUT.json             # one run over every GPU (skipped with one GPU)
    python scripts/gpu_check.py smoke|determinism|resume|bert|workers OUT.json   # scripts/gpu_smoke.py

Data: synthetic CIFAR-10-sized sets (random uint8 32x32x3 images, 10 classes, one binary attribute; speed does
not depend on the content), put in place of the data registry for the data set name ``synthetic``. Runs train
through kdfair's own trainer (``kdfair.train.runner.execute``) on ``cuda``, so the figures are those of the
code path users run. Each measurement trains 2 epochs of at most ``--steps`` steps and reports the second
(warm) epoch from epochs.csv. Teachers are randomly initialised.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdfair.data.base import Dataset, DataSplit
from kdfair.models.registry import build_model
from kdfair.runfolder import DONE, EPOCHS_CSV, PREDICTIONS_NPZ
from kdfair.train import datasets, runner
from kdfair.train.config import RunConfig

AIRBENCH = "airbench94: 94.01% CIFAR-10 accuracy in 3.29 s on one A100 (torch.compile; 3.83 s without)"
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
NO_CUDA = 3  # exit status of `device` without CUDA


def synthetic(n_train: int, n_test: int) -> Dataset:
    """Random uint8 32x32x3 images, 10 classes, one binary attribute ``group``."""
    rng = np.random.default_rng(0)

    def split(n: int, offset: int) -> DataSplit:
        return DataSplit(
            inputs=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            labels=rng.integers(0, 10, n).astype(np.int64),
            sample_ids=np.arange(offset, offset + n),
            attributes={"group": rng.integers(0, 2, n).astype(np.int64)},
        )

    classes = [f"c{i}" for i in range(10)]
    splits = {"train": split(n_train, 0), "test": split(n_test, 10**6)}
    return Dataset("synthetic", "image", 10, classes, splits, {"group": ["a", "b"]}, 32)


def install(dataset: Dataset) -> None:
    """Make the trainer load ``dataset`` for the data set name ``synthetic``."""
    real = datasets.load_data
    datasets.load_data = lambda config: dataset if config.name == "synthetic" else real(config)


def run(run_id: str, model: str, train: dict[str, Any], **fields: Any) -> RunConfig:
    """A run on the synthetic data: NDS with CE, or DS with the given fields."""
    raw = {
        "run_id": run_id,
        "role": "nds",
        "seed": 0,
        "data": {"name": "synthetic"},
        "model": {"name": model},
    }
    raw.update(fields, train={"epochs": 2, "eval_batch_size": 1024, **train})
    return RunConfig.model_validate(raw)


def warm_epoch(folder: Path) -> dict[str, float]:
    """The last epoch's row of a run's epochs.csv (numbers only)."""
    with open(folder / EPOCHS_CSV, newline="") as handle:
        row = list(csv.DictReader(handle))[-1]
    return {key: float(value) for key, value in row.items() if value not in ("", None)}


def cmd_device(out: Path, args: argparse.Namespace) -> int:
    """The CUDA devices; exit 3 with a message on stderr when there is none."""
    info: dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    if not info["cuda_available"]:
        out.write_text(json.dumps(info, indent=2))
        print(
            f"gpu_check: FAILED: no CUDA device (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda}); this check needs a GPU machine",
            file=sys.stderr,
        )
        return NO_CUDA
    info.update(
        torch_cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        count=torch.cuda.device_count(),
        devices=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        capability=list(torch.cuda.get_device_capability(0)),
        bf16_supported=torch.cuda.is_bf16_supported(),
        memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
    )
    out.write_text(json.dumps(info, indent=2))
    print(
        f"gpu_check: {info['count']} x {info['devices'][0]}, torch {info['torch']}, CUDA {info['torch_cuda']}"
    )
    return 0


def cmd_throughput(out: Path, args: argparse.Namespace) -> int:
    """ResNet-20 training img/s: fp32 NCHW and bf16 + channels_last at batch 128 (paper), bf16 at 512."""
    install(synthetic(CIFAR_TRAIN, CIFAR_TEST))
    settings = {
        "fp32_b128": {"precision": "fp32", "channels_last": False, "batch_size": 128},
        "bf16_cl_b128": {"precision": "bf16", "channels_last": True, "batch_size": 128},
        "bf16_cl_b512": {"precision": "bf16", "channels_last": True, "batch_size": 512},
    }
    results: dict[str, Any] = {"reference": AIRBENCH, "train_images": CIFAR_TRAIN, "steps": args.steps}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name, train in settings.items():
            config = run(f"nds_{name}", "resnet20", {**train, "max_steps_per_epoch": args.steps})
            (folder,) = runner.execute([config], Path(tmp), device="cuda", progress=False)
            row = warm_epoch(folder)
            epoch_s = CIFAR_TRAIN / row["images_per_s"]
            results[name] = {
                "images_per_s": round(row["images_per_s"]),
                "seconds_per_50k_epoch": round(epoch_s, 2),
                "seconds_per_100_epochs": round(100 * epoch_s, 1),
                "train_loss": row["train_loss"],
            }
            print(
                f"throughput {name}: {row['images_per_s']:.0f} img/s, {epoch_s:.2f} s per 50k epoch",
                flush=True,
            )
    fp32, bf16 = results["fp32_b128"]["images_per_s"], results["bf16_cl_b128"]["images_per_s"]
    results["bf16_cl_over_fp32"] = round(bf16 / fp32, 2)
    print(f"throughput: bf16 + channels_last / fp32 = {bf16 / fp32:.2f}x; reference: {AIRBENCH}")
    out.write_text(json.dumps(results, indent=2))
    return 0


def _lockstep_group(student: str, teacher_file: Path, fuse: bool, steps: int) -> list[RunConfig]:
    train = {"batch_size": 128, "augment": False, "max_steps_per_epoch": steps, "fuse_students": fuse}
    teacher = {"kind": "checkpoint", "path": str(teacher_file), "model": {"name": "resnet56"}}
    return [
        run(
            f"ds_kd_T{t}_a0.8_s0",
            student,
            train,
            role="ds",
            method="kd",
            temperature=t,
            alpha=0.8,
            teacher=teacher,
        )
        for t in range(1, 11)
    ]


def cmd_lockstep(out: Path, args: argparse.Namespace) -> int:
    """10 KD students (T = 1..10) of a ResNet-56 teacher (cached), lockstep vs fused; precision auto."""
    install(synthetic(args.steps * 128, 1024))
    results: dict[str, Any] = {"students": 10, "batch": 128, "steps_per_epoch": args.steps}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        torch.manual_seed(0)
        teacher_file = Path(tmp) / "resnet56.pt"
        torch.save(build_model("resnet56", 10).state_dict(), teacher_file)
        for student in ("lenet5", "resnet20"):
            loops, logits = {}, {}
            for fuse in (False, True):
                sweep = Path(tmp) / f"{student}_{'fused' if fuse else 'lockstep'}"
                folders = runner.execute(
                    _lockstep_group(student, teacher_file, fuse, args.steps),
                    sweep,
                    device="cuda",
                    progress=False,
                )
                loops[fuse] = warm_epoch(folders[0])["seconds"]
                logits[fuse] = [np.load(f / PREDICTIONS_NPZ)["logits"] for f in folders]
            difference = max(
                float(np.abs(a - b).max()) for a, b in zip(logits[False], logits[True], strict=True)
            )
            results[student] = {
                "lockstep_epoch_s": round(loops[False], 3),
                "fused_epoch_s": round(loops[True], 3),
                "fused_speedup": round(loops[False] / loops[True], 2),
                # informational: round-off of fused vs unfused, amplified by training (kdfair.train.fused)
                "max_test_logit_difference": difference,
            }
            print(f"lockstep {student}: fused {loops[False] / loops[True]:.2f}x faster ({results[student]})")
    out.write_text(json.dumps(results, indent=2))
    return 0


def cmd_ddp(out: Path, args: argparse.Namespace) -> int:
    """One ResNet-20 run over every GPU with torchrun (nccl); ranks must end with equal parameters."""
    count = torch.cuda.device_count()
    if count < 2:
        out.write_text(json.dumps({"skipped": f"{count} GPU: DDP needs at least 2"}))
        print(f"ddp: skipped ({count} GPU)")
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        spec = Path(tmp) / "run.json"
        spec.write_text(
            run(
                "nds_ddp", "resnet20", {"batch_size": 128 * count, "max_steps_per_epoch": 50}
            ).model_dump_json()
        )
        command = [
            *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(count)),
            *(__file__, "ddp-worker", str(spec), "--sweep-dir", tmp, "--no-progress"),
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        seconds = time.perf_counter() - start
        states = (
            [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=True) for r in range(count)]
            if proc.returncode == 0
            else []
        )
        equal = bool(states) and all(torch.equal(s[k], states[0][k]) for s in states[1:] for k in states[0])
        folder = Path(tmp) / "runs" / "nds_ddp"
        result = {
            "gpus": count,
            "returncode": proc.returncode,
            "seconds": round(seconds, 1),
            "ranks_equal": equal,
        }
        if (folder / DONE).exists():
            result["images_per_s"] = round(warm_epoch(folder)["images_per_s"])
        if proc.returncode != 0:
            result["stderr_tail"] = proc.stderr[-3000:]
    out.write_text(json.dumps(result, indent=2))
    print(f"ddp: {result}")
    return 0 if proc.returncode == 0 and equal and "images_per_s" in result else 1


def ddp_worker(argv: list[str]) -> int:
    """A torchrun rank: the synthetic data, kdfair.train.ddp_cli.main, then this rank's parameters saved."""
    import torch.distributed as dist

    from kdfair.train import ddp_cli

    install(synthetic(CIFAR_TRAIN // 5, 1024))
    sweep_dir = Path(argv[argv.index("--sweep-dir") + 1])
    real = runner.finish_run

    def finish_and_save(config, folder, student, *rest):  # noqa: ANN001, ANN002, ANN202
        torch.save(student.model.state_dict(), sweep_dir / f"rank{dist.get_rank()}.pt")
        return real(config, folder, student, *rest)

    runner.finish_run = finish_and_save
    return ddp_cli.main(argv)


COMMANDS = {"device": cmd_device, "throughput": cmd_throughput, "lockstep": cmd_lockstep, "ddp": cmd_ddp}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "ddp-worker":
        return ddp_worker(sys.argv[2:])
    from gpu_smoke import SMOKE_COMMANDS  # issue 20's GPU smoke list (this script's folder is on sys.path)

    commands = {**COMMANDS, **SMOKE_COMMANDS}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(commands))
    parser.add_argument("out", type=Path, help="the JSON file to write")
    parser.add_argument(
        "--steps", type=int, default=150, help="steps per epoch (throughput: 150 x 128 images)"
    )
    parser.add_argument("--timeout", type=int, default=120, help="ddp, workers: seconds for the subprocess")
    args = parser.parse_args()
    if args.command != "device" and not torch.cuda.is_available():
        print(f"gpu_check {args.command}: FAILED: no CUDA device", file=sys.stderr)
        return NO_CUDA
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (train.deterministic)
    return commands[args.command](args.out, args)


if __name__ == "__main__":
    raise SystemExit(main())
