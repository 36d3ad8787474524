"""``execute``: train one unit of a sweep (a teacher, an NDS, or a lockstep group of DS runs).

A lockstep group shares data, student model, seed, train recipe and teacher (``RunConfig.lockstep_key``);
methods, temperatures and alphas may differ. Each run still gets exactly the result it would get alone.

Per run (ARCHITECTURE "Per-run folder"): a run with DONE is skipped; a run with checkpoint.pt continues
after its last finished epoch; ``kdfair.io.crash_point("epoch:<run_id>:<n>")`` fires right after epoch ``n``
(1-based) is checkpointed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist

from kdfair.convergence import assess_convergence
from kdfair.data.base import Dataset
from kdfair.errors import ConfigError
from kdfair.train import datasets
from kdfair.train.augment import InputPipeline
from kdfair.train.config import RunConfig
from kdfair.train.ddp import distribute
from kdfair.train.device import Runtime, deterministic_threads, make_runtime, resolve_device
from kdfair.train.lockstep import EpochContext, train_epochs
from kdfair.train.rundir import RunFolder, write_representation, write_teacher_features
from kdfair.train.student import Student
from kdfair.train.teacher import Teacher, fill_cache, resolve_teacher
from kdfair.train.trainer import build_student, predict, prediction_arrays, run_meta
from kdfair.train.twins import write_run_counterfactual


def check_group(runs: list[RunConfig]) -> None:
    """A unit is one run, or DS runs with one lockstep key and distinct run ids."""
    if not runs:
        raise ConfigError("execute() needs at least one run")
    if len({r.run_id for r in runs}) != len(runs):
        raise ConfigError("execute(): run ids in one unit must be distinct")
    if len(runs) > 1 and len({r.lockstep_key() for r in runs}) != 1:
        ids = ", ".join(r.run_id for r in runs)
        raise ConfigError(
            f"runs {ids} cannot train in lockstep: they differ in data, model, seed, train or teacher"
        )


Progress = bool | Literal["lines"]  # True: a tqdm bar per epoch; "lines": a stdout line per epoch; False: off


def execute(
    runs: list[RunConfig], sweep_dir: Path, *, device: str | None = None, progress: Progress = True
) -> list[Path]:
    """Train ``runs`` (one unit) into ``sweep_dir/runs/<run_id>``; returns the run folders in input order.

    ``progress``: see :class:`kdfair.train.lockstep.EpochContext` (a bar, one line per epoch, or nothing).
    """
    return execute_sharded(runs, sweep_dir, device=device, progress=progress, shard=(0, 1))


def execute_sharded(
    runs: list[RunConfig], sweep_dir: Path, *, device: str | None, progress: Progress, shard: tuple[int, int]
) -> list[Path]:
    """:func:`execute` as rank ``shard[0]`` of ``shard[1]`` DDP processes (rank 0 writes the folders)."""
    check_group(runs)
    sweep_dir = Path(sweep_dir)
    folders = [RunFolder(sweep_dir, r.run_id, writer=shard[0] == 0) for r in runs]
    pending = [(r, f) for r, f in zip(runs, folders, strict=True) if not f.done]
    if pending:
        dataset = datasets.load_data(runs[0].data)
        runtime = make_runtime(runs[0].train, resolve_device(device), dataset.modality)
        with deterministic_threads(runs[0].train, runtime.device):
            _train_unit(pending, dataset, runtime, sweep_dir, progress, shard)
    return [f.path for f in folders]


def _train_unit(
    pending: list[tuple[RunConfig, RunFolder]],
    dataset: Dataset,
    runtime: Runtime,
    sweep_dir: Path,
    progress: Progress,
    shard: tuple[int, int],
) -> None:
    first = pending[0][0]
    if shard[0] == 0:
        write_representation(dataset, sweep_dir)
    mean, std = datasets.normalization(first, dataset)
    train_split = dataset.split("train")
    augmented = InputPipeline(
        train_split,
        modality=dataset.modality,
        augment=first.train.augment,
        mean=mean,
        std=std,
        device=runtime.device,
        channels_last=runtime.channels_last,
    )
    plain = augmented  # batch(positions) without augmentation parameters takes the centre: the plain image
    teacher = None
    if first.teacher is not None:
        teacher = resolve_teacher(first.teacher, sweep_dir, dataset, runtime)
    use_cache = _use_cache(first, teacher)
    shapes = None
    example = plain.batch(np.arange(min(2, len(plain))))
    if teacher is not None and teacher.model is not None:
        shapes = teacher.map_shapes(example, runtime)
    maps = None if shapes is None else tuple(shape[0] for shape in shapes)
    students = []
    for config, folder in pending:
        folder.start(config, str(runtime.device))
        students.append(
            build_student(
                config,
                dataset,
                folder,
                teacher,
                runtime,
                use_cache=use_cache,
                map_channels=maps,
                meta_inputs=plain,
                example=example,
            )
        )
    cached_maps: set[int] = set()
    if teacher is not None and shapes is not None and use_cache:
        cached_maps = _serve_maps_from_cache(students, teacher, shapes, len(plain))
    needs_cache = any(not s.live_teacher and s.method.needs_teacher for s in students)
    if teacher is not None and teacher.model is not None and needs_cache:
        fingerprint = json.dumps(
            [
                teacher.key,
                teacher.weights_sha256,
                first.data.model_dump(),
                first.train.normalize,
                runtime.precision,
            ]
        )
        _fill_cache_once(
            teacher,
            plain,
            runtime,
            sweep_dir / "cache",
            first.train.eval_batch_size,
            fingerprint,
            shard,
            cached_maps,
        )
    ctx = EpochContext(
        pipeline=augmented,
        labels=torch.from_numpy(train_split.labels).to(runtime.device),
        attributes=_attributes(train_split.attributes, runtime),
        teacher=teacher,
        runtime=runtime,
        augment_seed=first.seed,
        progress=progress if shard[0] == 0 else False,
        shard=shard,
        fuse_students=first.train.fuse_students and first.role == "ds",  # students only, not teachers/NDS
        prefetch=runtime.device.type == "cuda",  # the CPU builds the next batch while the GPU trains
    )
    if shard[1] > 1:
        distribute(students)
    for group in _by_plan(students):
        train_epochs(group, ctx)
    test = InputPipeline(
        dataset.split("test"),
        modality=dataset.modality,
        augment=False,
        mean=mean,
        std=std,
        device=runtime.device,
        channels_last=runtime.channels_last,
    )
    for (config, folder), student in zip(pending, students, strict=True):
        finish_run(config, folder, student, dataset, test, runtime, teacher)
    checkpoint = first.teacher is not None and first.teacher.kind == "checkpoint"
    if shard[0] == 0 and checkpoint and teacher is not None and teacher.model is not None:
        # no teacher run folder holds this teacher's features: the audit's kNN space (SPEC §6)
        _, features = predict(teacher.model, test, runtime, first.train.eval_batch_size)
        ids = dataset.split("test").sample_ids
        write_teacher_features(sweep_dir, first.seed, ids, features, teacher.weights_sha256)


def _fill_cache_once(
    teacher: Teacher,
    plain: InputPipeline,
    runtime: Runtime,
    cache_dir: Path,
    batch_size: int,
    fingerprint: str,
    shard: tuple[int, int],
    maps: set[int],
) -> None:
    """:func:`fill_cache` by rank 0; under DDP the other ranks then read the file it wrote (one teacher
    pass over the train split in all, not one per rank)."""
    rank, world = shard
    if rank == 0:
        fill_cache(teacher, plain, runtime, cache_dir, batch_size, fingerprint, maps)
    if world > 1:
        dist.barrier()
        if rank != 0:
            fill_cache(teacher, plain, runtime, cache_dir, batch_size, fingerprint, maps)


def _serve_maps_from_cache(
    students: list[Student], teacher: Teacher, shapes: tuple[tuple[int, ...], ...], n_train: int
) -> set[int]:
    """Stage maps to cache with the teacher's outputs, and the students that then read them from the cache
    instead of a live teacher forward per batch (AT, FitNet's map hints; PERF-NOTES §3). A method with a
    meta split keeps the live forwards of its meta batches (no map-reading method has one)."""
    readers = [s for s in students if s.live_teacher and s.method.needs_teacher_maps]
    wanted = {i for s in readers for i in s.method.teacher_maps_read(len(shapes))}
    cached = teacher.maps_in_cache(wanted, shapes, n_train)
    if cached:
        for student in readers:
            student.live_teacher = False
    return cached


def _use_cache(config: RunConfig, teacher: Teacher | None) -> bool:
    """Cached teacher outputs: 'on', or 'auto' without augmentation (PERF-NOTES §3); outputs files always."""
    if teacher is None:
        return False
    if teacher.model is None:
        return True
    mode = config.train.teacher_cache
    return mode == "on" or (mode == "auto" and not config.train.augment)


def _attributes(attributes: dict[str, np.ndarray], runtime: Runtime) -> dict[str, torch.Tensor]:
    return {
        name: torch.from_numpy(np.asarray(codes, dtype=np.int64)).to(runtime.device)
        for name, codes in attributes.items()
    }


def _by_plan(students: list[Student]) -> list[list[Student]]:
    """Students that share a batch plan train together; others (meta split, balanced sampler) apart."""
    groups: dict[tuple, list[Student]] = defaultdict(list)
    for student in students:
        groups[student.plan.key()].append(student)
    return list(groups.values())


def finish_run(
    config: RunConfig,
    folder: RunFolder,
    student: Student,
    dataset: Dataset,
    test: InputPipeline,
    runtime: Runtime,
    teacher: Teacher | None,
) -> None:
    """Predict the test split (and its counterfactual twins, where the data set has them) and write
    predictions.npz, counterfactual.npz, run.json and DONE (writer processes only)."""
    if not folder.writer:
        return
    logits, features = predict(student.model, test, runtime, config.train.eval_batch_size)
    write_run_counterfactual(folder.path, config, dataset, student.model, runtime, logits)
    accuracy = float((logits.argmax(axis=1) == dataset.split("test").labels).mean()) if len(logits) else 0.0
    meta = run_meta(config, dataset, runtime, teacher, accuracy)
    # kdfair.convergence's verdict on this run's training loss (the audit recomputes it from epochs.csv)
    history = student.history
    meta["settings"]["convergence"] = assess_convergence(
        [row["train_loss"] for row in history], [row["lr"] for row in history]
    ).as_dict()
    if config.train.fuse_students:  # the size of the fused model of its last epoch (0: trained unfused)
        meta["settings"]["fused_students"] = history[-1].get("fused_students", 0) if history else 0
    folder.finish(prediction_arrays(dataset, logits, features), meta)
