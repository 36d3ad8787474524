"""The counterfactual prediction format: ``counterfactual.npz`` beside a run's ``predictions.npz``.

A model's predictions of the *counterfactual twins* of test samples (SPEC §6): inputs that differ from a test
sample in one protected attribute only (Trifeature: the same shape, texture, position and rotation in
another colour; CIFAR-10S: the grey copy of a colour image and the other way round). ``kdfair sweep`` writes
it for data sets that can make twins (``Dataset.counterfactual``); a model trained elsewhere can supply it
too. It is optional: without it the audit has no counterfactual metrics for that run.

``counterfactual.npz`` arrays (M twins, C classes):
    sample_id     (M,) int or str, unique: the twin's own id
    source_id     (M,) int or str: the ``sample_id`` in ``predictions.npz`` of the test sample it is a twin
                  of (several twins may share a source)
    attribute     (M,) str: the protected attribute that was changed (e.g. ``colour``, ``grey``); use the
                  ``<name>`` of an ``attr_<name>`` array of ``predictions.npz``
    logits | probs (M, C) float, finite; exactly one of the two, as in ``predictions.npz``
    level         (M,) str, optional: the twin's level of ``attribute`` (e.g. ``blue``), for reading only

The pairing is explicit: twin ``j`` is compared with the test sample ``source_id[j]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdfair.errors import PredictionFormatError
from kdfair.io import save_npz_atomic
from kdfair.predictions import read_npz, softmax
from kdfair.runfolder import COUNTERFACTUAL_NPZ  # the file's name; importable from here too


@dataclass(frozen=True)
class CounterfactualPredictions:
    """One run's validated twin predictions (see the module docstring)."""

    path: Path
    sample_id: np.ndarray  # (M,)
    source_id: np.ndarray  # (M,)
    attribute: np.ndarray  # (M,) str
    probs: np.ndarray  # (M, C) float32 or float64

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[1])

    def fingerprint(self) -> str:
        """A short hash of the pairs (twin id, source id, attribute), in sorted order: runs with the same
        fingerprint were scored on the same twins."""
        order = np.argsort(self.sample_id, kind="stable")
        parts = (
            self.sample_id[order].tolist(),
            self.source_id[order].tolist(),
            self.attribute[order].tolist(),
        )
        return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]


def _scores(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The (M, C) probabilities from ``logits`` or ``probs``, validated."""
    if ("logits" in arrays) == ("probs" in arrays):
        raise PredictionFormatError(f"{path}: needs exactly one of 'logits' or 'probs'")
    key = "logits" if "logits" in arrays else "probs"
    scores = arrays[key]
    if scores.ndim != 2 or scores.shape[1] < 2 or not np.issubdtype(scores.dtype, np.floating):
        raise PredictionFormatError(f"{path}: '{key}' must be a float (M, C) array, C >= 2: {scores.shape}")
    if not np.isfinite(scores).all():
        raise PredictionFormatError(f"{path}: '{key}' has NaN or inf values")
    if key == "logits":
        return softmax(scores)
    if (scores < 0).any() or not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        raise PredictionFormatError(f"{path}: 'probs' rows must be non-negative and sum to 1")
    return scores.astype(np.float32, copy=False)


def load_counterfactual(run_dir: str | Path) -> CounterfactualPredictions | None:
    """Read and validate ``run_dir/counterfactual.npz``; None when the run has none.

    Raises :class:`PredictionFormatError` naming the problem. That every ``source_id`` is a test sample of
    the run is checked by the audit, which has the run's ``predictions.npz``.
    """
    path = Path(run_dir) / COUNTERFACTUAL_NPZ
    if not path.is_file():
        return None
    arrays = read_npz(path)
    for key in ("sample_id", "source_id", "attribute"):
        if key not in arrays:
            raise PredictionFormatError(f"{path}: missing array '{key}' (has: {', '.join(sorted(arrays))})")
    probs = _scores(path, arrays)
    n = len(probs)
    for key in ("sample_id", "source_id", "attribute"):
        if arrays[key].ndim != 1 or len(arrays[key]) != n:
            raise PredictionFormatError(f"{path}: '{key}' has shape {arrays[key].shape}, expected ({n},)")
    if len(np.unique(arrays["sample_id"])) != n:
        raise PredictionFormatError(f"{path}: 'sample_id' values are not unique")
    attribute = arrays["attribute"]
    if attribute.dtype.kind not in "UO" or (n and min(len(str(a)) for a in attribute) == 0):
        raise PredictionFormatError(f"{path}: 'attribute' must hold attribute names (non-empty strings)")
    return CounterfactualPredictions(
        path=path,
        sample_id=arrays["sample_id"],
        source_id=arrays["source_id"],
        attribute=attribute.astype(str),
        probs=probs,
    )


def save_counterfactual(
    run_dir: str | Path,
    *,
    sample_id: np.ndarray,
    source_id: np.ndarray,
    attribute: np.ndarray,
    logits: np.ndarray,
    level: np.ndarray | None = None,
) -> Path:
    """Write ``run_dir/counterfactual.npz`` atomically (arrays as in the module docstring); returns it."""
    arrays = {
        "sample_id": np.asarray(sample_id),
        "source_id": np.asarray(source_id),
        "attribute": np.asarray(attribute).astype(str),
        "logits": np.asarray(logits),
    }
    if level is not None:
        arrays["level"] = np.asarray(level).astype(str)
    path = Path(run_dir) / COUNTERFACTUAL_NPZ
    save_npz_atomic(path, **arrays)
    return path
