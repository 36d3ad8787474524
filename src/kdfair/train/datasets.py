"""The data a run trains on, loaded once per process, and its input normalisation: the lowest floor of
kdfair.train that touches data (the runner and the twin writer both use it).

Tests and scripts that train on in-memory data replace :func:`load_data` on this module
(``kdfair.train.datasets.load_data = ...``); every caller looks it up here at call time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdfair.data.base import Dataset
from kdfair.train.augment import channel_stats
from kdfair.train.config import DataConfig, RunConfig

_DATASETS: dict[str, Dataset] = {}  # per-process cache: DataConfig JSON -> loaded data set
_STATS: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}


def load_data(config: DataConfig) -> Dataset:
    """Load (once per process) the data set named by ``config`` through ``kdfair.data.registry``."""
    key = config.model_dump_json()
    if key not in _DATASETS:
        from kdfair.data.registry import load_dataset

        root = Path(config.root) if config.root is not None else None
        _DATASETS[key] = load_dataset(config.name, root, dict(config.options), seed=config.seed)
    return _DATASETS[key]


def normalization(config: RunConfig, dataset: Dataset) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-channel mean/std in [0, 1] units: of the train split (cached), or None for 0.5/0.5."""
    if dataset.modality != "image" or config.train.normalize == "half":
        return None, None
    key = (config.data.model_dump_json(), "train")
    if key not in _STATS:
        _STATS[key] = channel_stats(dataset.split("train"))
    return _STATS[key]
