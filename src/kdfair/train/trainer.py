"""Building one run's student (model, method, optimizer, schedule, batch plan) and writing its results.

The student of run ``r`` is built right after ``torch.manual_seed(r.seed)`` (model first, then the method's
trainable parts), so its initialisation is the same whether it trains alone or in a lockstep group.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from kdfair.data.base import Dataset
from kdfair.errors import ConfigError, KdfairWarning
from kdfair.methods.base import Batch, MetaSource, Method, MethodContext, TeacherOutput
from kdfair.methods.registry import build_method
from kdfair.models.base import KDModel
from kdfair.runfolder import attr_key
from kdfair.train.augment import InputPipeline
from kdfair.train.batches import BatchPlan
from kdfair.train.config import RunConfig, TrainConfig
from kdfair.train.device import Runtime
from kdfair.train.rundir import RunFolder
from kdfair.train.sampling import MetaBatches, split_meta
from kdfair.train.student import Learner, MetaFeed, RngStreams, Student
from kdfair.train.teacher import Teacher, build_network


def chosen_attribute(config: RunConfig, dataset: Dataset) -> str | None:
    """``config.attribute``, or the data set's first protected attribute (None when it has none)."""
    names = list(dataset.attribute_levels) or list(dataset.split("train").attributes)
    if config.attribute is not None:
        if config.attribute not in names:
            raise ConfigError(
                f"run {config.run_id}: attribute '{config.attribute}' not in data set ({names})"
            )
        return config.attribute
    return names[0] if names else None


def attribute_order(config: RunConfig, dataset: Dataset) -> list[str]:
    """Attribute names with the run's chosen attribute first (methods use the first one)."""
    names = list(dataset.split("train").attributes)
    first = chosen_attribute(config, dataset)
    return ([first] if first in names else []) + [n for n in names if n != first]


def _map_channels(model: KDModel, example: torch.Tensor, runtime: Runtime) -> tuple[int, ...]:
    """Channels of the student's stage maps, from one eval-mode forward (no RNG or BatchNorm state used)."""
    model.eval()
    with torch.no_grad(), runtime.autocast():
        maps = model.forward_all(example).maps
    model.train()
    return tuple(int(m.shape[1]) for m in maps)


def make_optimizer(train: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD with momentum (SPEC §3) or Adam, coupled weight decay."""
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)


def lr_factor(train: TrainConfig, epoch: int) -> float:
    """The lr multiplier of epoch ``epoch`` (0-based) under ``train.schedule`` (see TrainConfig)."""
    if train.schedule == "step":
        return train.lr_decay ** sum(epoch >= m for m in train.milestones)
    warmup = train.warmup_epochs
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    progress = (epoch - warmup) / (train.epochs - warmup)  # 0 at the first cosine epoch, < 1 at the last
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    train: TrainConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch lr schedule (stepped after each epoch): MultiStepLR, or :func:`lr_factor` for cosine."""
    if train.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(train.milestones), gamma=train.lr_decay
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, train))


def make_plan(config: RunConfig, dataset: Dataset, method: Method) -> tuple[BatchPlan, np.ndarray | None]:
    """The run's batch plan and, for methods with a meta split, the held-out meta positions."""
    train = dataset.split("train")
    positions, meta = np.arange(len(train), dtype=np.int64), None
    if method.uses_meta_split:
        positions, meta = split_meta(len(train), config.train.meta_fraction, seed=config.seed)
    groups = labels = None
    if config.train.sampler == "balanced":
        attribute = chosen_attribute(config, dataset)
        if attribute is None:
            raise ConfigError(f"run {config.run_id}: sampler 'balanced' needs a protected attribute")
        groups, labels = train.attributes[attribute][positions], train.labels[positions]
    batch_size = config.train.resolved_batch_size(config.data.name)
    return BatchPlan(positions, batch_size, config.seed, groups, labels), meta


def build_student(
    config: RunConfig,
    dataset: Dataset,
    folder: RunFolder,
    teacher: Teacher | None,
    runtime: Runtime,
    *,
    use_cache: bool,
    map_channels: tuple[int, ...] | None,
    meta_inputs: InputPipeline | None = None,
    example: torch.Tensor | None = None,
) -> Student:
    """A freshly initialised student for ``config`` (seeded), restored from its checkpoint when one exists."""
    torch.manual_seed(config.seed)
    model = build_network(config.model, dataset).to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    levels = {name: dataset.attribute_levels.get(name, []) for name in attribute_order(config, dataset)}
    student_maps = None if example is None else _map_channels(model, example, runtime)
    context = MethodContext(
        student=model,
        num_classes=dataset.num_classes,
        temperature=config.temperature,
        alpha=config.alpha,
        t2_scaling=config.t2_scaling,
        teacher_feature_dim=None if teacher is None else teacher.feature_dim,
        teacher_map_channels=map_channels,
        student_map_channels=student_maps,
        attribute_levels=levels,
        learning_rate=config.train.lr,
    )
    method = build_method(config.method, config.method_options, context).to(runtime.device)
    if method.needs_teacher and config.role == "ds" and teacher is None:
        raise ConfigError(f"run {config.run_id}: method '{config.method}' needs a teacher")
    if method.needs_teacher and teacher is not None and teacher.model is None:
        _check_outputs_teacher(config, method, teacher)
    own = {id(p) for p in method.own_parameters()}
    params = [p for p in [*model.parameters(), *method.parameters()] if p.requires_grad and id(p) not in own]
    optimizer = make_optimizer(config.train, _unique(params))
    scheduler = make_scheduler(config.train, optimizer)
    plan, meta_positions = make_plan(config, dataset, method)
    live = teacher is not None and teacher.model is not None and (not use_cache or method.needs_teacher_maps)
    student = Student(
        run_id=config.run_id,
        folder=folder,
        learner=Learner(model, method, optimizer, scheduler),
        plan=plan,
        epochs=config.train.epochs,
        live_teacher=live,
        max_steps=config.train.max_steps_per_epoch,
    )
    if meta_positions is not None and meta_inputs is not None:
        batches = MetaBatches(len(meta_positions), plan.batch_size, seed=config.seed)
        student.meta = MetaFeed(
            batches, _meta_source(batches, method, meta_positions, meta_inputs, teacher, runtime, live)
        )
    student.rng = RngStreams(torch.get_rng_state())
    if runtime.device.type == "cuda":
        student.rng.cuda = torch.cuda.get_rng_state(runtime.device)
    checkpoint = folder.load_checkpoint()
    if checkpoint is not None:
        student.restore(checkpoint, runtime.device, config.seed)
    return student


