"""The run folder's file names, and its small readers and writers, in one place (the ground floor: imports
only :mod:`kdfair.io`).

A run folder (``<sweep>/runs/<run_id>/``, or any folder of runs trained elsewhere) holds:

- ``config.json`` (the resolved run config) and ``environment.json`` (versions, git revision, device);
- ``epochs.csv`` (one row per epoch) and ``checkpoint.pt`` (the last epoch's weights and optimizer state);
- ``run.json`` and one predictions file: ``predictions.npz``, or the same columns as a table in
  ``predictions.parquet`` or ``predictions.csv``; each protected attribute is an array or column
  ``attr_<name>``;
- optionally ``counterfactual.npz`` (the predictions of counterfactual twins);
- ``DONE``, the completion marker, written last (:func:`write_finished`).

A sweep folder holds ``environment.json`` and ``representation.npz`` beside ``runs/``, and an audit writes
``audit/`` with ``audit.json`` (the names of the audit's tables belong to :mod:`kdfair.audit.write`
``AUDIT_FILES``: no other stage looks them up by name). :mod:`kdfair.predictions` reads and checks the
predictions, :mod:`kdfair.prediction_tables` reads the tables, :mod:`kdfair.discovery` finds the folders,
:class:`kdfair.train.rundir.RunFolder` writes a training run's folder. No other module spells these names
(tests/test_runfolder_names.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kdfair.io import save_npz_atomic, write_json_atomic, write_text_atomic

CONFIG_JSON = "config.json"  # the resolved run config (kdfair.train.config.RunConfig as JSON)
ENVIRONMENT_JSON = "environment.json"  # kdfair.io.environment_info(), per run and per sweep folder
EPOCHS_CSV = "epochs.csv"  # one row per epoch: epoch, lr, train_loss, train_acc, ... (kdfair.audit.health)
CHECKPOINT_PT = "checkpoint.pt"  # the last finished epoch's state (kdfair.train.rundir.CHECKPOINT_FORMAT)
RUN_JSON = "run.json"
PREDICTIONS_NPZ = "predictions.npz"
PREDICTIONS_PARQUET = "predictions.parquet"
PREDICTIONS_CSV = "predictions.csv"
PREDICTION_FILES = (PREDICTIONS_NPZ, PREDICTIONS_PARQUET, PREDICTIONS_CSV)  # a run folder holds one of them
ATTR_PREFIX = "attr_"  # attr_<name>: a protected attribute's array (npz) or column (tables)
COUNTERFACTUAL_NPZ = "counterfactual.npz"  # the twins' predictions (kdfair.counterfactual)
DONE = "DONE"  # a sweep run's completion marker, written last (write_finished)
REPRESENTATION_NPZ = "representation.npz"  # a sweep's standardised test inputs (--representation input)
# a sweep's checkpoint teacher of seed s (no teacher run in the folder): its penultimate test features in
# teacher_features_s<seed>.npz, the default kNN space of individual fairness (SPEC §6), lowest seed first
TEACHER_FEATURES_GLOB = "teacher_features_s*.npz"

RUNS = "runs"  # a sweep's run folders: <sweep dir>/runs/<run_id>/

AUDIT_FOLDER = "audit"  # <runs_dir>/audit: where `kdfair audit RUNS_DIR` writes by default
AUDIT_JSON = "audit.json"  # an audit folder's metadata and recorded options (kdfair.audit.write)


def attr_key(attribute: str) -> str:
    """The array (npz) or column (tables) name of protected attribute ``attribute``: ``attr_<name>``."""
    return f"{ATTR_PREFIX}{attribute}"


def run_path(sweep_dir: str | Path, run_id: str) -> Path:
    """The folder of run ``run_id`` of the sweep in ``sweep_dir``: ``<sweep_dir>/runs/<run_id>``."""
    return Path(sweep_dir) / RUNS / run_id


def teacher_features_path(sweep_dir: str | Path, seed: int) -> Path:
    """``<sweep_dir>/teacher_features_s<seed>.npz``: seed ``seed``'s checkpoint teacher's test features."""
    return Path(sweep_dir) / TEACHER_FEATURES_GLOB.replace("*", str(int(seed)))


def teacher_features_files(sweep_dir: str | Path) -> list[Path]:
    """The sweep's ``teacher_features_s<seed>.npz`` files, lowest seed first."""
    found = []
    for path in Path(sweep_dir).glob(TEACHER_FEATURES_GLOB):
        seed = path.stem.rsplit("_s", 1)[-1]
        if seed.isdigit():
            found.append((int(seed), path))
    return [path for _, path in sorted(found)]


def is_done(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds the completion marker ``DONE`` (a finished run)."""
    return (Path(run_dir) / DONE).is_file()


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The parsed ``run_dir/config.json``, raw (:func:`kdfair.train.config.parse_run_config` types it)."""
    return json.loads((Path(run_dir) / CONFIG_JSON).read_text(encoding="utf-8"))


def write_config(run_dir: str | Path, resolved: Mapping[str, Any]) -> None:
    """Write ``run_dir/config.json`` atomically."""
    write_json_atomic(Path(run_dir) / CONFIG_JSON, dict(resolved))


def write_environment(folder: str | Path, environment: Mapping[str, Any]) -> None:
    """Write ``folder/environment.json`` (a run or a sweep folder) atomically."""
    write_json_atomic(Path(folder) / ENVIRONMENT_JSON, dict(environment))


def write_epochs(run_dir: str | Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite ``run_dir/epochs.csv`` atomically from the per-epoch rows (columns: the union of the rows'
    keys, in first-seen order)."""
    columns: list[str] = []
    for row in history:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(Path(run_dir) / EPOCHS_CSV, buffer.getvalue())


def write_finished(
    run_dir: str | Path,
    predictions: Mapping[str, np.ndarray],
    run_meta: Mapping[str, Any],
    done_text: str = "",
) -> None:
    """Write ``predictions.npz``, then ``run.json``, then ``DONE`` (last), each atomically: a crash at any
    point leaves a folder without ``DONE``, which the sweep trains again."""
    folder = Path(run_dir)
    save_npz_atomic(folder / PREDICTIONS_NPZ, **predictions)
    write_json_atomic(folder / RUN_JSON, dict(run_meta))
    write_text_atomic(folder / DONE, done_text)
