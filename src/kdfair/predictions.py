"""The prediction format: a folder of runs, each with ``run.json`` and one predictions file.

This is the boundary between training (kdfair's own or any other framework) and the audit. The format is
documented in the README ("Prediction format"); this module reads and validates it (:mod:`kdfair.discovery`
finds the run folders).
A run's predictions are ``predictions.npz`` (below), or the same columns as a table in ``predictions.parquet``
or ``predictions.csv`` (:mod:`kdfair.prediction_tables`); every form is checked by :func:`validate_arrays`.

``run.json`` fields:
    role          "teacher" | "nds" | "ds"                       (required)
    seed          int >= 0                                       (required)
    method        str, e.g. "kd", "bird"; default "ce" for teacher and nds, "kd" for ds
    temperature   float > 0, required for a DS, absent otherwise
    alpha         float in [0, 1], required for a DS, absent otherwise
    model, dataset          optional strings
    class_names             optional list of C strings
    settings                optional free-form object (epochs, device, image size, ...), shown in reports

``predictions.npz`` arrays:
    sample_id     (N,) int or str, unique
    y_true        (N,) int in [0, C)
    logits | probs (N, C) float, finite; probs rows are distributions
    attr_<name>   (N,) int or str, one array per protected attribute, at least two groups each
    features      (N, d) float, optional, for individual fairness
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from kdfair.errors import PredictionFormatError
from kdfair.extras import optional
from kdfair.runfolder import ATTR_PREFIX, PREDICTION_FILES, RUN_JSON

Role = Literal["teacher", "nds", "ds"]
ROLES: tuple[str, ...] = ("teacher", "nds", "ds")


class RunMeta(BaseModel):
    """The contents of ``run.json``, validated strictly (an unknown key is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    seed: int
    method: str | None = None
    temperature: float | None = None
    alpha: float | None = None
    model: str | None = None
    dataset: str | None = None
    class_names: list[str] | None = None
    settings: dict[str, Any] = {}

    @field_validator("seed")
    @classmethod
    def _seed_non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("seed must be >= 0")
        return value

    @model_validator(mode="after")
    def _check_role_fields(self) -> RunMeta:
        if self.role == "ds":
            if self.temperature is None or self.alpha is None:
                raise ValueError("a 'ds' run needs both 'temperature' and 'alpha'")
            if not (math.isfinite(self.temperature) and self.temperature > 0):
                raise ValueError(f"temperature must be > 0, got {self.temperature}")
            if not 0.0 <= self.alpha <= 1.0:
                raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        elif self.temperature is not None or self.alpha is not None:
            raise ValueError(f"a '{self.role}' run takes no 'temperature' or 'alpha'")
        if self.method is None:
            object.__setattr__(self, "method", "kd" if self.role == "ds" else "ce")
        return self

    @property
    def group_key(self) -> tuple[str, str, float | None, float | None]:
        """Runs with the same key are seeds of one experimental condition."""
        return (self.role, str(self.method), self.temperature, self.alpha)

    @property
    def label(self) -> str:
        """A short human-readable name of the condition, e.g. ``DS kd T=4 a=0.8``."""
        if self.role == "ds":
            return f"DS {self.method} T={self.temperature:g} a={self.alpha:g}"
        return self.role.upper() if self.role == "nds" else "Teacher"


@dataclass
class RunPredictions:
    """One run's validated predictions. Attributes are integer codes; ``attribute_levels`` names them."""

    path: Path
    meta: RunMeta
    sample_id: np.ndarray
    y_true: np.ndarray
    probs: np.ndarray
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    attribute_levels: dict[str, list[str]] = field(default_factory=dict)
    features: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[1])

    @property
    def y_pred(self) -> np.ndarray:
        return np.asarray(self.probs.argmax(axis=1), dtype=np.int64)


def parse_run_meta(raw: Any, where: str | Path) -> RunMeta:
    """Validate the contents of a ``run.json`` (``raw``, parsed JSON); errors are prefixed with ``where``."""
    if not isinstance(raw, dict):
        raise PredictionFormatError(f"{where}: expected a JSON object")
    try:
        return RunMeta.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or RUN_JSON
        msg = first["msg"]
        if first["type"] == "literal_error" and "role" in key:
            msg = f"unknown role {raw.get('role')!r}; expected one of {', '.join(ROLES)}"
        raise PredictionFormatError(f"{where}: {key}: {msg}") from exc


