"""The sweep config: one YAML file that names the grid {teacher, NDS, DS(method, T, alpha)} x seeds (SPEC §1).

:func:`load_sweep_config` reads the file, validates it strictly (pydantic, unknown keys are errors, frozen)
and then checks every name against the registries (models, data sets, methods), the method options, the
teacher files and the data files, so a bad config fails before any training with one
:class:`~kdfair.errors.ConfigError` line ``<file>: <key path>: <what is wrong>``. The schema, with an
annotated example, is in ``docs/sweeps.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdfair.errors import ConfigError, KdfairError
from kdfair.train.config import DataConfig, TrainConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
UnitFloat = Annotated[float, Field(ge=0, le=1)]
Seed = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudentSpec(_Strict):
    """The small model: a ``kdfair.models.registry`` name and its factory options."""

    model: str  # registry name, e.g. "lenet5", "resnet20"
    options: dict[str, Any] = {}  # extra factory keywords
    pretrained: str | None = None  # local state_dict to start from; None = random init


class TeacherSpec(_Strict):
    """The large model and where it comes from.

    ``source: train`` trains one teacher per seed in the sweep (``teacher_s<seed>``); ``checkpoint`` loads a
    state_dict from ``path`` (architecture ``model``); ``outputs`` reads a black-box teacher's saved logits or
    features from ``path`` (an npz). ``path`` may contain ``{seed}``, replaced by the DS run's seed.
    """

    model: str | None = None  # registry name; required unless source is "outputs"
    options: dict[str, Any] = {}
    pretrained: str | None = None  # initial weights of a trained teacher (source "train")
    source: Literal["train", "checkpoint", "outputs"] = "train"
    path: str | None = None  # the checkpoint or outputs file (source "checkpoint" / "outputs")

    @model_validator(mode="after")
    def _check(self) -> TeacherSpec:
        if self.source != "outputs" and self.model is None:
            raise ValueError(f"'model' is required when source is '{self.source}'")
        if self.source == "train" and self.path is not None:
            raise ValueError("'path' is only used with source 'checkpoint' or 'outputs'")
        if self.source != "train" and not self.path:
            raise ValueError(f"'path' is required when source is '{self.source}'")
        return self

    def path_for_seed(self, seed: int) -> str | None:
        """``path`` with ``{seed}`` replaced by ``seed``."""
        return None if self.path is None else self.path.replace("{seed}", str(seed))


class PairSpec(_Strict):
    """One teacher -> student pair of a grid over model pairs."""

    teacher: TeacherSpec
    student: StudentSpec


class DistillSpec(_Strict):
    """The DS grid: every method x temperature x alpha, for every seed (SPEC §1-2)."""

    methods: list[str] = Field(["kd"], min_length=1)  # kdfair.methods.registry names
    temperatures: list[PositiveFloat] = Field([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], min_length=1)  # paper: 1..10
    alphas: list[UnitFloat] = Field([0.8], min_length=1)  # weight of the distillation term; paper: 0.8
    t2_scaling: bool = True  # multiply the KD term by T^2 (Hinton 2015); SPEC §2 default on
    method_options: dict[str, dict[str, Any]] = {}  # method name -> options, validated by the method
    attribute: str | None = None  # protected attribute of fair methods; None = the data set's first

    @field_validator("methods", "temperatures", "alphas")
    @classmethod
    def _unique(cls, values: list[Any]) -> list[Any]:
        if len(set(values)) != len(values):
            raise ValueError(f"values must be unique, got {values}")
        return values

    @model_validator(mode="after")
    def _options_name_methods(self) -> DistillSpec:
        extra = sorted(set(self.method_options) - set(self.methods))
        if extra:
            raise ValueError(f"method_options for methods not in 'methods': {', '.join(extra)}")
        return self


class AuditSpec(_Strict):
    """Settings of the end-of-sweep audit (SPEC §4, §6)."""

    level: float = Field(0.05, gt=0, lt=1)  # significance level of the Welch tests; paper: 0.05
    # kNN space of individual fairness (SPEC §6): "auto" / "teacher" = the teacher's penultimate features
    # (auto skips with a note where there are none), "input" = <sweep>/representation.npz (the standardised
    # test inputs: pixel neighbours share the colour, not the label), "none" = skip kNN individual fairness
    representation: Literal["auto", "input", "teacher", "none"] = "auto"


class SweepConfig(_Strict):
    """A whole sweep: data set(s), model pair(s), training recipe, DS grid, seeds, audit and report."""

    name: str  # a label for the sweep (letters, digits, _.+-)
    data: DataConfig | list[DataConfig]  # one data set, or a list for a grid over data sets
    teacher: TeacherSpec | None = None
    student: StudentSpec | None = None
    pairs: list[PairSpec] | None = None  # a grid over model pairs, instead of teacher/student
    train: TrainConfig = TrainConfig()  # the recipe of every run; SPEC §3 defaults
    teacher_train: dict[str, Any] = {}  # overrides of `train` for the teacher runs only
    distill: DistillSpec = DistillSpec()
    seeds: list[Seed] = Field([0, 1, 2, 3, 4], min_length=1)  # paper: 5 seeds
    include_nds: bool = True  # train the non-distilled students (needed for #SC)
    audit: AuditSpec = AuditSpec()
    report: bool = True  # build the report after the audit

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"must be letters, digits and _.+- (got {value!r})")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError(f"values must be unique, got {values}")
        return values

    @model_validator(mode="after")
    def _pairs_xor(self) -> SweepConfig:
        single = self.teacher is not None or self.student is not None
        if self.pairs is not None and single:
            raise ValueError("give either 'teacher' and 'student', or 'pairs', not both")
        if self.pairs is None and (self.teacher is None or self.student is None):
            raise ValueError("'teacher' and 'student' are required (or a list of 'pairs')")
        if self.pairs is not None and not self.pairs:
            raise ValueError("'pairs' must not be empty")
        if isinstance(self.data, list) and not self.data:
            raise ValueError("'data' must not be empty")
        return self

    @property
    def data_list(self) -> list[DataConfig]:
        """The data sets of the grid (one for a single data set)."""
        return list(self.data) if isinstance(self.data, list) else [self.data]

    @property
    def pair_list(self) -> list[PairSpec]:
        """The model pairs of the grid (one for a single teacher/student)."""
        if self.pairs is not None:
            return list(self.pairs)
        assert self.teacher is not None and self.student is not None
        return [PairSpec(teacher=self.teacher, student=self.student)]

    def teacher_train_config(self) -> TrainConfig:
        """``train`` with ``teacher_train`` applied: the teacher runs' recipe."""
        return TrainConfig.model_validate({**self.train.model_dump(), **self.teacher_train})


