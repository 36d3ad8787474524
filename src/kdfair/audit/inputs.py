"""What every audited run must share, and the representation for individual fairness.

The first teacher seed (or, without a teacher, the first run) is the *reference*: its sample ids fix the row
order; every other run is aligned to it by ``sample_id`` and must have the same ids, the same number of
classes, the same labels and the same protected attributes. Every class must occur in the test set.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdfair.errors import KdfairWarning, PredictionFormatError
from kdfair.predictions import RunPredictions, read_npz
from kdfair.runfolder import REPRESENTATION_NPZ, TEACHER_FEATURES_GLOB, teacher_features_files


@dataclass(frozen=True)
class Reference:
    """The row order, labels and groups all runs are checked against (from the reference run)."""

    run_dir: Path
    sample_id: np.ndarray
    y_true: np.ndarray
    attributes: dict[str, np.ndarray]
    attribute_levels: dict[str, list[str]]
    n_classes: int
    class_names: list[str]
    sorter: np.ndarray  # argsort of sample_id

    @classmethod
    def from_run(cls, run: RunPredictions) -> Reference:
        names = run.meta.class_names or [str(c) for c in range(run.n_classes)]
        ref = cls(
            run.path,
            run.sample_id,
            run.y_true,
            run.attributes,
            run.attribute_levels,
            run.n_classes,
            list(names),
            np.argsort(run.sample_id, kind="stable"),
        )
        ref.check_classes_present()
        return ref

    def check_classes_present(self) -> None:
        """Raise naming the first class with no test sample (class accuracy would be undefined)."""
        counts = np.bincount(self.y_true, minlength=self.n_classes)
        absent = np.flatnonzero(counts == 0)
        if len(absent):
            c = int(absent[0])
            raise PredictionFormatError(
                f"{self.run_dir}: class {c} ({self.class_names[c]!r}) has no test samples "
                f"({len(absent)} class(es) absent); every class needs at least one"
            )

    def alignment(self, sample_id: np.ndarray, where: str) -> np.ndarray | None:
        """Row indices that put ``sample_id`` into the reference order (None: already in order).

        Raises :class:`PredictionFormatError` naming ``where`` and the reference when the id sets differ.
        """
        if sample_id.shape == self.sample_id.shape and np.array_equal(sample_id, self.sample_id):
            return None
        order = np.argsort(sample_id, kind="stable")
        same = len(sample_id) == len(self.sample_id) and sample_id.dtype.kind == self.sample_id.dtype.kind
        if same:
            same = np.array_equal(sample_id[order], self.sample_id[self.sorter])
        if not same:
            only_here = np.setdiff1d(sample_id, self.sample_id)
            missing = np.setdiff1d(self.sample_id, sample_id)
            example = ""
            if len(only_here):
                example = f", e.g. {only_here[0].item()!r} is not in the reference"
            elif len(missing):
                example = f", e.g. {missing[0].item()!r} is missing"
            raise PredictionFormatError(
                f"runs {self.run_dir} and {where} have different sample ids "
                f"({len(self.sample_id)} vs {len(sample_id)} samples{example})"
            )
        index = np.empty(len(order), dtype=np.int64)
        index[self.sorter] = order
        return index

    def check_run(self, run: RunPredictions, index: np.ndarray | None) -> None:
        """Check an aligned run's classes, labels and groups against the reference."""
        where = f"runs {self.run_dir} and {run.path}"
        if run.n_classes != self.n_classes:
            raise PredictionFormatError(
                f"{where} have different numbers of classes ({self.n_classes} vs {run.n_classes})"
            )
        y_true = run.y_true if index is None else run.y_true[index]
        if not np.array_equal(y_true, self.y_true):
            n_bad = int((y_true != self.y_true).sum())
            raise PredictionFormatError(f"{where} disagree on y_true for {n_bad} sample ids")
        if sorted(run.attributes) != sorted(self.attributes):
            raise PredictionFormatError(
                f"{where} have different protected attributes "
                f"({sorted(self.attributes)} vs {sorted(run.attributes)})"
            )
        for name, codes in run.attributes.items():
            aligned = codes if index is None else codes[index]
            same = run.attribute_levels[name] == self.attribute_levels[name]
            if not same or not np.array_equal(aligned, self.attributes[name]):
                raise PredictionFormatError(f"{where} disagree on protected attribute '{name}'")


