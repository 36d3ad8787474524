"""Issue 20's GPU smoke list: the paths only a GPU can check (steps of scripts/gpu_check.sh).

    python scripts/gpu_check.py smoke OUT.json        # every method, one short epoch, cache on and off
    python scripts/gpu_check.py determinism OUT.json  # "strict" determinism; the same run twice, bit for bit
    python scripts/gpu_check.py resume OUT.json       # crash and resume on CUDA; across CPU <-> GPU
    python scripts/gpu_check.py bert OUT.json         # a tiny BERT student's step under KD
    python scripts/gpu_check.py workers OUT.json      # local workers under a parent CUDA_VISIBLE_DEVICES

Why each needs a GPU (the CPU tests check what can be checked there; tests/train/test_host_syncs.py and
friends):

- smoke: ``torch.cuda.set_sync_debug_mode("error")`` around every batch build and training step: a host
  sync there raises (the CPU test counts kdfair's own host reads; only CUDA sees those inside torch's ops,
  such as ``bincount`` sizing its output), with augmentation on (the crops run on the GPU), the teacher's
  outputs cached and live;
- determinism: which ops lack a deterministic CUDA kernel (``deterministic: strict`` raises on them), and
  whether two runs agree bit for bit on one GPU (docs/sweeps.md "Determinism");
- resume: CUDA RNG states in checkpoints; a CPU checkpoint resumed on a GPU and the reverse;
- bert: transformers' kernels under bf16 autocast;
- workers: ``CUDA_VISIBLE_DEVICES`` entries (UUIDs) handed to spawned workers (tests/sweep/test_worker_gpus.py
  checks the mapping with a pretend mask).
Each returns 0 when every check passed, else 1; results go to OUT.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdfair.data.base import Dataset, DataSplit
from kdfair.models.registry import build_model
from kdfair.runfolder import DONE, EPOCHS_CSV, PREDICTIONS_NPZ
from kdfair.train import datasets, lockstep, runner
from kdfair.train.config import RunConfig

METHODS: dict[str, dict[str, Any]] = {  # every DS method, with the options that make it do all its work
    "ce": {},
    "kd": {},
    "fkd": {},
    "fitnet": {},
    "at": {},
    "ad": {"kd_weight": 0.5, "adversary_steps": 2},
    "mfd": {"kd_weight": 0.5},
    "bird": {"warmup_epochs": 0},
    "bird_no_meta": {"warmup_epochs": 0},
}


def images(n_train: int, n_test: int) -> Dataset:
    """Random uint8 32x32x3 images, 10 classes, one binary attribute ``group`` (name ``synthetic``)."""
    rng = np.random.default_rng(0)

    def split(n: int, offset: int) -> DataSplit:
        return DataSplit(
            inputs=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            labels=rng.integers(0, 10, n).astype(np.int64),
            sample_ids=np.arange(offset, offset + n),
            attributes={"group": rng.integers(0, 2, n).astype(np.int64)},
        )

    splits = {"train": split(n_train, 0), "test": split(n_test, 10**6)}
    return Dataset("synthetic", "image", 10, [f"c{i}" for i in range(10)], splits, {"group": ["a", "b"]}, 32)


def tokens(n_train: int, n_test: int, vocab: int = 50, length: int = 16) -> Dataset:
    """Random token ids (2 classes, one binary attribute), for the text models."""
    rng = np.random.default_rng(1)

    def split(n: int, offset: int) -> DataSplit:
        return DataSplit(
            inputs=rng.integers(1, vocab, (n, length)).astype(np.int64),
            labels=rng.integers(0, 2, n).astype(np.int64),
            sample_ids=np.arange(offset, offset + n),
            attributes={"group": rng.integers(0, 2, n).astype(np.int64)},
        )

    splits = {"train": split(n_train, 0), "test": split(n_test, 10**6)}
    return Dataset("synthetic", "text", 2, ["no", "yes"], splits, {"group": ["a", "b"]}, vocab_size=vocab)


def install(dataset: Dataset) -> None:
    """Make the trainer load ``dataset`` for the data set name ``synthetic``."""
    datasets.load_data = lambda config: dataset  # this process trains nothing else


def ds_run(
    run_id: str, method: str, train: dict[str, Any], teacher: dict[str, Any], **fields: Any
) -> RunConfig:
    raw = {
        "run_id": run_id,
        "role": "ds",
        "seed": 0,
        "data": {"name": "synthetic"},
        "model": {"name": "resnet20"},
        "method": method,
        "method_options": METHODS.get(method, {}),
        "temperature": 4.0,
        "alpha": 0.8,
        "teacher": teacher,
        "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 512, **train},
    }
    raw.update(fields)
    return RunConfig.model_validate(raw)


def teacher_checkpoint(folder: Path, model: str = "resnet20", classes: int = 10, **options: Any) -> dict:
    """A randomly initialised teacher saved as a checkpoint file; the TeacherSource of it."""
    torch.manual_seed(0)
    path = folder / f"teacher_{model}.pt"
    torch.save(build_model(model, classes, **options).state_dict(), path)
    return {"kind": "checkpoint", "path": str(path), "model": {"name": model, "options": options}}


@contextlib.contextmanager
def syncs_raise(device: str) -> Iterator[None]:
    """Within every epoch's batch loop (batch builds, on the prefetch thread too, and training steps) a host
    sync raises (``torch.cuda.set_sync_debug_mode("error")``); epoch ends (logs, checkpoints) may sync."""
    if device != "cuda":
        yield
        return
    real = lockstep._batches

    def guarded(*args: Any, **kwargs: Any) -> Iterator[Any]:
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield from real(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    lockstep._batches = guarded
    try:
        yield
    finally:
        lockstep._batches = real


def run_summary(folder: Path) -> dict[str, Any]:
    """DONE, finite test logits, and the epoch's train loss of one run folder."""
    done = (folder / DONE).is_file()
    summary: dict[str, Any] = {"done": done}
    if done:
        with np.load(folder / PREDICTIONS_NPZ) as npz:
            summary["finite_logits"] = bool(np.isfinite(npz["logits"]).all())
        summary["train_loss"] = (folder / EPOCHS_CSV).read_text().splitlines()[-1].split(",")[2]
    return summary


