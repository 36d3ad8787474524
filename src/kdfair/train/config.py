"""The typed config of one training run (SPEC §1 runs, §3 recipe).

A :class:`RunConfig` is everything that decides a run's result: a run's outputs are a deterministic function
of its config (on the CPU). The sweep expands a YAML grid into RunConfigs; the trainer
(:func:`kdfair.train.runner.execute`) saves the resolved config as ``config.json`` in the run folder.

All models are strict (an unknown key is an error) and frozen. Semantic errors raise
:class:`~kdfair.errors.ConfigError` naming the field; :func:`parse_run_config` turns pydantic's type
errors into ConfigError too.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kdfair.errors import ConfigError

Role = Literal["teacher", "nds", "ds"]

# SPEC §3 batch sizes by data set (normalised name: lower case, no '-' or '_'); others are our choice.
DEFAULT_BATCH_SIZES: dict[str, int] = {
    "cifar10": 128,
    "cifar100": 128,
    "svhn": 128,
    "tinyimagenet": 512,
    "imagenet": 512,
    "celeba": 256,
    "trifeature": 64,
    "hatexplain": 32,  # BERT-size models: 32 fits a 16 GB GPU at length 128
    "utkface": 128,  # MFD's set-up uses CIFAR-like batch sizes
    "cifar10s": 128,
}
FALLBACK_BATCH_SIZE = 128  # any data set not listed above

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


def default_batch_size(dataset: str) -> int:
    """The SPEC §3 training batch size for ``dataset`` (128 for data sets the paper does not list)."""
    key = dataset.lower().replace("-", "").replace("_", "")
    return DEFAULT_BATCH_SIZES.get(key, FALLBACK_BATCH_SIZE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainConfig(_Strict):
    """The optimisation recipe (SPEC §3 defaults)."""

    epochs: int = Field(100, ge=1)  # passes over the train split; paper: 100
    batch_size: int | None = Field(None, ge=1)  # images per step; None -> default_batch_size(data set)
    eval_batch_size: int = Field(512, ge=1)  # images per forward at test time; no effect on results
    optimizer: Literal["sgd", "adam"] = "sgd"  # paper: SGD; BIRD: Adam (lr 1e-3)
    lr: float = Field(0.1, gt=0)  # initial learning rate, per step; paper: 0.1
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD momentum; paper: 0.9
    weight_decay: float = Field(1e-3, ge=0)  # L2 coefficient, coupled (torch SGD/Adam); paper: 1e-3
    # lr schedule, stepped once per epoch. "step": lr x lr_decay after each of ``milestones`` (paper: /10 at
    # 30/60/90). "cosine": linear warm-up over ``warmup_epochs``, then half a cosine down to 0 at the last
    # epoch (the fast-convergence recipe of airbench-style CIFAR training; RESULTS.md, convergence ablation)
    schedule: Literal["step", "cosine"] = "step"
    milestones: list[int] = [30, 60, 90]  # "step": epochs after which lr is multiplied by lr_decay
    lr_decay: float = Field(0.1, gt=0, le=1)  # "step": multiplicative lr factor at each milestone; paper: /10
    warmup_epochs: int = Field(0, ge=0)  # "cosine": epochs of linear warm-up from lr / (warmup + 1) to lr
    augment: bool = True  # random crop (pad 4 per 32 px) + horizontal flip, images only; paper: on
    normalize: Literal["train", "half"] = "train"  # per-channel mean/std of train, or fixed 0.5/0.5
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: Literal["auto"] | bool = "auto"  # auto: on with bf16 (PERF-NOTES §2)
    max_steps_per_epoch: int | None = Field(None, ge=1)  # cap for tests and demos; None = full epoch
    threads: int | None = Field(None, ge=1)  # torch intra-op threads; None = leave as set
    sampler: Literal["random", "balanced"] = "random"  # balanced: MFD's (class, group) balanced batches
    meta_fraction: float = Field(0.1, gt=0, lt=1)  # share of train held out as meta split (BIRD)
    teacher_cache: Literal["auto", "on", "off"] = "auto"  # auto: cache teacher outputs when augment is off
    # torch.use_deterministic_algorithms: true (warn on an op without a deterministic kernel), "strict" (raise
    # instead), false (off; cudnn.benchmark on CUDA). CPU runs are bit-exact with true; on CUDA see
    # docs/sweeps.md "Determinism" (kdfair.train.device.deterministic_threads)
    deterministic: bool | Literal["strict"] = True
    # DS students of one lockstep unit with the same architecture (LeNet-5, CIFAR ResNets) and method (kd,
    # ce) train as one fused model; each keeps its own optimiser, checkpoint and folder (kdfair.train.fused).
    # Results equal unfused training within float32 round-off, not bit for bit. Off: today's plain loop
    fuse_students: bool = False

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if any(m < 1 for m in self.milestones) or sorted(self.milestones) != list(self.milestones):
            raise ConfigError(f"train.milestones must be increasing epochs >= 1, got {self.milestones}")
        if self.schedule == "cosine" and self.warmup_epochs >= self.epochs:
            raise ConfigError(
                f"train.warmup_epochs ({self.warmup_epochs}) must be below train.epochs ({self.epochs})"
            )
        return self

    def resolved_batch_size(self, dataset: str) -> int:
        """``batch_size``, or the SPEC §3 default of ``dataset`` when unset."""
        return self.batch_size if self.batch_size is not None else default_batch_size(dataset)


class DataConfig(_Strict):
    """Which data set to load (``kdfair.data.registry`` name), from where, with which loader options."""

    name: str  # registry name, e.g. "trifeature", "cifar10"
    root: str | None = None  # folder holding the files; None for built-in data
    options: dict[str, Any] = {}  # loader options, validated by the data set's own options model
    seed: int = Field(0, ge=0)  # data-generation seed (synthetic data, subsampling): the same for every run
    # of a sweep, so all runs see the same test set; the run's own seed sets only init and batch order


class ModelConfig(_Strict):
    """Which architecture to build (``kdfair.models.registry`` name) with which options."""

    name: str  # registry name, e.g. "resnet20", "lenet5"
    options: dict[str, Any] = {}  # extra factory keywords
    pretrained: str | None = None  # path of a state_dict to start from; None = random init


class TeacherSource(_Strict):
    """Where a DS run's teacher comes from.

    ``run``: a finished run of the same sweep (``runs/<run_id>``, must have DONE). ``checkpoint``: a file with
    the teacher's state_dict (``model`` names the architecture). ``outputs``: an npz of a black-box teacher
    with ``sample_id`` and ``logits`` and/or ``features``, aligned to the train split by sample id.
    """

    kind: Literal["run", "checkpoint", "outputs"]
    run_id: str | None = None  # kind "run": the teacher's run id
    path: str | None = None  # kind "checkpoint" / "outputs": the file
    model: ModelConfig | None = None  # kind "checkpoint": the teacher's architecture

    @model_validator(mode="after")
    def _check(self) -> TeacherSource:
        if self.kind == "run" and not self.run_id:
            raise ConfigError("teacher.run_id is required when teacher.kind is 'run'")
        if self.kind in ("checkpoint", "outputs") and not self.path:
            raise ConfigError(f"teacher.path is required when teacher.kind is '{self.kind}'")
        if self.kind == "checkpoint" and self.model is None:
            raise ConfigError("teacher.model is required when teacher.kind is 'checkpoint'")
        return self

    @property
    def live(self) -> bool:
        """True when the teacher is a network the trainer runs (not precomputed outputs)."""
        return self.kind != "outputs"


class RunConfig(_Strict):
    """One run: a teacher, an NDS, or a DS(method, temperature, alpha), for one seed (SPEC §1)."""

    run_id: str  # folder name under runs/, e.g. ds_kd_T4_a0.8_s0
    role: Role
    seed: int = Field(ge=0)  # initialisation and data order; DS seed s learns from teacher seed s
    data: DataConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    method: str = "ce"  # kdfair.methods.registry name
    method_options: dict[str, Any] = {}  # validated by the method's options model
    temperature: float | None = None  # softmax temperature of the soft targets (DS only), > 0
    alpha: float | None = None  # weight of the distillation term (DS only), in [0, 1]
    t2_scaling: bool = True  # multiply the KD term by T^2 (Hinton 2015); SPEC §2 default on
    teacher: TeacherSource | None = None  # DS only
    attribute: str | None = None  # protected attribute used by fair methods; None = the data set's first

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if not _RUN_ID.match(self.run_id):
            raise ConfigError(f"run_id {self.run_id!r} must be a folder name of letters, digits and _.=+-")
        if self.role == "ds":
            if self.temperature is None or not (math.isfinite(self.temperature) and self.temperature > 0):
                raise ConfigError(f"temperature must be > 0 for a DS run, got {self.temperature}")
            if self.alpha is None or not 0.0 <= self.alpha <= 1.0:
                raise ConfigError(f"alpha must be in [0, 1] for a DS run, got {self.alpha}")
            if self.teacher is None:
                raise ConfigError(f"run {self.run_id}: teacher is required for a DS run")
        else:
            for name in ("temperature", "alpha", "teacher"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"run {self.run_id}: {name} is only allowed for a DS run")
        return self

    @property
    def condition_id(self) -> str:
        """ARCHITECTURE "Conditions": ``teacher``, ``nds``, ``ds_<method>_T<T:g>_a<alpha:g>``."""
        return condition_id(self.role, self.method, self.temperature, self.alpha)

    def lockstep_key(self) -> str:
        """Runs with equal keys can be trained together in lockstep (one teacher pass per batch).

        Equal: data, student model, seed, train recipe and teacher. Method, temperature, alpha, t2_scaling,
        method options and attribute may differ. Teacher and NDS runs are never grouped (key = run_id).
        """
        if self.role != "ds":
            return f"single:{self.run_id}"
        parts = self.model_dump(include={"data", "model", "seed", "train", "teacher"})
        return "ds:" + _canonical_json(parts)


def condition_id(role: str, method: str, temperature: float | None, alpha: float | None) -> str:
    """The condition id of ARCHITECTURE "Conditions"."""
    if role == "ds":
        return f"ds_{method}_T{temperature:g}_a{alpha:g}"
    return role if method == "ce" else f"{role}_{method}"


def make_run_id(role: str, method: str, temperature: float | None, alpha: float | None, seed: int) -> str:
    """``<condition id>_s<seed>``, e.g. ``teacher_s0``, ``ds_kd_T4_a0.8_s0``."""
    return f"{condition_id(role, method, temperature, alpha)}_s{seed}"


def parse_run_config(raw: dict[str, Any], source: str = "run config") -> RunConfig:
    """Validate a dict as a :class:`RunConfig`; any error is a ConfigError naming ``source`` and the field."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ConfigError(f"{source}: {where}: {first['msg']}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def comparable_config(raw: dict[str, Any]) -> dict[str, Any]:
    """A config.json dict as the resume check compares it: validated with every default filled in, less
    ``train.fuse_students`` (fused training changes only the round-off, and epochs.csv's ``fused_students``
    column records it per epoch, so a folder may resume fused or unfused). Unparsable input is returned as is.
    """
    try:
        normalized = json.loads(parse_run_config(raw).model_dump_json())
    except ConfigError:
        return raw
    normalized["train"].pop("fuse_students", None)
    return normalized


def _canonical_json(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
