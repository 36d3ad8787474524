"""The audit from Python: predictions in memory in, an :class:`~kdfair.audit.engine.AuditResult` out.

For models evaluated in a notebook or a harness of one's own, without run folders::

    from kdfair.audit import Run, audit_predictions

    result = audit_predictions([
        Run(role="teacher", seed=0, y_true=y, logits=teacher_logits, attributes={"sex": sex}),
        Run(role="nds", seed=0, y_true=y, probs=student_probs, attributes={"sex": sex}),
        ...
    ])
    result.summary              # a pandas DataFrame: the rows of summary.csv
    result.tables               # every table by file stem; result.info is audit.json
    result.write("my_audit")    # the folder `kdfair audit` writes, which `kdfair report` reads

or one tidy DataFrame with a row per (run, sample) (:func:`audit_predictions`, :data:`RUN_COLUMNS`).

A run is checked as ``kdfair audit`` checks a run folder: its identity as ``run.json``
(:class:`~kdfair.predictions.RunMeta`), its arrays as ``predictions.npz``
(:func:`~kdfair.predictions.validate_arrays`), every run against the reference run; and it is audited by
the same engine (:func:`~kdfair.audit.engine.audit_run_set`). On the same predictions the tables equal the
CLI's. In ``audit.json`` (and in error messages) a run's folder is ``<memory>/<name>``.

What only run folders give: convergence (``epochs.csv``), counterfactual twins (``counterfactual.npz``) and
``representation="input"`` (the sweep's ``representation.npz``); audit a folder for those
(:func:`kdfair.audit.engine.audit_runs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from kdfair.audit.conditions import condition_id
from kdfair.audit.engine import AuditResult, RunSet, audit_run_set
from kdfair.audit.options import AuditOptions, representation_option
from kdfair.errors import PredictionFormatError
from kdfair.metrics.noise import DEFAULT_PERMUTATIONS
from kdfair.prediction_tables import frame_arrays, label_array
from kdfair.predictions import RunMeta, RunPredictions, parse_run_meta, predictions_from_arrays
from kdfair.runfolder import ATTR_PREFIX

MEMORY_ROOT = Path(
    "<memory>"
)  # the runs folder an in-memory audit records; a run's folder is <memory>/<name>
# the tidy DataFrame's columns that say which run a row belongs to (run.json's fields); the others are the
# table layout of kdfair.prediction_tables (sample_id, y_true, logit_<c> | prob_<c>, attr_<name>, ...)
RUN_COLUMNS = ("run", "role", "seed", "method", "temperature", "alpha", "model", "dataset")
_SCALAR_META = ("role", "seed", "method", "temperature", "alpha", "model", "dataset")  # run.json's scalars


@dataclass(frozen=True)
class Run:
    """One run's test-set predictions (the fields of ``run.json`` and the arrays of ``predictions.npz``).

    ``role``: ``"teacher"``, ``"nds"`` or ``"ds"``; ``seed``: int >= 0 (DS seed s is paired with teacher
    seed s); ``temperature`` and ``alpha``: required for a DS, absent otherwise; ``method``: default ``ce``
    (teacher, NDS) or ``kd`` (DS). ``y_true``: (N,) class indices in [0, C). Exactly one of ``logits`` and
    ``probs``: (N, C) floats. ``attributes``: protected attribute name -> (N,) group labels (int or str;
    fairlearn's ``sensitive_features``). ``sample_id``: (N,) unique ids, by which runs are aligned (default
    ``0..N-1``: every run in the same sample order). ``features``: (N, d), optional; the teacher's define
    the kNN pairs of individual fairness. ``name``: the run's name in the tables' warnings and
    ``audit.json`` (default ``<condition>_s<seed>``, e.g. ``ds_kd_T4_a0.8_s0``, as kdfair names run folders).
    """

    role: str
    seed: int
    y_true: ArrayLike
    logits: ArrayLike | None = None
    probs: ArrayLike | None = None
    attributes: Mapping[str, ArrayLike] = field(default_factory=dict)
    sample_id: ArrayLike | None = None
    features: ArrayLike | None = None
    method: str | None = None
    temperature: float | None = None
    alpha: float | None = None
    model: str | None = None
    dataset: str | None = None
    class_names: Sequence[str] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def meta(self, where: str) -> RunMeta:
        """The run's ``run.json`` fields, validated as a ``run.json`` is (errors prefixed with ``where``)."""
        raw = {key: _scalar(getattr(self, key)) for key in _SCALAR_META}
        raw["settings"] = dict(self.settings)
        if self.class_names is not None:
            raw["class_names"] = [str(c) for c in self.class_names]
        return parse_run_meta({k: v for k, v in raw.items() if v is not None}, where)

    def arrays(self, where: str) -> dict[str, np.ndarray]:
        """The run's arrays in the ``predictions.npz`` layout (not yet validated)."""
        y_true = np.asarray(self.y_true)
        named = {"y_true": y_true, "logits": self.logits, "probs": self.probs, "features": self.features}
        arrays = {key: np.asarray(value) for key, value in named.items() if value is not None}
        ids = np.arange(len(y_true)) if self.sample_id is None else np.asarray(self.sample_id)
        arrays["sample_id"] = label_array(ids, "sample_id", where)
        for name, values in self.attributes.items():
            key = f"{ATTR_PREFIX}{name}"
            arrays[key] = label_array(np.asarray(values), key, where)
        return arrays


