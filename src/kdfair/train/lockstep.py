"""Lockstep students: K runs trained together, sharing each batch and one teacher forward (PERF-NOTES §4).

A plain loop over the students, no vectorisation. Each student keeps its own torch RNG state (restored before
and saved after its step), and the batch order and augmentation depend only on ``(seed, epoch)``, so a
student's result is bit-identical (on the CPU) to training it alone. Students may join at different epochs
(resume): an epoch trains the students whose next epoch it is.

Per batch, the input batch, the live teacher forward and the cached-output lookup are done once for all
students; logged values stay on the device and are read once per epoch (no per-step host sync).

With ``train.fuse_students`` (``EpochContext.fuse_students``), the students of one fusable architecture and
method train as one fused model instead, each epoch fused and unfused again before the checkpoints
(:mod:`kdfair.train.fused`); results then agree with the plain loop within float32 round-off, not bit for bit.

Progress (``EpochContext.progress``): ``True`` shows a tqdm bar per epoch on stderr with the first student's
running loss, accuracy and images per second (``loss=``, ``acc=``, ``img_s=``; one host sync every 10
steps); ``"lines"`` prints one line per epoch on stdout instead, and one a minute within a longer epoch
(worker processes and Ray tasks, and any sweep whose stderr is a file: no redrawn bar in a log); ``False``
is silent.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from kdfair.io import crash_point, say
from kdfair.methods.base import LOGITS, LOSS, Batch, TeacherOutput, logged_parts
from kdfair.train.augment import InputPipeline
from kdfair.train.batches import prefetched, shard_batch
from kdfair.train.device import Runtime
from kdfair.train.fused import FusedGroup, plan_fusion
from kdfair.train.sampling import STREAM_AUGMENT, torch_seed_for
from kdfair.train.student import Student
from kdfair.train.teacher import Teacher

STEP_LINE_SECONDS = 60.0  # "lines" progress: at most one line a minute within an epoch (and one at its end)


@dataclass
class EpochContext:
    """What every step of an epoch shares: data, labels on the device, teacher, runtime."""

    pipeline: InputPipeline
    labels: torch.Tensor  # (N_train,) int64 on the device
    attributes: dict[str, torch.Tensor]
    teacher: Teacher | None
    runtime: Runtime
    augment_seed: int
    progress: bool | Literal["lines"] = True  # True: a tqdm bar; "lines": a stdout line per epoch; False: off
    shard: tuple[int, int] = (0, 1)  # (rank, world size): each rank takes batch[rank::world]
    fuse_students: bool = False  # train.fuse_students: fusable students train as one model (train.fused)
    # build the next batch on a worker thread while this one trains (CUDA: lazy reads, host gathers and
    # copies overlap the GPU's work); the batches are the same either way
    prefetch: bool = False


def train_epochs(students: list[Student], ctx: EpochContext) -> None:
    """Train every student to its ``epochs``; all students must share one :class:`BatchPlan`."""
    if not students:
        return
    assert len({s.plan.key() for s in students}) == 1, "a lockstep group needs one batch plan"
    fused = plan_fusion(students, ctx.shard[1]) if ctx.fuse_students else []
    total = max(s.epochs for s in students)
    for epoch in range(min(s.next_epoch for s in students), total):
        active = [s for s in students if s.next_epoch == epoch and epoch < s.epochs]
        if active:
            _run_epoch(active, epoch, ctx, fused)


def _run_epoch(students: list[Student], epoch: int, ctx: EpochContext, fused: list[list[Student]]) -> None:
    """One epoch of ``students``; members of the ``fused`` groups train fused (kdfair.train.fused)."""
    batches = students[0].plan.batches(epoch)
    limit = students[0].max_steps
    batches = batches[:limit] if limit is not None else batches
    generator = torch.Generator().manual_seed(torch_seed_for(ctx.augment_seed, epoch, STREAM_AUGMENT))
    sums = [StepTotals() for _ in students]
    groups = _fused_groups(students, fused, sums)
    in_groups = {s.run_id: g.size for g in groups for s in g.active}  # run id -> fused model size
    plain = [(s, acc) for s, acc in zip(students, sums, strict=True) if s.run_id not in in_groups]
    lrs = [s.optimizer.param_groups[0]["lr"] for s in students]
    _start_epoch(students, epoch)
    start = time.perf_counter()
    names = ",".join(s.run_id for s in students) if len(students) < 4 else f"{len(students)} students"
    show_bar = ctx.progress is True
    next_line = start + STEP_LINE_SECONDS  # "lines": a line within an epoch that lasts longer than this
    bar = tqdm(batches, desc=f"epoch {epoch + 1} {names}", disable=not show_bar, leave=False)
    for step, (batch, images, weight) in enumerate(_batches(bar, generator, ctx)):
        _step_all(students, groups, plain, batch, ctx, weight)
        if show_bar and step % 10 == 0:  # the only per-step sync, and only with a progress bar
            elapsed = time.perf_counter() - start
            loss, accuracy = sums[0].means()[:2]
            rate = images * (step + 1) / max(elapsed, 1e-9)
            bar.set_postfix({"loss": f"{loss:.3f}", "acc": f"{accuracy:.3f}", "img_s": f"{rate:.0f}"})
        elif ctx.progress == "lines" and time.perf_counter() >= next_line:  # one sync a minute at most
            say(step_line(names, epoch, students[0], (step + 1, len(batches)), sums[0], start))
            next_line = time.perf_counter() + STEP_LINE_SECONDS
    seconds = time.perf_counter() - start
    for group in groups:
        group.finish()
    for s, acc, lr in zip(students, sums, lrs, strict=True):
        fused_with = in_groups.get(s.run_id, 0) if ctx.fuse_students else None
        _finish_epoch(s, epoch, acc, lr, seconds, len(students), fused_with)
    if ctx.progress == "lines":
        say(epoch_line(names, students[0]))


def step_line(
    names: str, epoch: int, student: Student, steps: tuple[int, int], totals: StepTotals, start: float
) -> str:
    """One line within a long epoch (``"lines"`` progress, every ``STEP_LINE_SECONDS``), the running means of
    the first student: ``<runs> epoch 3/100: step 120/391, loss 1.234, acc 0.567, 890 img/s``."""
    loss, accuracy = totals.means()[:2]
    rate = totals.seen / max(time.perf_counter() - start, 1e-9)
    return (
        f"{names} epoch {epoch + 1}/{student.epochs}: step {steps[0]}/{steps[1]}, loss {loss:.3f}, "
        f"acc {accuracy:.3f}, {rate:.0f} img/s"
    )


def epoch_line(names: str, student: Student) -> str:
    """One line on the epoch just finished: ``<runs> epoch 3/100: loss 1.234, acc 0.567, 890 img/s, 4.5 s``
    (loss and accuracy of the first student of the group)."""
    row = student.history[-1]
    return (
        f"{names} epoch {row['epoch']}/{student.epochs}: loss {row['train_loss']:.3f}, "
        f"acc {row['train_acc']:.3f}, {row['images_per_s']:.0f} img/s, {row['seconds']:.1f} s"
    )


class StepTotals:
    """Per-epoch running sums of one student's logged values, kept on the device (no per-step sync).

    ``loss`` and the extra parts are sums of ``value * batch size`` (float64 tensors), ``correct`` counts
    right predictions (of the logits the method's loss returns), ``seen`` counts samples (a Python int).
    """

    def __init__(self) -> None:
        self.seen = 0
        self.loss: torch.Tensor | float = 0.0
        self.correct: torch.Tensor | float = 0.0
        self.extra: dict[str, torch.Tensor | float] = {}

    def add(self, n: int, loss: torch.Tensor, correct: torch.Tensor, extra: dict[str, Any]) -> None:
        """Add one step of ``n`` samples; tensors stay where they are (the sums are taken lazily)."""
        self.seen += n
        self.loss = self.loss + loss.detach().double() * n
        self.correct = self.correct + correct
        for key, value in extra.items():
            value = value.detach().double() if torch.is_tensor(value) else float(value)
            self.extra[key] = self.extra.get(key, 0.0) + value * n

    def means(self) -> tuple[float, float, dict[str, float]]:
        """Mean loss, accuracy and extras per sample (one sync per call)."""
        seen = max(self.seen, 1)
        extra = {key: float(value) / seen for key, value in self.extra.items()}
        return float(self.loss) / seen, float(self.correct) / seen, extra


def _start_epoch(students: list[Student], epoch: int) -> None:
    """Training mode, and the methods' and meta batches' epoch start (``epoch`` counts from 0)."""
    for s in students:
        s.model.train()
        s.method.train()
        s.method.start_epoch(epoch)
        if s.meta is not None:
            s.meta.batches.start_epoch(epoch)


def _step_all(
    students: list[Student],
    groups: list[FusedGroup],
    plain: list[tuple[Student, StepTotals]],
    batch: Batch,
    ctx: EpochContext,
    weight: float = 1.0,
) -> None:
    """One step of every student on ``batch``: one teacher pass, then each fused group, then the others.

    ``weight``: this rank's share of the batch's gradient under DDP (:func:`_make_batch`); 1 otherwise.
    """
    live, cached = _teacher_outputs(students, batch, ctx)
    for group in groups:
        group.step(batch, live, cached, ctx.runtime)
    for s, acc in plain:
        _student_step(s, batch, live if s.live_teacher else cached, ctx, acc, weight)


def _fused_groups(
    students: list[Student], fused: list[list[Student]], sums: list[StepTotals]
) -> list[FusedGroup]:
    """This epoch's fused groups: every planned group with an active member (fused at its full size)."""
    active = {s.run_id for s in students}
    totals = {s.run_id: acc for s, acc in zip(students, sums, strict=True)}
    return [
        FusedGroup(members, [s for s in members if s.run_id in active], totals)
        for members in fused
        if any(s.run_id in active for s in members)
    ]


def _make_batch(
    positions: np.ndarray, generator: torch.Generator, ctx: EpochContext
) -> tuple[Batch, int, float]:
    """This rank's batch at ``positions``, the whole batch's size, and the rank's gradient weight
    (:func:`kdfair.train.batches.shard_batch`)."""
    return shard_batch(positions, generator, ctx.pipeline, ctx.labels, ctx.attributes, ctx.shard)


def _batches(
    plan: Iterable[np.ndarray], generator: torch.Generator, ctx: EpochContext
) -> Iterator[tuple[Batch, int, float]]:
    """:func:`_make_batch` of each of ``plan``'s position arrays, in order; with ``ctx.prefetch`` the next
    one is built on a worker thread while the caller trains on this one."""
    build = functools.partial(_make_batch, generator=generator, ctx=ctx)
    return prefetched(plan, build, ctx.prefetch, ctx.pipeline.device)


def _teacher_outputs(
    students: list[Student], batch: Batch, ctx: EpochContext
) -> tuple[TeacherOutput | None, TeacherOutput | None]:
    """The batch's live teacher forward and cached lookup, each done once for all students that need it."""
    if ctx.teacher is None:
        return None, None
    needing = [s for s in students if s.method.needs_teacher]
    live = ctx.teacher.live(batch.inputs, ctx.runtime) if any(s.live_teacher for s in needing) else None
    cached = ctx.teacher.lookup(batch.index) if any(not s.live_teacher for s in needing) else None
    return live, cached


def _student_step(
    s: Student,
    batch: Batch,
    teacher_out: TeacherOutput | None,
    ctx: EpochContext,
    acc: StepTotals,
    weight: float = 1.0,
) -> None:
    """One optimisation step of one student, with its own RNG stream; logged values stay on the device.

    The train accuracy counts the student's logits that the method's loss returns (``parts["logits"]``).
    ``weight`` (DDP): this rank's loss is scaled by it before the backward pass (see :func:`_make_batch`).
    """
    s.rng.swap_in(ctx.runtime.device)
    if not s.method.needs_teacher:
        teacher_out = None
    sync = None if s.ddp is None else s.ddp.sync_grads
    if sync is not None:
        sync.weight = weight
    with ctx.runtime.autocast():
        logs = s.method.before_step(s.net, batch, teacher_out, None if s.meta is None else s.meta.source)
        parts = s.method.loss(s.net, batch, teacher_out)
    s.optimizer.zero_grad(set_to_none=True)
    (parts[LOSS] if weight == 1.0 else parts[LOSS] * weight).backward()
    if sync is not None:
        sync()
    s.optimizer.step()
    s.rng.save(ctx.runtime.device)
    correct = (parts[LOGITS].detach().argmax(dim=1) == batch.labels).sum()
    acc.add(len(batch.labels), parts[LOSS], correct, {**logged_parts(parts), **logs})


def _finish_epoch(
    s: Student, epoch: int, acc: StepTotals, lr: float, seconds: float, n_students: int, fused: int | None
) -> None:
    """Step the schedule, log the epoch, save the checkpoint, then the crash point (resume tests).

    ``fused``: with ``train.fuse_students``, the size of the fused model the student trained in (0: unfused),
    logged as epochs.csv's ``fused_students``; None leaves the column out.
    """
    s.learner.scheduler.step()
    loss, accuracy, extra = acc.means()  # the epoch's one sync
    row = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": loss,
        "train_acc": accuracy,
        "images_per_s": acc.seen / max(seconds, 1e-9),
        "seconds": seconds,
        "lockstep_students": n_students,
    }
    if fused is not None:
        row["fused_students"] = fused
    row.update({f"train_{key}": value for key, value in extra.items()})
    s.history.append(row)
    s.next_epoch = epoch + 1
    s.folder.write_epochs(s.history)
    s.folder.save_checkpoint(s.state())
    crash_point(f"epoch:{s.run_id}:{epoch + 1}")