def read_run_meta(run_dir: str | Path) -> RunMeta:
    """Read and validate ``run_dir/run.json``."""
    path = Path(run_dir) / RUN_JSON
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PredictionFormatError(f"{path}: missing run.json") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PredictionFormatError(f"{path}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise PredictionFormatError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    return parse_run_meta(raw, path)


def _encode_groups(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    levels, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), [str(v) for v in levels.tolist()]


SOFTMAX_BLOCK_ROWS = 256  # rows per in-place softmax step: max, exp and sum stay in cache


def _as_float(scores: np.ndarray) -> np.ndarray:
    """A new float32 copy of ``scores`` (float64 stays float64).

    float16 is converted by torch where it is installed (the ``train`` extra; about 1.8x numpy 2.4's cast)
    into a numpy-allocated array (huge pages: a torch-allocated 200 MB array costs more in page faults than
    the cast), else by numpy. Both casts are exact, so the values are the same.
    """
    if scores.dtype == np.float16:
        torch = optional("torch")  # imported only here: ``kdfair --help`` does not load torch
        if torch is None:
            return scores.astype(np.float32)
        out = np.empty(scores.shape, dtype=np.float32)
        torch.from_numpy(out).copy_(torch.from_numpy(np.ascontiguousarray(scores)))
        return out
    return scores.astype(np.float64 if scores.dtype == np.float64 else np.float32, copy=True)


def _softmax_inplace(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``z`` in place, in blocks of ``SOFTMAX_BLOCK_ROWS`` rows; returns ``z``."""
    for start in range(0, len(z), SOFTMAX_BLOCK_ROWS):
        block = z[start : start + SOFTMAX_BLOCK_ROWS]
        block -= block.max(axis=1, keepdims=True)
        np.exp(block, out=block)
        block /= block.sum(axis=1, keepdims=True)
    return z


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (float64 inputs stay float64)."""
    return _softmax_inplace(_as_float(np.asarray(logits)))


def _all_finite(scores: np.ndarray, converted: np.ndarray | None) -> bool:
    """Whether every value of ``scores`` is finite; ``converted`` is its float copy, if one was made.

    Fast path: a row holding NaN or inf sums to NaN or inf, so finite row sums of ``converted`` prove every
    value finite (one cheap pass instead of ``isfinite`` on float16). Otherwise (possibly a float32 overflow
    of the sum) the exact check decides.
    """
    if converted is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(converted.sum(axis=1)).all():
                return True
    return bool(np.isfinite(scores).all())


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the npz at ``path``; :class:`PredictionFormatError` when it cannot be read.

    An array of Python objects (dtype ``object``, which ``np.savez`` pickles: e.g. ids from a pandas object
    column) is named with its dtype; kdfair never unpickles.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {}
            for key in npz.files:
                dtype = _stored_dtype(npz, key)
                if dtype is not None and dtype.hasobject:
                    raise PredictionFormatError(
                        f"{path}: array '{key}' has dtype {dtype} (pickled Python objects), which kdfair "
                        "does not load; save it as int or str, e.g. np.asarray(values, dtype=str)"
                    )
                arrays[key] = npz[key]
            return arrays
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as exc:
        raise PredictionFormatError(
            f"{path}: truncated or corrupt npz ({type(exc).__name__}: {exc})"
        ) from exc


def _stored_dtype(npz: Any, key: str) -> np.dtype | None:
    """The dtype in the header of member ``key`` of an open npz, or None when the header is unreadable."""
    try:
        with npz.zip.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            return np.dtype(read_header(member)[2])
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile):
        return None


def prediction_file(run_dir: str | Path) -> Path:
    """The one predictions file of ``run_dir`` (``PREDICTION_FILES``); an error when there is none or more."""
    run_dir = Path(run_dir)
    present = [run_dir / name for name in PREDICTION_FILES if (run_dir / name).is_file()]
    if not present:
        raise PredictionFormatError(
            f"{run_dir}: missing predictions.npz (or predictions.parquet, predictions.csv)"
        )
    if len(present) > 1:
        names = ", ".join(p.name for p in present)
        raise PredictionFormatError(
            f"{run_dir}: has {names}; a run folder holds one predictions file (after kdfair convert, "
            "remove the table it read, or convert with --replace)"
        )
    return present[0]


def read_prediction_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a predictions file in the npz layout, not yet validated (a table is read by
    :mod:`kdfair.prediction_tables`)."""
    path = Path(path)
    if path.suffix == ".npz":
        return read_npz(path)
    from kdfair.prediction_tables import read_table  # pandas only for tables

    return read_table(path)


def load_predictions(run_dir: str | Path, meta: RunMeta | None = None) -> RunPredictions:
    """Load and validate the predictions of ``run_dir`` (``predictions.npz``, ``.parquet`` or ``.csv``).

    Raises :class:`PredictionFormatError` naming the problem.
    """
    run_dir = Path(run_dir)
    meta = meta if meta is not None else read_run_meta(run_dir)
    path = prediction_file(run_dir)
    return predictions_from_arrays(read_prediction_arrays(path), path, run_dir, meta)


def predictions_from_arrays(
    arrays: dict[str, np.ndarray], where: str | Path, run_dir: Path, meta: RunMeta
) -> RunPredictions:
    """:func:`validate_arrays` with the run's metadata, as :class:`RunPredictions` (errors name ``where``)."""
    checked = validate_arrays(arrays, where)
    n_classes = checked["probs"].shape[1]
    if meta.class_names is not None and len(meta.class_names) != n_classes:
        raise PredictionFormatError(
            f"{run_dir / RUN_JSON}: class_names has {len(meta.class_names)} names "
            f"but predictions have {n_classes} classes"
        )
    return RunPredictions(path=run_dir, meta=meta, **checked)


def _need(arrays: dict[str, np.ndarray], key: str, where: str | Path) -> np.ndarray:
    if key not in arrays:
        raise PredictionFormatError(f"{where}: missing array '{key}' (has: {', '.join(sorted(arrays))})")
    return arrays[key]


def _check_labels(arrays: dict[str, np.ndarray], where: str | Path) -> None:
    """``sample_id`` and every ``attr_<name>`` hold numbers or strings, not Python objects."""
    for key, values in arrays.items():
        if (key == "sample_id" or key.startswith(ATTR_PREFIX)) and values.dtype.hasobject:
            raise PredictionFormatError(
                f"{where}: array '{key}' has dtype {values.dtype}; expected int or str values"
            )


def validate_arrays(arrays: dict[str, np.ndarray], where: str | Path) -> dict[str, Any]:
    """Check a run's arrays in the ``predictions.npz`` layout (module docstring); ``where`` prefixes errors.

    Returns the fields of :class:`RunPredictions` but ``path`` and ``meta``: ``sample_id``, ``y_true``
    (int64), ``probs`` (softmax of ``logits``, float32; float64 stays float64), ``attributes`` (integer
    codes), ``attribute_levels`` and ``features``.
    """
    sample_id = _need(arrays, "sample_id", where)
    y_true = _need(arrays, "y_true", where)
    if ("logits" in arrays) == ("probs" in arrays):
        raise PredictionFormatError(f"{where}: needs exactly one of 'logits' or 'probs'")
    scores_key = "logits" if "logits" in arrays else "probs"
    scores = arrays[scores_key]
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise PredictionFormatError(
            f"{where}: '{scores_key}' must have shape (N, C) with C >= 2, got {scores.shape}"
        )
    n, n_classes = scores.shape
    for key, arr in [("sample_id", sample_id), ("y_true", y_true)]:
        if arr.ndim != 1 or len(arr) != n:
            raise PredictionFormatError(
                f"{where}: '{key}' has shape {arr.shape}, expected ({n},) to match '{scores_key}'"
            )
    _check_labels(arrays, where)
    if not np.issubdtype(scores.dtype, np.floating):
        raise PredictionFormatError(f"{where}: '{scores_key}' must be floating point, got {scores.dtype}")
    converted = _as_float(scores) if scores_key == "logits" else None
    if not _all_finite(scores, converted):
        bad = int((~np.isfinite(scores)).any(axis=1).sum())
        raise PredictionFormatError(f"{where}: '{scores_key}' has NaN or inf values in {bad} rows")
    if len(np.unique(sample_id)) != n:
        raise PredictionFormatError(f"{where}: 'sample_id' values are not unique")
    if not np.issubdtype(y_true.dtype, np.integer):
        raise PredictionFormatError(f"{where}: 'y_true' must be integer class indices, got {y_true.dtype}")
    if n and (y_true.min() < 0 or y_true.max() >= n_classes):
        raise PredictionFormatError(
            f"{where}: 'y_true' has labels outside [0, {n_classes}) (min {y_true.min()}, max {y_true.max()})"
        )
    if scores_key == "probs":
        if (scores < 0).any() or (scores > 1).any() or not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
            raise PredictionFormatError(f"{where}: 'probs' rows must lie in [0, 1] and sum to 1")
        probs = scores.astype(np.float32, copy=False)
    else:
        assert converted is not None
        probs = _softmax_inplace(converted)
    attributes, levels = _attributes(arrays, n, where)
    features = arrays.get("features")
    if features is not None:
        if features.ndim != 2 or len(features) != n:
            raise PredictionFormatError(f"{where}: 'features' has shape {features.shape}, expected ({n}, d)")
        if not np.issubdtype(features.dtype, np.number):
            raise PredictionFormatError(f"{where}: 'features' must be numbers, got {features.dtype}")
        if not np.isfinite(features).all():
            raise PredictionFormatError(f"{where}: 'features' has NaN or inf values")
    return {
        "sample_id": sample_id,
        "y_true": y_true.astype(np.int64, copy=False),
        "probs": probs,
        "attributes": attributes,
        "attribute_levels": levels,
        "features": features,
    }


def _attributes(
    arrays: dict[str, np.ndarray], n: int, where: str | Path
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Every ``attr_<name>`` array as integer codes and level names (at least two groups each)."""
    attributes: dict[str, np.ndarray] = {}
    levels: dict[str, list[str]] = {}
    for key in sorted(arrays):
        if not key.startswith(ATTR_PREFIX):
            continue
        name = key[len(ATTR_PREFIX) :]
        values = arrays[key]
        if values.ndim != 1 or len(values) != n:
            raise PredictionFormatError(f"{where}: '{key}' has shape {values.shape}, expected ({n},)")
        codes, names = _encode_groups(values)
        if len(names) < 2:
            raise PredictionFormatError(
                f"{where}: protected attribute '{name}' has only one group ({names[0]!r}); "
                "it needs at least two"
            )
        attributes[name], levels[name] = codes, names
    return attributes, levels
