"""Cached teacher stage maps vs a live teacher forward per step, for AT and FitNet students (PERF-NOTES §3).

    nice python benchmarks/bench_map_cache.py [--train 4096] [--epochs 2] [--rounds 3] [--threads 1]

One lockstep group of an AT and a FitNet student (LeNet-5, T = 10, alpha 0.5, batch 128, augmentation off)
distilling from a ResNet-20 checkpoint, on synthetic 32x32 images (``bench_lockstep.synthetic``), measured
round-robin ``--rounds`` times in one process; medians are printed:

- ``maps_live``: the stage maps come from a live teacher forward every step (what the trainer did before it
  cached maps, and still does when they exceed ``kdfair.train.teacher.MAP_CACHE_BYTES``, set to 0 here);
- ``maps_cached``: the maps the two methods read (ResNet-20's last two) are computed once with the logits
  and features (the cache fill) and looked up every step.

Reported: the training loop's seconds per epoch (epochs.csv, excludes the fill) and whole ``execute`` calls
(the one-time fill and the test predictions included), and their ratios live / cached. The teacher is
randomly initialised (speed does not depend on the weights).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from bench_lockstep import synthetic  # noqa: E402  (re-executes with PERF-NOTES §1's allocator setting)

from kdfair.models.registry import build_model  # noqa: E402
from kdfair.runfolder import EPOCHS_CSV  # noqa: E402
from kdfair.train import datasets, runner, teacher  # noqa: E402
from kdfair.train.config import RunConfig  # noqa: E402

MODES = ("maps_live", "maps_cached")
METHODS = ("at", "fitnet")


def group(teacher_file: Path, epochs: int, threads: int, tag: str) -> list[RunConfig]:
    """The AT and FitNet runs of one measurement (run ids tagged so every measurement starts fresh)."""
    train = {"epochs": epochs, "batch_size": 128, "augment": False, "threads": threads, "optimizer": "adam"}
    return [
        RunConfig.model_validate(
            {
                "run_id": f"ds_{method}_T10_a0.5_s0_{tag}",
                "role": "ds",
                "seed": 0,
                "data": {"name": "synthetic"},
                "model": {"name": "lenet5"},
                "method": method,
                "temperature": 10,
                "alpha": 0.5,
                "teacher": {"kind": "checkpoint", "path": str(teacher_file), "model": {"name": "resnet20"}},
                "train": {**train, "lr": 0.001},
            }
        )
        for method in METHODS
    ]


def loop_seconds(folder: Path) -> float:
    """Mean training-loop seconds per epoch of a run (epochs.csv)."""
    with open(folder / EPOCHS_CSV) as handle:
        return statistics.mean(float(row["seconds"]) for row in csv.DictReader(handle))


def measure(
    mode: str, teacher_file: Path, work: Path, tag: str, args: argparse.Namespace
) -> dict[str, float]:
    limit = teacher.MAP_CACHE_BYTES
    teacher.MAP_CACHE_BYTES = 0 if mode == "maps_live" else limit
    try:
        runs = group(teacher_file, args.epochs, args.threads, f"{tag}_{mode}")
        sweep = work / f"{tag}_{mode}"
        start = time.perf_counter()
        runner.execute(runs, sweep, device="cpu", progress=False)
        whole = time.perf_counter() - start
    finally:
        teacher.MAP_CACHE_BYTES = limit
    cached = [k for k in _cache_keys(sweep) if k.startswith("map")]
    expected = [] if mode == "maps_live" else ["map1", "map2"]
    if sorted(cached) != expected:
        raise SystemExit(f"{mode}: cached maps {cached}, expected {expected}")
    return {mode: whole, f"{mode}_epoch": loop_seconds(sweep / "runs" / runs[0].run_id)}


def _cache_keys(sweep: Path) -> list[str]:
    import numpy as np

    keys: list[str] = []
    for path in (sweep / "cache").glob("teacher_*.npz"):  # none when no student reads a cached output
        with np.load(path) as npz:
            keys += npz.files
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=4096, help="train images")
    parser.add_argument("--test", type=int, default=256, help="test images (predicted once per run)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin repetitions")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    data = synthetic(args.train, args.test)
    datasets.load_data = lambda config: data
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_map_cache_") as tmp:
        work = Path(tmp)
        torch.manual_seed(0)
        teacher_file = work / "resnet20.pt"
        torch.save(build_model("resnet20", 10).state_dict(), teacher_file)
        for round_ in range(args.rounds):
            for mode in MODES:
                for key, value in measure(mode, teacher_file, work, f"r{round_}", args).items():
                    times.setdefault(key, []).append(value)
            print(f"round {round_ + 1} done, load {os.getloadavg()}", flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"torch {torch.__version__}, threads {args.threads}, {args.train} train images, "
        f"{args.epochs} epochs, AT + FitNet (LeNet-5) from ResNet-20, batch 128; "
        f"load average before/after: {load_before} / {os.getloadavg()}"
    )
    for key, value in median.items():
        print(f"  {key:20s} {value:8.2f} s   (all: {', '.join(f'{v:.2f}' for v in times[key])})")
    loop = median["maps_live_epoch"] / median["maps_cached_epoch"]
    whole = median["maps_live"] / median["maps_cached"]
    print(f"live / cached: training loop per epoch {loop:.2f}x, whole execute {whole:.2f}x")


if __name__ == "__main__":
    main()
