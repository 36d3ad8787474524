"""Synthetic sweeps in the prediction format, with known, controllable effects.

A synthetic sweep is a folder laid out like a real one (``runs/<run_id>/{run.json, predictions.npz, DONE}``
plus ``representation.npz``) whose predictions were drawn, not trained. It is used by the audit and report
tests (which assert that the audit finds the planted effects), by ``benchmarks/bench_audit.py`` and as the
built-in example of the README's prediction-format section (``write_example``), audited without training.

The generative model, per run (role, temperature, seed) and test sample i of class c and groups g:

* P(correct) = ``accuracy[role] + class_offset[c] - group_gap[role] * [g_first_attr == 1]
  - degrade_drop * [DS, T >= degrade_from_temperature, c in degraded_classes]``, clipped to [0.02, 0.99].
* Correctness is ``Phi(sqrt(rho) z_i + sqrt(1 - rho) e_run,i) < P``: ``z_i`` is a sample difficulty shared by
  all runs (so models agree on easy samples), ``e`` is the run's own noise; ``rho`` = ``shared_difficulty``.
* A wrong prediction is class ``(c + 1) mod C`` with probability ``confusion_to_next``, else uniform over the
  other classes (so disagreement matrices have structure).
* Logits are N(0, ``logit_scale``) noise with the predicted class lifted above the row maximum by
  ``0.5 + Exp(1)``, so ``argmax(logits)`` is exactly the drawn prediction. Stored as ``logit_dtype``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr

from kdfair.io import save_npz_atomic
from kdfair.runfolder import REPRESENTATION_NPZ, attr_key, run_path, write_finished

__all__ = ["SyntheticEffects", "draw_test_set", "make_synthetic_sweep", "run_id", "write_example"]


@dataclass(frozen=True)
class SyntheticEffects:
    """The planted effects of a synthetic sweep (accuracies are fractions in [0, 1])."""

    accuracy: Mapping[str, float] = field(default_factory=lambda: {"teacher": 0.9, "nds": 0.72, "ds": 0.76})
    class_spread: float = 0.05  # std of the per-class accuracy offset shared by all runs
    degraded_classes: tuple[int, ...] = (0, 1)  # classes DS loses at high temperature
    degrade_from_temperature: float = 4.0  # DS runs with T >= this lose accuracy on degraded_classes
    degrade_drop: float = 0.35  # how much accuracy those classes lose
    group_gap: Mapping[str, float] = field(default_factory=lambda: {"teacher": 0.02, "nds": 0.08, "ds": 0.1})
    shared_difficulty: float = 0.6  # rho: how much sample difficulty all runs share
    confusion_to_next: float = 0.5  # share of errors that go to class (c + 1) mod C
    logit_scale: float = 1.0  # std of the logit noise


def run_id(
    role: str, seed: int, method: str = "kd", temperature: float | None = None, alpha: float = 0.8
) -> str:
    """The run folder name the trainer uses: ``teacher_s0``, ``nds_s0``, ``ds_kd_T4_a0.8_s0``."""
    if role == "ds":
        return f"ds_{method}_T{temperature:g}_a{alpha:g}_s{seed}"
    return f"{role}_s{seed}"


@dataclass(frozen=True)
class _Population:
    """What every run of a sweep shares: labels, groups, difficulty, class offsets, features."""

    y_true: np.ndarray
    attributes: dict[str, np.ndarray]
    difficulty: np.ndarray
    class_offset: np.ndarray
    class_centres: np.ndarray
    representation: np.ndarray


def _population(
    rng: np.random.Generator,
    n_classes: int,
    n_samples: int,
    attributes: Mapping[str, int],
    feature_dim: int,
    spread: float,
) -> _Population:
    # every class present: a balanced, shuffled label vector
    y_true = rng.permutation(np.arange(n_samples) % n_classes).astype(np.int64)
    attrs = {
        name: rng.integers(0, n_levels, size=n_samples).astype(np.int64)
        for name, n_levels in attributes.items()
    }
    centres = rng.standard_normal((n_classes, feature_dim)).astype(np.float32) * 2.0
    representation = centres[y_true] + rng.standard_normal((n_samples, feature_dim)).astype(np.float32)
    return _Population(
        y_true=y_true,
        attributes=attrs,
        difficulty=rng.standard_normal(n_samples).astype(np.float32),
        class_offset=rng.normal(0.0, spread, size=n_classes).astype(np.float32),
        class_centres=centres,
        representation=representation,
    )


def _correct_probability(
    pop: _Population, role: str, temperature: float | None, effects: SyntheticEffects
) -> np.ndarray:
    p = effects.accuracy[role] + pop.class_offset[pop.y_true]
    if pop.attributes:
        first = next(iter(pop.attributes.values()))
        p = p - effects.group_gap[role] * (first == 1)
    if role == "ds" and temperature is not None and temperature >= effects.degrade_from_temperature:
        degraded = np.isin(pop.y_true, np.asarray(effects.degraded_classes, dtype=np.int64))
        p = p - effects.degrade_drop * degraded
    return np.clip(p, 0.02, 0.99)


def _predictions(
    rng: np.random.Generator, pop: _Population, p_correct: np.ndarray, effects: SyntheticEffects
) -> np.ndarray:
    n_classes = len(pop.class_offset)
    rho = effects.shared_difficulty
    noise = rng.standard_normal(len(pop.y_true)).astype(np.float32)
    correct = ndtr(np.sqrt(rho) * pop.difficulty + np.sqrt(1.0 - rho) * noise) < p_correct
    to_next = rng.random(len(pop.y_true)) < effects.confusion_to_next
    # uniform over the other C - 1 classes: shift by 1..C-1
    shift = np.where(to_next, 1, rng.integers(1, n_classes, size=len(pop.y_true)))
    return np.where(correct, pop.y_true, (pop.y_true + shift) % n_classes).astype(np.int64)


def _logits(rng: np.random.Generator, y_pred: np.ndarray, n_classes: int, scale: float) -> np.ndarray:
    logits = rng.standard_normal((len(y_pred), n_classes), dtype=np.float32)
    logits *= scale
    rows = np.arange(len(y_pred))
    logits[rows, y_pred] = (
        logits.max(axis=1) + 0.5 + rng.exponential(1.0, size=len(y_pred)).astype(np.float32)
    )
    return logits


def _write_run(run_dir: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], logit_dtype: str) -> None:
    arrays = dict(arrays)
    arrays["logits"] = arrays["logits"].astype(logit_dtype, copy=False)
    write_finished(run_dir, arrays, meta, done_text="synthetic\n")


def make_synthetic_sweep(
    out_dir: str | Path,
    *,
    n_classes: int,
    n_samples: int,
    seeds: Sequence[int],
    temperatures: Sequence[float],
    alpha: float = 0.8,
    attributes: Mapping[str, int] | None = None,
    logit_dtype: str = "float32",
    feature_dim: int = 16,
    effects: SyntheticEffects | Mapping[str, Any] | None = None,
    seed: int = 0,
    shuffle_rows: bool = False,
    write_representation: bool = True,
) -> list[Path]:
    """Write a synthetic sweep (teacher, NDS, and DS at each temperature, for every seed) under ``out_dir``.

    ``attributes`` maps a protected-attribute name to its number of groups (default ``{"group": 2}``).
    ``effects`` overrides fields of :class:`SyntheticEffects`. ``shuffle_rows`` writes each run's rows in its
    own order (the audit must align by ``sample_id``). Every run also stores ``features`` (its penultimate
    representation: the shared class centres plus run noise, ``feature_dim`` wide). Returns the run folders.
    """
    if n_samples < n_classes:
        raise ValueError(
            f"n_samples ({n_samples}) must be >= n_classes ({n_classes}) so every class is present"
        )
    attributes = {"group": 2} if attributes is None else dict(attributes)
    if effects is None:
        effects = SyntheticEffects()
    elif not isinstance(effects, SyntheticEffects):
        effects = replace(SyntheticEffects(), **dict(effects))
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    pop = _population(rng, n_classes, n_samples, attributes, feature_dim, effects.class_spread)
    sample_id = np.arange(n_samples, dtype=np.int64)
    if write_representation:
        save_npz_atomic(out_dir / REPRESENTATION_NPZ, sample_id=sample_id, x=pop.representation)
    conditions: list[tuple[str, float | None]] = [("teacher", None), ("nds", None)]
    conditions += [("ds", float(t)) for t in temperatures]
    class_names = [f"class_{c}" for c in range(n_classes)]
    settings = {"synthetic": True, "effects": json.loads(json.dumps(asdict(effects)))}
    written = []
    for s in seeds:
        for role, temperature in conditions:
            run_rng = np.random.default_rng([seed, int(s), len(written)])
            y_pred = _predictions(
                run_rng, pop, _correct_probability(pop, role, temperature, effects), effects
            )
            meta: dict[str, Any] = {
                "role": role,
                "seed": int(s),
                "dataset": "synthetic",
                "class_names": class_names,
            }
            meta["model"] = "synthetic-teacher" if role == "teacher" else "synthetic-student"
            if role == "ds":
                meta.update(method="kd", temperature=temperature, alpha=alpha)
            meta["settings"] = settings
            noise = run_rng.standard_normal((n_samples, feature_dim)).astype(np.float32) * 0.5
            arrays = {
                "sample_id": sample_id,
                "y_true": pop.y_true,
                "logits": _logits(run_rng, y_pred, n_classes, effects.logit_scale),
                "features": pop.class_centres[y_pred] + noise,
                **{attr_key(name): codes for name, codes in pop.attributes.items()},
            }
            if shuffle_rows:
                order = run_rng.permutation(n_samples)
                arrays = {key: value[order] for key, value in arrays.items()}
            run_dir = run_path(out_dir, run_id(role, int(s), "kd", temperature, alpha))
            _write_run(run_dir, meta, arrays, logit_dtype)
            written.append(run_dir)
    return written


def write_example(out_dir: str | Path) -> list[Path]:
    """Write the built-in example sweep: 10 classes, 2,000 test samples, 3 seeds, T in {1, 2, 4, 8}, two
    protected attributes (``group``: 2 levels, ``region``: 3 levels). DS at T >= 4 degrades classes 0 and 1.
    """
    return make_synthetic_sweep(
        out_dir,
        n_classes=10,
        n_samples=2000,
        seeds=[0, 1, 2],
        temperatures=[1, 2, 4, 8],
        attributes={"group": 2, "region": 3},
        seed=2024,
    )


def draw_test_set(
    roles: Sequence[str],
    *,
    n_classes: int,
    n_samples: int,
    n_seeds: int = 1,
    attributes: Mapping[str, int] | None = None,
    effects: SyntheticEffects | Mapping[str, Any] | None = None,
    temperature: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One test set and predicted labels drawn in memory by the generative model above (nothing written).

    For simulation studies (the noise-floor calibration tests). Returns ``y_true`` (N,), the group codes per
    attribute (N,) and, per role, ``(n_seeds, N)`` predicted labels; DS roles use ``temperature``. With
    ``group_gap`` 0 for a role its errors are independent of every group given the class.
    """
    attributes = {"group": 2} if attributes is None else dict(attributes)
    if effects is None:
        effects = SyntheticEffects()
    elif not isinstance(effects, SyntheticEffects):
        effects = replace(SyntheticEffects(), **dict(effects))
    rng = np.random.default_rng(seed)
    pop = _population(rng, n_classes, n_samples, attributes, 1, effects.class_spread)
    predictions = {}
    for role in roles:
        p_correct = _correct_probability(pop, role, temperature if role == "ds" else None, effects)
        predictions[role] = np.stack([_predictions(rng, pop, p_correct, effects) for _ in range(n_seeds)])
    return pop.y_true, dict(pop.attributes), predictions