def _load_representation_npz(path: Path, ref: Reference) -> np.ndarray:
    if not path.exists():
        raise PredictionFormatError(f"{path}: representation file not found")
    arrays = read_npz(path)
    if "sample_id" not in arrays or "x" not in arrays:
        raise PredictionFormatError(f"{path}: needs arrays 'sample_id' and 'x' (has: {', '.join(arrays)})")
    sample_id, x = arrays["sample_id"], arrays["x"]
    x = x.reshape(len(x), -1) if x.ndim != 2 else x
    if len(x) != len(sample_id) or not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise PredictionFormatError(f"{path}: 'x' must be finite numbers with one row per sample_id")
    index = ref.alignment(sample_id, str(path))
    return x if index is None else x[index]


def resolve_representation(
    spec: str | Path | None, runs_dir: Path, teacher_run: RunPredictions | None, ref: Reference
) -> tuple[str, np.ndarray | None]:
    """The kNN representation for individual fairness (SPEC §6), aligned to the reference order.

    ``spec``:

    - None or ``"auto"`` (default) and ``"teacher"``: the first teacher seed's ``features`` (its penultimate
      representation), the same for every compared model; without a teacher run, the lowest seed's
      ``runs_dir/teacher_features_s<seed>.npz`` (written by a sweep whose teacher is a checkpoint). Without
      either, ``auto`` skips kNN individual fairness with a :class:`KdfairWarning` (never a silent fallback
      to another space); ``teacher`` is an error.
    - ``"input"``: ``runs_dir/representation.npz`` (the sweep's standardised test inputs), an explicit
      option only: neighbours in pixel space share the colour and differ in the label (SPEC §6).
    - ``"none"``: skipped; any other value: a path to an npz with ``sample_id`` and ``x``.

    Returns ``(description, array or None)``; the description is ``"teacher features (<run folder>)"``,
    the npz path, or ``"none"``.
    """
    key = "auto" if spec is None else str(spec)
    if key == "none":
        return "none", None
    if key == "input":
        default = runs_dir / REPRESENTATION_NPZ
        if not default.exists():
            raise PredictionFormatError(
                f"{runs_dir}: --representation input needs {REPRESENTATION_NPZ} (arrays sample_id, x), "
                "which kdfair sweep writes"
            )
        return str(default), _load_representation_npz(default, ref)
    has_teacher = teacher_run is not None and teacher_run.features is not None
    checkpoint_teachers = teacher_features_files(runs_dir)
    if key in ("auto", "teacher") and not has_teacher and checkpoint_teachers:
        first = checkpoint_teachers[0]
        features = _load_representation_npz(first, ref)
        return f"teacher features ({first.name}: the sweep's checkpoint teacher)", features
    if key == "auto":
        if not has_teacher:
            warnings.warn(
                f"individual fairness (kNN) skipped: no teacher run with a 'features' array and no "
                f"{TEACHER_FEATURES_GLOB} in {runs_dir}; "
                "the default kNN space is the teacher's penultimate features (SPEC §6); use --representation "
                "input or PATH.npz for another space",
                KdfairWarning,
                stacklevel=2,
            )
            return "none", None
        key = "teacher"
    if key == "teacher":
        if teacher_run is None or teacher_run.features is None:
            raise PredictionFormatError(
                f"{runs_dir}: --representation teacher needs a teacher run with a 'features' array"
            )
        index = ref.alignment(teacher_run.sample_id, str(teacher_run.path))
        features = teacher_run.features
        return f"teacher features ({teacher_run.path.name})", features if index is None else features[index]
    return str(key), _load_representation_npz(Path(key), ref)