def audit_predictions(
    runs: Sequence[Run | Mapping[str, Any]] | pd.DataFrame,
    *,
    level: float = 0.05,
    representation: str | Path | None = None,
    k: int = 5,
    jobs: int | None = None,
    progress: bool = False,
    auroc: str = "auto",
    permutations: int = DEFAULT_PERMUTATIONS,
) -> AuditResult:
    """Audit runs held in memory; the result of ``kdfair audit`` on the same predictions (module docstring).

    ``runs``: :class:`Run` objects (or dicts of their fields), or one tidy DataFrame with a row per (run,
    sample): the columns of :data:`RUN_COLUMNS` that identify a run (``role`` and ``seed`` required;
    ``method``, ``temperature``, ``alpha``, ``model``, ``dataset`` as in ``run.json``, empty where absent;
    ``run``: a name, else a run is one ``(role, method, temperature, alpha, seed)``) and the columns of
    ``predictions.csv`` (README, "Prediction format": ``sample_id`` -- optional here, default the row order
    within each run --, ``y_true``, ``logit_<c>`` or ``prob_<c>`` or a list column ``logits`` / ``probs``,
    ``attr_<name>``, optional ``feature_<j>`` or ``features``).

    Options as for :func:`kdfair.audit.engine.audit_runs`, whose docstring gives their meaning;
    ``representation`` is ``"auto"`` (default), ``"teacher"``, ``"none"`` or the path of an npz with
    ``sample_id`` and ``x``. Nothing is written; :meth:`AuditResult.write` writes the audit folder. Bad
    input raises :class:`~kdfair.errors.PredictionFormatError` naming the run and what is wrong. The options
    are recorded in ``info["options"]`` (:mod:`kdfair.audit.options`).
    """
    options = AuditOptions(
        level=level,
        representation=representation_option(representation),
        k=k,
        auroc=auroc,
        permutations=permutations,
    )
    if options.representation == "input":
        raise PredictionFormatError(
            "representation 'input' reads RUNS_DIR/representation.npz of a runs folder; in memory, pass "
            "the path of an npz with arrays sample_id and x, or 'auto' (the teacher's features)"
        )
    if isinstance(runs, pd.DataFrame):
        runs = runs_from_frame(runs)
    loaded = [_load(run if isinstance(run, Run) else _as_run(run, i), i) for i, run in enumerate(runs)]
    if not loaded:
        raise PredictionFormatError("no runs to audit")
    seen: dict[Path, int] = {}
    for i, run in enumerate(loaded):
        if run.path in seen:
            raise PredictionFormatError(
                f"runs[{seen[run.path]}] and runs[{i}] are both named {run.path.name!r}: a condition has one "
                "run per seed (give each run its own name)"
            )
        seen[run.path] = i
    run_set = RunSet(
        MEMORY_ROOT, [(run.path, run.meta) for run in loaded], preloaded={run.path: run for run in loaded}
    )
    return audit_run_set(run_set, options, jobs=jobs, progress=progress)