def _check_outputs_teacher(config: RunConfig, method: Method, teacher: Teacher) -> None:
    """A black-box teacher (outputs file) must hold what the method reads: no stage maps, ever."""
    what = f"run {config.run_id}: method '{config.method}' needs"
    if method.needs_teacher_maps:
        raise ConfigError(f"{what} a live teacher, not outputs")
    for name, needed in (
        ("logits", method.needs_teacher_logits),
        ("features", method.needs_teacher_features),
    ):
        if needed and name not in teacher.cached:
            raise ConfigError(f"{what} the teacher's {name}, which {teacher.description} does not have")


def _unique(params: list[nn.Parameter]) -> list[nn.Parameter]:
    seen: set[int] = set()
    return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


def _meta_source(
    meta_batches: MetaBatches,
    method: Method,
    meta_positions: np.ndarray,
    inputs: InputPipeline,
    teacher: Teacher | None,
    runtime: Runtime,
    live: bool,
) -> MetaSource:
    """BIRD's meta batches: unaugmented, from the held-out positions, with the teacher's outputs."""
    labels = torch.from_numpy(inputs.split.labels).to(runtime.device)
    attributes = {k: torch.from_numpy(v).to(runtime.device) for k, v in inputs.split.attributes.items()}

    def next_meta() -> tuple[Batch, TeacherOutput]:
        positions = meta_positions[meta_batches.next()]
        index = inputs.to_device(torch.from_numpy(positions))
        x = inputs.batch(positions)
        batch = Batch(x, labels[index], {k: v[index] for k, v in attributes.items()}, index)
        if teacher is None or not method.needs_meta_teacher:  # BIRD discards them: no teacher pass
            return batch, TeacherOutput()
        return batch, teacher.live(x, runtime) if live else teacher.lookup(index)

    return next_meta


def predict(
    model: KDModel, inputs: InputPipeline, runtime: Runtime, batch_size: int
) -> tuple[np.ndarray, ...]:
    """Test logits and penultimate features (float32), in split order, eval mode."""
    model.eval()
    logits, features = [], []
    with torch.no_grad(), runtime.autocast():
        for start in range(0, len(inputs), batch_size):
            out = model.forward_all(inputs.batch(np.arange(start, min(start + batch_size, len(inputs)))))
            logits.append(out.logits.float().cpu().numpy())
            features.append(out.features.float().flatten(1).cpu().numpy())
    return np.concatenate(logits).astype(np.float32), np.concatenate(features).astype(np.float32)


def prediction_arrays(dataset: Dataset, logits: np.ndarray, features: np.ndarray) -> dict[str, np.ndarray]:
    """The audit format (kdfair.predictions): ids, labels, logits, features, attr_<name> as level names."""
    test = dataset.split("test")
    arrays: dict[str, np.ndarray] = {
        "sample_id": np.asarray(test.sample_ids),
        "y_true": np.asarray(test.labels, dtype=np.int64),
        "logits": logits,
        "features": features,
    }
    for name, codes in test.attributes.items():
        levels = dataset.attribute_levels.get(name)
        values = np.asarray(codes, dtype=np.int64)
        if len(np.unique(values)) < 2:
            warnings.warn(
                f"attribute '{name}' has one group in the test split; left out", KdfairWarning, stacklevel=2
            )
            continue
        if levels and values.max(initial=0) < len(levels):
            arrays[attr_key(name)] = np.asarray(levels)[values].astype(str)
        else:
            arrays[attr_key(name)] = values
    return arrays


def run_meta(
    config: RunConfig, dataset: Dataset, runtime: Runtime, teacher: Teacher | None, test_accuracy: float
) -> dict[str, Any]:
    """run.json in the audit format, with the training settings shown in reports."""
    meta: dict[str, Any] = {"role": config.role, "seed": config.seed, "method": config.method}
    if config.role == "ds":
        meta.update(temperature=config.temperature, alpha=config.alpha)
    meta.update(model=config.model.name, dataset=config.data.name, class_names=list(dataset.class_names))
    meta["settings"] = {
        "epochs": config.train.epochs,
        "batch_size": config.train.resolved_batch_size(config.data.name),
        "image_size": dataset.image_size,
        "device": str(runtime.device),
        "precision": runtime.precision,
        "optimizer": config.train.optimizer,
        "lr": config.train.lr,
        "augment": config.train.augment,
        "max_steps_per_epoch": config.train.max_steps_per_epoch,
        "teacher": None if teacher is None else teacher.description,
        "student": config.model.name,
        "attribute": chosen_attribute(config, dataset),
        "test_accuracy": test_accuracy,
    }
    return meta