def parse_sweep_config(
    raw: Any, source: str = "sweep config", *, check: bool = True, files: bool = True
) -> SweepConfig:
    """Validate ``raw`` (the parsed YAML) as a :class:`SweepConfig`.

    Every error is a one-line ConfigError ``<source>: <key path>: <message>``. With ``check`` (default),
    names, method options and (with ``files``) files are checked too (:func:`check_sweep_config`).
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from exc
    except KdfairError as exc:  # raised by a nested model's own validator (e.g. train.milestones)
        raise ConfigError(f"{source}: {exc}") from exc
    try:
        config.teacher_train_config()
    except ValidationError as exc:
        raise ConfigError(f"{source}: teacher_train.{_first_error(exc)}") from exc
    except KdfairError as exc:
        raise ConfigError(f"{source}: teacher_train: {exc}") from exc
    if check:
        check_sweep_config(config, source, files=files)
    return config


def load_sweep_config(path: str | Path, *, check: bool = True, files: bool = True) -> SweepConfig:
    """Read and validate the YAML sweep config at ``path`` (see :func:`parse_sweep_config`)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"sweep config not found: {file}")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{file}: invalid YAML{where}: {problem}") from exc
    return parse_sweep_config(raw, str(file), check=check, files=files)


def check_sweep_config(config: SweepConfig, source: str = "sweep config", *, files: bool = True) -> None:
    """Check names against the registries, method options and, with ``files``, teacher and data files.

    Imports the registries lazily (they pull in torch); no data set is loaded beyond its file check.
    ``files=False`` validates a config written for another machine (``configs/paper``).
    """
    from kdfair.sweep.checks import check_data, check_method, check_model, check_path

    try:
        for index, data in enumerate(config.data_list):
            check_data(data, f"data[{index}]" if isinstance(config.data, list) else "data", files=files)
        for index, pair in enumerate(config.pair_list):
            where = f"pairs[{index}]." if config.pairs is not None else ""
            if pair.teacher.model is not None:
                check_model(pair.teacher.model, f"{where}teacher.model", pair.teacher.options)
            check_model(pair.student.model, f"{where}student.model", pair.student.options)
            if not files:
                continue
            for seed in config.seeds:
                check_path(pair.teacher.path_for_seed(seed), f"{where}teacher.path")
                check_path(pair.teacher.pretrained, f"{where}teacher.pretrained")
            check_path(pair.student.pretrained, f"{where}student.pretrained")
        for method in config.distill.methods:
            check_method(method, config.distill.method_options.get(method))
    except KdfairError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _first_error(exc: ValidationError) -> str:
    """``<key path>: <message>`` of pydantic's first error (union branches collapsed)."""
    first = exc.errors()[0]
    parts = [str(p) for p in first["loc"] if not _is_union_tag(p)]
    where = ".".join(parts).replace(".[", "[") or "(root)"
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def _is_union_tag(part: Any) -> bool:
    """pydantic adds the union member's name (``DataConfig``, ``list[DataConfig]``) to error locations."""
    return isinstance(part, str) and (part[:1].isupper() or part.startswith("list["))