def _as_run(fields: Mapping[str, Any], index: int) -> Run:
    unknown = sorted(set(fields) - set(Run.__dataclass_fields__))
    if unknown:
        raise PredictionFormatError(
            f"runs[{index}]: unknown field(s) {', '.join(unknown)}; "
            f"valid: {', '.join(Run.__dataclass_fields__)}"
        )
    missing = [key for key in ("role", "seed", "y_true") if key not in fields]
    if missing:
        raise PredictionFormatError(f"runs[{index}]: missing field(s) {', '.join(missing)}")
    return Run(**fields)


def _load(run: Run, index: int) -> RunPredictions:
    """Validate one run as ``kdfair audit`` validates a run folder; errors name ``<memory>/<name>``."""
    label = f"runs[{index}]" if run.name is None else f"{MEMORY_ROOT / run.name}"
    meta = run.meta(f"{label} (role {run.role!r}, seed {run.seed!r})")
    run_dir = MEMORY_ROOT / (run.name or f"{condition_id(meta)}_s{meta.seed}")
    return predictions_from_arrays(run.arrays(str(run_dir)), run_dir, run_dir, meta)


def runs_from_frame(frame: pd.DataFrame) -> list[Run]:
    """The runs of a tidy DataFrame (one row per run and sample; :func:`audit_predictions`)."""
    for column in ("role", "seed"):
        if column not in frame.columns:
            raise PredictionFormatError(
                f"DataFrame: missing column '{column}' (has: {', '.join(map(str, frame.columns))})"
            )
    identity = [c for c in RUN_COLUMNS if c in frame.columns]
    keys = (
        ["run"]
        if "run" in identity
        else [c for c in ("role", "method", "temperature", "alpha", "seed") if c in identity]
    )
    runs = []
    for _, rows in frame.groupby(keys, sort=False, dropna=False):
        fields = {}
        for column in identity:
            values = rows[column].drop_duplicates()
            if len(values) > 1:
                raise PredictionFormatError(
                    f"DataFrame: run {rows[keys[0]].iloc[0]!r} has several values in column '{column}' "
                    f"({', '.join(map(str, values.iloc[:3]))})"
                )
            value = _scalar(values.iloc[0])
            if value is not None:
                fields["name" if column == "run" else column] = value
        table = rows.drop(columns=identity)
        if "sample_id" not in table.columns:
            table = table.assign(sample_id=np.arange(len(table)))
        where = f"DataFrame run {fields.get('name', fields.get('role'))!r} seed {fields.get('seed')!r}"
        arrays = frame_arrays(table.reset_index(drop=True), where)
        runs.append(_run_from_arrays(fields, arrays))
    return runs


def _run_from_arrays(fields: dict[str, Any], arrays: dict[str, np.ndarray]) -> Run:
    attributes = {k[len(ATTR_PREFIX) :]: v for k, v in arrays.items() if k.startswith(ATTR_PREFIX)}
    data = {k: v for k, v in arrays.items() if not k.startswith(ATTR_PREFIX)}
    return Run(**fields, **data, attributes=attributes)


def _scalar(value: Any) -> Any:
    """A field or DataFrame cell as a plain Python value; missing (None, NaN, pandas' NA) as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
