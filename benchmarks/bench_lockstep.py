"""Lockstep students vs one-by-one training, on synthetic 32x32 images (PERF-NOTES §3-4).

    nice python benchmarks/bench_lockstep.py [--train 2048] [--rounds 2]

Measures, for K = 10 DS runs that differ only in temperature (1 epoch, augmentation on so the teacher is
live): one ``execute`` of the lockstep group against 10 ``execute`` calls of one run each (each with its own
teacher pass), for ResNet-20 -> LeNet-5 (target >= 4x) and ResNet-56 -> ResNet-20 (target >= 1.7x). Then,
with augmentation off (cached teacher outputs), the lockstep per-student epoch time against a bare KD step
loop on ready tensors (target <= 1.15x). Teachers are randomly initialised (speed does not depend on the
weights). Configurations are measured round-robin; medians are printed. Sets PERF-NOTES' GLIBC_TUNABLES
allocator setting (re-executing itself) unless tcmalloc is preloaded.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TUNABLES = (
    "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184"
    ":glibc.malloc.top_pad=1073741824"
)
TEMPERATURES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
PAIRS = [("resnet20", "lenet5", 4.0), ("resnet56", "resnet20", 1.7)]  # teacher, student, target speed-up

if "tcmalloc" not in os.environ.get("LD_PRELOAD", "") and os.environ.get("GLIBC_TUNABLES") != TUNABLES:
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "GLIBC_TUNABLES": TUNABLES})

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kdfair.data.base import Dataset, DataSplit  # noqa: E402
from kdfair.losses.kd import hinton_kd_loss  # noqa: E402
from kdfair.models.registry import build_model  # noqa: E402
from kdfair.train import runner  # noqa: E402
from kdfair.train.config import RunConfig  # noqa: E402


def synthetic(n_train: int, n_test: int) -> Dataset:
    rng = np.random.default_rng(0)

    def split(n: int, offset: int) -> DataSplit:
        return DataSplit(
            inputs=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            labels=rng.integers(0, 10, n).astype(np.int64),
            sample_ids=np.arange(offset, offset + n),
            attributes={"group": rng.integers(0, 2, n).astype(np.int64)},
        )

    return Dataset(
        "synthetic",
        "image",
        10,
        [f"c{i}" for i in range(10)],
        {"train": split(n_train, 0), "test": split(n_test, 10**6)},
        {"group": ["a", "b"]},
        32,
    )


def runs(teacher: str, teacher_file: Path, student: str, augment: bool, tag: str) -> list[RunConfig]:
    return [
        RunConfig.model_validate(
            {
                "run_id": f"ds_kd_T{t}_a0.8_s0_{tag}",
                "role": "ds",
                "seed": 0,
                "data": {"name": "synthetic"},
                "model": {"name": student},
                "method": "kd",
                "temperature": t,
                "alpha": 0.8,
                "teacher": {"kind": "checkpoint", "path": str(teacher_file), "model": {"name": teacher}},
                "train": {"epochs": 1, "batch_size": 128, "augment": augment, "threads": 2},
            }
        )
        for t in TEMPERATURES
    ]


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def epoch_seconds(folder: Path) -> float:
    with open(folder / "epochs.csv") as handle:
        return float(next(csv.DictReader(handle))["seconds"])


def bare_kd_loop(student_name: str, data: Dataset, steps: int) -> float:
    """A bare KD training loop on ready normalised tensors and precomputed teacher logits (seconds)."""
    torch.manual_seed(0)
    model = build_model(student_name, 10, image_size=32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x_all = (
        torch.from_numpy(data.split("train").inputs).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    )
    y_all = torch.from_numpy(data.split("train").labels)
    teacher_logits = torch.randn(len(y_all), 10)
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        sl = slice(step * 128, (step + 1) * 128)
        loss = hinton_kd_loss(model(x_all[sl]), teacher_logits[sl], y_all[sl], temperature=4.0, alpha=0.8)[
            "loss"
        ]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2048, help="synthetic train images (1 epoch)")
    parser.add_argument("--rounds", type=int, default=2, help="round-robin repetitions")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = synthetic(args.train, 256)
    print(f"{args.train} synthetic train images, rounds {args.rounds}")
    runner.load_data = lambda config: data
    with tempfile.TemporaryDirectory(prefix="bench_lockstep_") as tmp:
        times = measure(data, Path(tmp), args.rounds)
    report(times)


def measure(data: Dataset, work: Path, rounds: int) -> dict[str, list[float]]:
    """Round-robin timings (seconds) of every configuration, ``rounds`` times."""
    files = {}
    for teacher, _, _ in PAIRS:
        torch.manual_seed(0)
        files[teacher] = work / f"{teacher}.pt"
        torch.save(build_model(teacher, 10).state_dict(), files[teacher])
    times: dict[str, list[float]] = {}
    counter = 0
    for _ in range(rounds):
        for teacher, student, _ in PAIRS:
            for mode in ("lockstep", "one_by_one", "lockstep_cached"):
                counter += 1
                group = runs(teacher, files[teacher], student, mode != "lockstep_cached", f"r{counter}")
                sweep = work / f"sweep{counter}"
                if mode == "one_by_one":
                    seconds = timed(
                        lambda g=group, s=sweep: [
                            runner.execute([r], s, device="cpu", progress=False) for r in g
                        ]
                    )
                else:
                    seconds = timed(
                        lambda g=group, s=sweep: runner.execute(g, s, device="cpu", progress=False)
                    )
                times.setdefault(f"{teacher}->{student} {mode}", []).append(seconds)
                if mode == "lockstep_cached":
                    folder = sweep / "runs" / group[0].run_id
                    per_student = epoch_seconds(folder) / len(group)
                    times.setdefault(f"{teacher}->{student} per_student_epoch", []).append(per_student)
                    steps = len(data.split("train")) // 128
                    times.setdefault(f"{teacher}->{student} bare_epoch", []).append(
                        bare_kd_loop(student, data, steps)
                    )
    return times


def report(times: dict[str, list[float]]) -> None:
    """Print medians and the three ratios with their targets."""
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, K = {len(TEMPERATURES)}, 1 epoch")
    for key, value in median.items():
        print(f"  {key:40s} {value:8.2f} s   (all: {', '.join(f'{v:.2f}' for v in times[key])})")
    for teacher, student, target in PAIRS:
        name = f"{teacher}->{student}"
        speedup = median[f"{name} one_by_one"] / median[f"{name} lockstep"]
        cache = median[f"{name} lockstep"] / median[f"{name} lockstep_cached"]
        overhead = median[f"{name} per_student_epoch"] / median[f"{name} bare_epoch"]
        print(
            f"{name}: lockstep speed-up {speedup:.2f}x (target >= {target}x); cached teacher "
            f"{cache:.2f}x faster than live; per-student cost / bare step {overhead:.2f}x (target <= 1.15x)"
        )


if __name__ == "__main__":
    main()