def _ok(summaries: dict[str, dict[str, Any]]) -> bool:
    return all(s.get("done") and s.get("finite_logits") for s in summaries.values())


def _attempt(results: dict[str, Any], name: str, action: Any) -> None:
    """``results[name] = action()``, or the error's first line (the step then fails)."""
    try:
        results[name] = action()
    except Exception as exc:  # noqa: BLE001 - reported in the JSON; the other checks still run
        results[name] = {"error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"}


def cmd_smoke(out: Path, args: argparse.Namespace, device: str = "cuda") -> int:
    """Every method one epoch of ``--steps`` steps, augmentation on, teacher outputs cached and live."""
    install(images(64 * args.steps, 256))
    results: dict[str, Any] = {"steps": args.steps, "methods": sorted(METHODS)}
    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        teacher = teacher_checkpoint(Path(tmp))
        for cache in ("on", "off"):
            train = {"augment": True, "teacher_cache": cache, "max_steps_per_epoch": args.steps}
            runs = [ds_run(f"ds_{m}_s0", m, train, teacher) for m in METHODS]

            def unit(runs: list[RunConfig] = runs, cache: str = cache) -> dict[str, Any]:
                with syncs_raise(device):
                    folders = runner.execute(
                        runs, Path(tmp) / f"cache_{cache}", device=device, progress=False
                    )
                return {f.name: run_summary(f) for f in folders}

            _attempt(results, f"teacher_cache_{cache}", unit)
    ok = all("error" not in results[k] and _ok(results[k]) for k in ("teacher_cache_on", "teacher_cache_off"))
    results["ok"] = ok
    out.write_text(json.dumps(results, indent=2))
    print(f"smoke: {'all methods trained without a host sync' if ok else 'FAILED'} ({out})")
    return 0 if ok else 1


def _one(run: RunConfig, sweep: Path, device: str) -> Path:
    (folder,) = runner.execute([run], sweep, device=device, progress=False)
    return folder


def _predictions(folders: list[Path]) -> list[bytes]:
    return [(f / PREDICTIONS_NPZ).read_bytes() for f in folders]


