"""The per-run folder (ARCHITECTURE.md "Per-run folder") and the sweep's ``representation.npz``.

``runs/<run_id>/`` holds config.json, environment.json, epochs.csv, checkpoint.pt, predictions.npz, run.json
and DONE, written last. Every file is written atomically; leftover ``.*.tmp`` files of an interrupted write
are removed when the run starts again. An unreadable checkpoint restarts the run with a warning.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kdfair.data.base import Dataset
from kdfair.errors import ConfigError, KdfairWarning
from kdfair.io import atomic_path, environment_info, save_npz_atomic
from kdfair.runfolder import (
    CHECKPOINT_PT,
    CONFIG_JSON,
    REPRESENTATION_NPZ,
    is_done,
    run_path,
    teacher_features_path,
    write_config,
    write_environment,
    write_epochs,
    write_finished,
)
from kdfair.train.config import RunConfig, comparable_config

CHECKPOINT_FORMAT = "kdfair-checkpoint-1"
REPRESENTATION_MAX_SIDE = 16  # images are average-pooled to at most 16x16 before flattening


class RunFolder:
    """``<sweep_dir>/runs/<run_id>``; ``writer=False`` (DDP ranks > 0) makes every write a no-op."""

    def __init__(self, sweep_dir: str | Path, run_id: str, *, writer: bool = True) -> None:
        self.path = run_path(sweep_dir, run_id)
        self.run_id, self.writer = run_id, writer

    @property
    def done(self) -> bool:
        return is_done(self.path)

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_PT

    def start(self, config: RunConfig, device: str) -> None:
        """Create the folder, remove stale temporary files, write config.json and environment.json.

        An existing config.json that differs from ``config`` is a ConfigError (the folder belongs to another
        run), so a changed recipe needs a new sweep folder or run id. Both sides are compared with defaults
        filled in (:func:`comparable_config`): a key added to the config later, with a default that keeps the
        old behaviour, does not stop older folders from resuming.
        """
        if not self.writer:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        resolved = json.loads(config.model_dump_json())
        existing = self.path / CONFIG_JSON
        if existing.exists():
            try:
                previous = json.loads(existing.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                previous = None
            if previous is not None and comparable_config(previous) != comparable_config(resolved):
                raise ConfigError(f"{existing}: holds a different config for run '{self.run_id}'")
        write_config(self.path, resolved)
        write_environment(self.path, environment_info(device))

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last epoch's checkpoint, or None when absent or unreadable (with a KdfairWarning)."""
        if not self.checkpoint_path.exists():
            return None
        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
            if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                raise ValueError("not a kdfair checkpoint")
        except Exception as exc:  # noqa: BLE001 - any unreadable file means: start over
            warnings.warn(
                f"{self.checkpoint_path}: unreadable checkpoint ({type(exc).__name__}); restarting run",
                KdfairWarning,
                stacklevel=2,
            )
            return None
        return state

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        if not self.writer:
            return
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)

    def write_epochs(self, history: list[dict[str, Any]]) -> None:
        """Rewrite epochs.csv from the per-epoch rows (columns: union of the rows' keys, first-seen order)."""
        if self.writer:
            write_epochs(self.path, history)

    def finish(self, predictions: dict[str, np.ndarray], run_meta: dict[str, Any]) -> None:
        """Write predictions.npz, run.json and then DONE (last)."""
        if self.writer:
            write_finished(self.path, predictions, run_meta)


def write_representation(dataset: Dataset, sweep_dir: str | Path) -> Path | None:
    """Write ``sweep_dir/representation.npz`` once: ``sample_id`` and ``x``, the standardised test inputs.

    Images are average-pooled to at most 16x16, flattened and standardised per column over the test split
    (zero mean, unit standard deviation; constant columns are left at 0). This is SPEC §6's default
    representation for individual fairness. Token-id data is skipped (returns None).
    """
    target = Path(sweep_dir) / REPRESENTATION_NPZ
    if dataset.modality != "image":
        return None
    if target.exists():
        return target
    split = dataset.split("test")
    chunks = []
    for start in range(0, len(split), 2048):
        index = np.arange(start, min(start + 2048, len(split)), dtype=np.int64)
        images = torch.from_numpy(np.asarray(split.inputs[index], dtype=np.float32)).permute(0, 3, 1, 2)
        side = images.shape[-1]
        if side > REPRESENTATION_MAX_SIDE:
            images = F.adaptive_avg_pool2d(images, REPRESENTATION_MAX_SIDE)
        chunks.append(images.flatten(1).numpy().astype(np.float64))
    x = np.concatenate(chunks)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    save_npz_atomic(target, sample_id=np.asarray(split.sample_ids), x=x.astype(np.float32))
    return target


def write_teacher_features(
    sweep_dir: str | Path, seed: int, sample_id: np.ndarray, features: np.ndarray, weights_sha256: str
) -> Path:
    """Write ``sweep_dir/teacher_features_s<seed>.npz``: ``sample_id``, ``x`` (seed ``seed``'s checkpoint
    teacher's penultimate features on the test split) and ``weights_sha256``; kept when it already holds
    these weights' features.

    A sweep whose teacher is a checkpoint has no teacher run folder, so without this file its audit has no
    teacher features for the kNN pairs of individual fairness (SPEC §6) and skips them. One file per seed,
    as a teacher run per seed would hold its own: the DS units of a seed (the only writers of its file) all
    distil from the same checkpoint, so units running at once never write different contents to one file,
    and the audit takes the lowest seed's, as it takes the first teacher seed's run.
    """
    target = teacher_features_path(sweep_dir, seed)
    if target.exists():
        with np.load(target, allow_pickle=False) as npz:
            if "weights_sha256" in npz.files and str(npz["weights_sha256"]) == weights_sha256:
                return target
    save_npz_atomic(
        target,
        sample_id=np.asarray(sample_id),
        x=np.asarray(features, dtype=np.float32).reshape(len(features), -1),
        weights_sha256=np.asarray(weights_sha256),
    )
    return target
