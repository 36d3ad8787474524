"""Expand a sweep config into run configs and units of work (SPEC §1).

A *unit* is one call of :func:`kdfair.train.runner.execute`: a single teacher or NDS run, or the DS runs of
one seed that share a teacher and can be trained in lockstep (one teacher pass per batch feeds every
(method, T, alpha)). Teachers come first; DS seed ``s`` learns from teacher seed ``s``, so a DS unit depends
on that teacher's unit. A grid over data sets or model pairs gives one sub-sweep folder each
(``<out>/<data>__<teacher>-<student>/``); a single data set and pair writes directly into ``<out>``.

Run ids: ``teacher_s0``, ``nds_s0``, ``ds_<method>_T<T:g>_a<alpha:g>_s0`` (ARCHITECTURE "Conditions").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kdfair.errors import ConfigError
from kdfair.runfolder import is_done, run_path
from kdfair.sweep.config import PairSpec, SweepConfig, TeacherSpec
from kdfair.train.config import DataConfig, ModelConfig, RunConfig, TeacherSource, make_run_id

UnitStatus = Literal["done", "partial", "pending"]


@dataclass(frozen=True)
class Unit:
    """One call of the trainer: runs trained together, after the units in ``depends_on`` are done."""

    unit_id: str  # e.g. "teacher_s0", "ds_s0"; prefixed with "<sub-sweep>/" in a grid
    sweep_dir: Path  # the (sub-)sweep folder that holds runs/
    runs: tuple[RunConfig, ...]
    depends_on: tuple[str, ...] = ()

    @property
    def run_ids(self) -> list[str]:
        return [run.run_id for run in self.runs]

    def run_dir(self, run_id: str) -> Path:
        return run_path(self.sweep_dir, run_id)

    def unfinished(self) -> list[str]:
        """Run ids of this unit whose folder has no DONE marker yet."""
        return [r for r in self.run_ids if not is_done(self.run_dir(r))]

    def status(self) -> UnitStatus:
        """From disk: ``done`` (every run has DONE), ``partial`` (some run folder exists) or ``pending``."""
        unfinished = self.unfinished()
        if not unfinished:
            return "done"
        return "partial" if any(self.run_dir(r).exists() for r in self.run_ids) else "pending"


@dataclass(frozen=True)
class SubSweep:
    """The sweep of one (data set, model pair): its folder, its resolved config and its units."""

    key: str  # "<data>__<teacher>-<student>", or "" when the sweep has a single data set and pair
    out_dir: Path
    config: SweepConfig  # the sweep config restricted to this data set and pair
    units: tuple[Unit, ...]


@dataclass(frozen=True)
class Plan:
    """Every sub-sweep of a sweep, and all units in the order to start them (teachers first)."""

    out_dir: Path
    config: SweepConfig
    subsweeps: tuple[SubSweep, ...]

    @property
    def units(self) -> list[Unit]:
        every = [u for sub in self.subsweeps for u in sub.units]
        rank = {"teacher": 0, "nds": 1, "ds": 2}
        return sorted(every, key=lambda u: rank[u.runs[0].role])  # stable: keeps the order within a role

    @property
    def runs(self) -> list[RunConfig]:
        return [run for unit in self.units for run in unit.runs]


def subsweep_key(data: DataConfig, pair: PairSpec) -> str:
    """The sub-sweep folder name ``<data>__<teacher>-<student>``; a black-box teacher (source ``outputs``)
    is named by its outputs file, e.g. ``celeba__flava_celeba-resnet18``."""
    teacher = pair.teacher.model
    if teacher is None:
        stem = Path(pair.teacher.path or "outputs").name.split(".")[0].replace("{seed}", "")
        teacher = re.sub(r"[^A-Za-z0-9_.+]", "_", stem).strip("_") or "outputs"
    return f"{data.name}__{teacher}-{pair.student.model}"


def expand(config: SweepConfig, out_dir: str | Path, *, lockstep: bool = True) -> Plan:
    """The plan of ``config`` under ``out_dir``; ``lockstep=False`` makes every DS run its own unit."""
    out = Path(out_dir)
    grid = [(data, pair) for data in config.data_list for pair in config.pair_list]
    keys = [subsweep_key(data, pair) for data, pair in grid]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ConfigError(f"two grid entries share the sub-sweep folder {duplicates[0]}; give distinct names")
    single = len(grid) == 1
    subsweeps = []
    for (data, pair), key in zip(grid, keys, strict=True):
        sub_config = config.model_copy(
            update={
                "data": data,
                "teacher": pair.teacher,
                "student": pair.student,
                "pairs": None,
            }
        )
        sub_dir = out if single else out / key
        prefix = "" if single else f"{key}/"
        units = tuple(_units(sub_config, pair, sub_dir, prefix, lockstep))
        subsweeps.append(SubSweep(key="" if single else key, out_dir=sub_dir, config=sub_config, units=units))
    return Plan(out_dir=out, config=config, subsweeps=tuple(subsweeps))


def _units(
    config: SweepConfig, pair: PairSpec, sweep_dir: Path, prefix: str, lockstep: bool
) -> Iterator[Unit]:
    data = config.data_list[0]
    teacher_ids: dict[int, str] = {}
    if pair.teacher.source == "train":
        teacher_model = ModelConfig(
            name=pair.teacher.model, options=pair.teacher.options, pretrained=pair.teacher.pretrained
        )
        for seed in config.seeds:
            run = RunConfig(
                run_id=make_run_id("teacher", "ce", None, None, seed),
                role="teacher",
                seed=seed,
                data=data,
                model=teacher_model,
                train=config.teacher_train_config(),
            )
            teacher_ids[seed] = prefix + run.run_id
            yield Unit(prefix + run.run_id, sweep_dir, (run,))
    student_model = ModelConfig(
        name=pair.student.model, options=pair.student.options, pretrained=pair.student.pretrained
    )
    if config.include_nds:
        for seed in config.seeds:
            run = RunConfig(
                run_id=make_run_id("nds", "ce", None, None, seed),
                role="nds",
                seed=seed,
                data=data,
                model=student_model,
                train=config.train,
            )
            yield Unit(prefix + run.run_id, sweep_dir, (run,))
    for seed in config.seeds:
        runs = list(_ds_runs(config, data, student_model, pair.teacher, seed))
        depends = (teacher_ids[seed],) if seed in teacher_ids else ()
        if not lockstep:
            for run in runs:
                yield Unit(prefix + run.run_id, sweep_dir, (run,), depends)
            continue
        groups: dict[str, list[RunConfig]] = {}
        for run in runs:
            groups.setdefault(run.lockstep_key(), []).append(run)
        for index, group in enumerate(groups.values()):
            suffix = "" if len(groups) == 1 else f"_g{index}"
            yield Unit(f"{prefix}ds_s{seed}{suffix}", sweep_dir, tuple(group), depends)


def _ds_runs(
    config: SweepConfig, data: DataConfig, student: ModelConfig, teacher: TeacherSpec, seed: int
) -> Iterator[RunConfig]:
    source = _teacher_source(teacher, seed)
    distill = config.distill
    for method in distill.methods:
        for temperature in distill.temperatures:
            for alpha in distill.alphas:
                yield RunConfig(
                    run_id=make_run_id("ds", method, temperature, alpha, seed),
                    role="ds",
                    seed=seed,
                    data=data,
                    model=student,
                    train=config.train,
                    method=method,
                    method_options=distill.method_options.get(method, {}),
                    temperature=temperature,
                    alpha=alpha,
                    t2_scaling=distill.t2_scaling,
                    teacher=source,
                    attribute=distill.attribute,
                )


def _teacher_source(teacher: TeacherSpec, seed: int) -> TeacherSource:
    if teacher.source == "train":
        return TeacherSource(kind="run", run_id=make_run_id("teacher", "ce", None, None, seed))
    path = str(Path(teacher.path_for_seed(seed) or "").resolve())
    if teacher.source == "checkpoint":
        model = ModelConfig(name=teacher.model, options=teacher.options)
        return TeacherSource(kind="checkpoint", path=path, model=model)
    return TeacherSource(kind="outputs", path=path)