def cmd_determinism(out: Path, args: argparse.Namespace, device: str = "cuda") -> int:
    """Every method under ``deterministic: strict`` (an op without a deterministic kernel raises), and
    KD + BIRD + MFD trained twice with the default setting: the same bits?"""
    install(images(64 * args.steps, 256))
    results: dict[str, Any] = {"cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        teacher = teacher_checkpoint(Path(tmp))
        train = {"augment": True, "max_steps_per_epoch": args.steps}
        strict = {**train, "deterministic": "strict"}
        for method in METHODS:  # one unit per method: a raise names its method
            run = ds_run(f"ds_{method}_s0", method, strict, teacher)
            _attempt(
                results,
                f"strict_{method}",
                lambda run=run: run_summary(_one(run, Path(tmp) / "strict", device)),
            )
        twice = [ds_run(f"ds_{m}_s0", m, {**train, "epochs": 2}, teacher) for m in ("kd", "bird", "mfd")]
        first = runner.execute(twice, Path(tmp) / "first", device=device, progress=False)
        second = runner.execute(twice, Path(tmp) / "second", device=device, progress=False)
        alone = [_one(run, Path(tmp) / f"alone_{run.run_id}", device) for run in twice]
        reference, ids = _predictions(first), [run.run_id for run in twice]
        for name, other in (("repeat_bit_identical", second), ("lockstep_equals_alone", alone)):
            pairs = zip(ids, reference, _predictions(other), strict=True)
            results[name] = {run_id: a == b for run_id, a, b in pairs}
    strict_ok = all("error" not in results[f"strict_{m}"] for m in METHODS)
    same = [*results["repeat_bit_identical"].values(), *results["lockstep_equals_alone"].values()]
    ok = strict_ok and all(same)
    results["ok"] = ok
    out.write_text(json.dumps(results, indent=2))
    print(
        f"determinism: strict {'ok' if strict_ok else 'FAILED'}, repeat {results['repeat_bit_identical']}, "
        f"lockstep == alone {results['lockstep_equals_alone']}"
    )
    return 0 if ok else 1


class _Interrupted(Exception):
    pass


def _train_until(runs: list[RunConfig], sweep: Path, device: str, crash_at: str) -> None:
    """Train ``runs`` on ``device`` and stop (as a crash would) right after the checkpoint ``crash_at``."""
    real = lockstep.crash_point

    def crash(point: str) -> None:
        if point == crash_at:
            raise _Interrupted

    lockstep.crash_point = crash
    try:
        runner.execute(runs, sweep, device=device, progress=False)
    except _Interrupted:
        pass
    finally:
        lockstep.crash_point = real


def cmd_resume(out: Path, args: argparse.Namespace, device: str = "cuda") -> int:
    """KD + BIRD (2 students, own RNG streams) for 3 epochs: interrupted after epoch 2 and resumed on the
    GPU (the same bits as uninterrupted?), then from a CPU checkpoint on the GPU and a GPU one on the CPU."""
    install(images(64 * args.steps, 256))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        teacher = teacher_checkpoint(Path(tmp))
        train = {"augment": True, "epochs": 3, "max_steps_per_epoch": args.steps}
        runs = [ds_run(f"ds_{m}_s0", m, train, teacher) for m in ("kd", "bird")]
        crash_at = "epoch:ds_bird_s0:2"
        reference = _predictions(runner.execute(runs, Path(tmp) / "reference", device=device, progress=False))
        for name, first, then in (
            ("gpu_gpu", device, device),
            ("cpu_gpu", "cpu", device),
            ("gpu_cpu", device, "cpu"),
        ):

            def resume(
                sweep: Path = Path(tmp) / name, first: str = first, then: str = then
            ) -> dict[str, Any]:
                _train_until(runs, sweep, first, crash_at)
                folders = runner.execute(runs, sweep, device=then, progress=False)
                summary = {f.name: run_summary(f) for f in folders}
                summary["bit_identical_to_uninterrupted"] = _predictions(folders) == reference
                return summary

            _attempt(results, name, resume)
    ok = all("error" not in results[k] for k in ("gpu_gpu", "cpu_gpu", "gpu_cpu"))
    ok = ok and bool(results["gpu_gpu"].get("bit_identical_to_uninterrupted"))  # across devices: not expected
    results["ok"] = ok
    out.write_text(json.dumps(results, indent=2))
    print(f"resume: {'ok' if ok else 'FAILED'} ({out})")
    return 0 if ok else 1


def cmd_bert(out: Path, args: argparse.Namespace, device: str = "cuda") -> int:
    """A tiny BERT student trained by KD from a tiny BERT teacher for a few steps (bf16 autocast)."""
    results: dict[str, Any] = {}
    try:
        import transformers  # noqa: F401
    except ImportError:
        out.write_text(json.dumps({"skipped": "transformers is not installed"}))
        print("bert: skipped (transformers is not installed)")
        return 0
    tiny = {"num_layers": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64, "max_length": 16}
    install(tokens(32 * args.steps, 128))
    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        teacher = teacher_checkpoint(Path(tmp), "bert_base", 2, vocab_size=50, **tiny)
        run = ds_run("ds_kd_s0", "kd", {"batch_size": 32, "max_steps_per_epoch": args.steps}, teacher,
                     model={"name": "bert_base", "options": tiny})  # fmt: skip
        _attempt(results, "kd", lambda: run_summary(_one(run, Path(tmp), device)))
    ok = "error" not in results["kd"] and _ok({"kd": results["kd"]})
    results["ok"] = ok
    out.write_text(json.dumps(results, indent=2))
    print(f"bert: {'ok' if ok else 'FAILED'} ({results['kd']})")
    return 0 if ok else 1


def cmd_workers(out: Path, args: argparse.Namespace, device: str = "cuda") -> int:
    """Two local workers started under a parent ``CUDA_VISIBLE_DEVICES`` of GPU UUIDs (the last GPU's first):
    each must see its entry, and train there."""
    uuids = [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]
    mask = ",".join(f"GPU-{u}" if not u.startswith(("GPU-", "MIG-")) else u for u in reversed(uuids))
    command = [sys.executable, __file__, "workers-inner"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": mask}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    try:
        seen = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        seen = {"stderr_tail": proc.stderr[-2000:]}
    expected = [mask.split(",")[i % len(uuids)] for i in range(2)]
    ok = proc.returncode == 0 and [w.get("mask") for w in seen.get("workers", [])] == expected
    result = {"parent_mask": mask, "expected": expected, **seen, "ok": ok}
    out.write_text(json.dumps(result, indent=2))
    print(f"workers: {'ok' if ok else 'FAILED'} ({result})")
    return 0 if ok else 1


def workers_inner() -> int:
    """In a process started with the parent mask: 2 local workers, each reports its mask and GPU and trains
    a tiny run there."""
    from kdfair.sweep.executors import _LocalBackend

    backend = _LocalBackend(2, "cuda")
    try:
        futures = [backend.pool.submit(_worker_report, i) for i in range(2)]
        reports = sorted((f.result(timeout=240) for f in futures), key=lambda r: r["index"])
    finally:
        backend.close()
    print(json.dumps({"workers": reports}))
    return 0


def _worker_report(index: int) -> dict[str, Any]:
    import time

    time.sleep(2.0)  # both workers busy at once: each takes one report
    install(images(256, 64))
    run = RunConfig.model_validate({"run_id": f"nds_w{index}", "role": "nds", "seed": 0,
                                    "data": {"name": "synthetic"}, "model": {"name": "resnet20"},
                                    "train": {"epochs": 1, "max_steps_per_epoch": 2}})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        (folder,) = runner.execute([run], Path(tmp), device="cuda", progress=False)
        done = (folder / DONE).is_file()
    return {
        "index": index,
        "mask": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpu": torch.cuda.get_device_name(0),
        "uuid": str(torch.cuda.get_device_properties(0).uuid),
        "trained": done,
    }


SMOKE_COMMANDS = {
    "smoke": cmd_smoke,
    "determinism": cmd_determinism,
    "resume": cmd_resume,
    "bert": cmd_bert,
    "workers": cmd_workers,
}

if __name__ == "__main__" and sys.argv[1:2] == ["workers-inner"]:
    raise SystemExit(workers_inner())
