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
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from kdfair.io import crash_point, say
from kdfair.methods.base import Batch, MetaSource, Method, TeacherOutput
from kdfair.models.base import KDModel
from kdfair.train.augment import InputPipeline
from kdfair.train.batches import BatchPlan, prefetched, shard_batch
from kdfair.train.device import Runtime, resumed_cuda_rng_state
from kdfair.train.fused import FusedGroup, plan_fusion
from kdfair.train.rundir import RunFolder
from kdfair.train.sampling import STREAM_AUGMENT, MetaBatches, torch_seed_for
from kdfair.train.teacher import Teacher

STEP_LINE_SECONDS = 60.0  # "lines" progress: at most one line a minute within an epoch (and one at its end)


@dataclass
class Student:
    """One run's trainable state inside a lockstep group."""

    run_id: str
    folder: RunFolder
    model: KDModel
    method: Method
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    plan: BatchPlan
    epochs: int
    live_teacher: bool  # True: live forward per batch; False: cached outputs (or no teacher needed)
    net: nn.Module  # what the method calls (the model, or a DDP proxy of it)
    meta_source: MetaSource | None = None
    meta_batches: MetaBatches | None = None
    rng_state: torch.Tensor = field(default_factory=torch.get_rng_state)
    cuda_rng_state: torch.Tensor | None = None
    next_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    max_steps: int | None = None
    sync_grads: Any = None  # DDP: a kdfair.train.ddp.GradientAverage (its ``weight``: this rank's share)
    recorder: LogitRecorder | None = None  # last classifier output, for the train accuracy

    def state(self) -> dict[str, Any]:
        """Everything to resume after ``next_epoch`` epochs (saved as checkpoint.pt)."""
        return {
            "run_id": self.run_id,
            "epoch": self.next_epoch,
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rng_state,
            "cuda_rng": self.cuda_rng_state,
            "history": self.history,
        }

    def restore(self, state: dict[str, Any], device: torch.device, seed: int) -> None:
        """Continue from a checkpoint ``state``, on ``device`` (which may differ from the one that wrote it;
        see :func:`resumed_cuda_rng_state`); ``seed``: the run's seed."""
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.next_epoch, self.history = int(state["epoch"]), list(state["history"])
        self.rng_state = state["rng"]
        self.cuda_rng_state = resumed_cuda_rng_state(state.get("cuda_rng"), device, seed, self.next_epoch)


class LogitRecorder:
    """Keeps the last output of the student's final classifier layer, for the train accuracy."""

    def __init__(self, model: KDModel, num_classes: int) -> None:
        self.last: torch.Tensor | None = None
        heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
        if heads:
            heads[-1].register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self.last = output.detach()


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
    recorders = [s.recorder or _attach_recorder(s) for s, _ in plain]
    lrs = [s.optimizer.param_groups[0]["lr"] for s in students]
    _start_epoch(students, epoch)
    start = time.perf_counter()
    names = ",".join(s.run_id for s in students) if len(students) < 4 else f"{len(students)} students"
    show_bar = ctx.progress is True
    next_line = start + STEP_LINE_SECONDS  # "lines": a line within an epoch that lasts longer than this
    bar = tqdm(batches, desc=f"epoch {epoch + 1} {names}", disable=not show_bar, leave=False)
    for step, (batch, images, weight) in enumerate(_batches(bar, generator, ctx)):
        _step_all(students, groups, plain, recorders, batch, ctx, weight)
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
    right predictions (NaN once a step had no recorded logits), ``seen`` counts samples (a Python int).
    """

    def __init__(self) -> None:
        self.seen = 0
        self.loss: torch.Tensor | float = 0.0
        self.correct: torch.Tensor | float = 0.0
        self.extra: dict[str, torch.Tensor | float] = {}

    def add(self, n: int, loss: torch.Tensor, correct: torch.Tensor | None, extra: dict[str, Any]) -> None:
        """Add one step of ``n`` samples; tensors stay where they are (the sums are taken lazily)."""
        self.seen += n
        self.loss = self.loss + loss.detach().double() * n
        self.correct = float("nan") if correct is None else self.correct + correct
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
        if s.meta_batches is not None:
            s.meta_batches.start_epoch(epoch)


def _step_all(
    students: list[Student],
    groups: list[FusedGroup],
    plain: list[tuple[Student, StepTotals]],
    recorders: list[LogitRecorder],
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
    for (s, acc), rec in zip(plain, recorders, strict=True):
        _student_step(s, batch, live if s.live_teacher else cached, ctx, rec, acc, weight)


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


def _attach_recorder(student: Student) -> LogitRecorder:
    recorder = LogitRecorder(student.model, _num_classes(student.model))
    student.recorder = recorder
    return recorder


def _num_classes(model: KDModel) -> int:
    return int(getattr(model, "num_classes", 0))


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
    rec: LogitRecorder,
    acc: StepTotals,
    weight: float = 1.0,
) -> None:
    """One optimisation step of one student, with its own RNG stream; logged values stay on the device.

    ``weight`` (DDP): this rank's loss is scaled by it before the backward pass (see :func:`_make_batch`).
    """
    torch.set_rng_state(s.rng_state)
    if s.cuda_rng_state is not None:
        torch.cuda.set_rng_state(s.cuda_rng_state, ctx.runtime.device)
    if not s.method.needs_teacher:
        teacher_out = None
    if s.sync_grads is not None:
        s.sync_grads.weight = weight
    rec.last = None
    with ctx.runtime.autocast():
        logs = s.method.before_step(s.net, batch, teacher_out, s.meta_source)
        parts = s.method.loss(s.net, batch, teacher_out)
    s.optimizer.zero_grad(set_to_none=True)
    (parts["loss"] if weight == 1.0 else parts["loss"] * weight).backward()
    if s.sync_grads is not None:
        s.sync_grads()
    s.optimizer.step()
    s.rng_state = torch.get_rng_state()
    if s.cuda_rng_state is not None:
        s.cuda_rng_state = torch.cuda.get_rng_state(ctx.runtime.device)
    n = len(batch.labels)
    correct = None
    if rec.last is not None and rec.last.shape[0] == n:
        correct = (rec.last.argmax(dim=1) == batch.labels).sum()
    extra = {k: v for k, v in parts.items() if k != "loss"}
    acc.add(n, parts["loss"], correct, {**extra, **logs})


def _finish_epoch(
    s: Student, epoch: int, acc: StepTotals, lr: float, seconds: float, n_students: int, fused: int | None
) -> None:
    """Step the schedule, log the epoch, save the checkpoint, then the crash point (resume tests).

    ``fused``: with ``train.fuse_students``, the size of the fused model the student trained in (0: unfused),
    logged as epochs.csv's ``fused_students``; None leaves the column out.
    """
    s.scheduler.step()
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
