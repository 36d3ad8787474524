"""The audit's options as data: what ``kdfair audit`` accepts, recorded in ``audit.json`` ``options``.

:class:`AuditOptions` holds the keyword arguments of :func:`kdfair.audit.engine.audit_runs` that change
what is audited; ``jobs`` and ``progress`` change only how fast, and are not recorded. ``audit.json``
``options`` is ``AuditOptions.as_dict()``, whose keys are those arguments' names, so an audit is repeated with
``audit_runs(runs_dir, **AuditOptions.from_audit_json(meta)[0].as_dict())`` -- what ``kdfair report RUNS_DIR``
does with an out-of-date audit (:mod:`kdfair.report.source`).

An ``audit.json`` written before the options were recorded has no ``options``:
:meth:`AuditOptions.from_audit_json` then reads the values it does record as data (``level``,
``individual_fairness.k`` and ``.option``, ``auroc.mode``, ``noise_floor.permutations``), takes the default
for the others, and returns a note saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

from kdfair.discovery import RunFolders, find_runs, select_runs
from kdfair.errors import KdfairError
from kdfair.metrics.noise import DEFAULT_PERMUTATIONS

OPTIONS_KEY = "options"  # audit.json's key
AUROC_MODES = ("always", "auto", "never")
REPRESENTATIONS = ("auto", "teacher", "input", "none")  # else the path of an npz (recorded absolute)


@dataclass(frozen=True)
class AuditOptions:
    """What one audit was asked for (module docstring); checked when made (:class:`KdfairError`)."""

    level: float = 0.05  # significance level of the Welch tests, raw and Benjamini-Hochberg; paper: 0.05
    k: int = 5  # neighbours per sample for kNN individual fairness (SPEC §6)
    representation: str = "auto"  # kNN space: auto, teacher, input, none, or an npz path (absolute)
    auroc: str = "auto"  # always, never, or auto: only with at most 100 classes (kdfair.audit.engine)
    permutations: int = DEFAULT_PERMUTATIONS  # B of the noise floor of DPD, EOD and DEO; 0: none
    skip_incomplete: bool = False  # incomplete run folders skipped by name instead of an error
    # the run folders audited, POSIX paths relative to the runs folder (a sweep's finished runs);
    # None: every run folder found below it (kdfair.discovery)
    run_dirs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.auroc not in AUROC_MODES:
            raise KdfairError(f"--auroc: unknown mode {self.auroc!r}; valid: {', '.join(AUROC_MODES)}")
        level_ok = isinstance(self.level, (int, float)) and not isinstance(self.level, bool)
        if not level_ok or not 0.0 < self.level < 1.0:
            raise KdfairError(f"--level must be in (0, 1), got {self.level}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise KdfairError(
                f"--k must be >= 2 (consistency counts each point among its k neighbours), got {self.k}"
            )
        check_permutations(self.permutations)
        if not isinstance(self.representation, str) or not self.representation:
            raise KdfairError(f"--representation must be a name or a path, got {self.representation!r}")
        if not isinstance(self.skip_incomplete, bool):
            raise KdfairError(f"skip_incomplete must be true or false, got {self.skip_incomplete!r}")
        if self.run_dirs is not None:
            bad = [d for d in self.run_dirs if not _is_relative_folder(d)]
            if bad:
                raise KdfairError(
                    f"run_dirs: {bad[0]!r} is not a folder path relative to the runs folder (no '..')"
                )

    def as_dict(self) -> dict[str, Any]:
        """``audit.json`` ``options``: the keyword arguments of ``audit_runs`` (JSON types)."""
        out = asdict(self)
        out["run_dirs"] = None if self.run_dirs is None else list(self.run_dirs)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "options") -> AuditOptions:
        """Options read back from ``audit.json`` ``options``; an unknown key or a wrong type is a
        :class:`KdfairError` naming it and ``where``; a key that is absent takes its default."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise KdfairError(f"{where}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
        values = dict(data)
        if values.get("run_dirs") is not None:
            if not isinstance(values["run_dirs"], list):
                raise KdfairError(f"{where}: run_dirs must be a list of folders or null")
            values["run_dirs"] = tuple(values["run_dirs"])
        try:
            return cls(**values)
        except KdfairError as error:
            raise KdfairError(f"{where}: {error}") from None

    @classmethod
    def from_audit_json(cls, meta: Mapping[str, Any], where: str) -> tuple[AuditOptions, str | None]:
        """The options an audit was made with, from its ``audit.json`` ``meta`` (``where`` names the file in
        errors), and a note when ``meta`` predates the recorded ``options`` (module docstring)."""
        if OPTIONS_KEY in meta:
            recorded = meta[OPTIONS_KEY]
            if not isinstance(recorded, Mapping):
                kind = type(recorded).__name__
                raise KdfairError(f"{where}: '{OPTIONS_KEY}' must be an object, got {kind}")
            return cls.from_dict(recorded, f"{where} {OPTIONS_KEY}"), None
        fairness = meta.get("individual_fairness") or {}
        legacy = {
            "level": meta.get("level"),
            "k": fairness.get("k"),
            "representation": fairness.get("option"),  # as asked for; recorded since the twins
            "auroc": (meta.get("auroc") or {}).get("mode"),
            "permutations": (meta.get("noise_floor") or {}).get("permutations"),
            "skip_incomplete": True if meta.get("skipped_runs") else None,  # it named skipped folders
        }
        found = {key: value for key, value in legacy.items() if value is not None}
        defaults = [key for key in legacy if key not in found]
        note = (
            f"{where} records no '{OPTIONS_KEY}' (an audit by an older kdfair): its options are read from "
            f"what it records ({', '.join(found) or 'nothing'})"
            + (f"; {', '.join(defaults)}: the default" if defaults else "")
        )
        return cls.from_dict(found, where), note

    def find_runs(self, runs_dir: str | Path) -> RunFolders:
        """The run folders this audit reads below ``runs_dir``: ``run_dirs``, or every one found
        (:mod:`kdfair.discovery`); incomplete folders skipped when ``skip_incomplete``, else an error."""
        if self.run_dirs is None:
            return find_runs(runs_dir, skip_incomplete=self.skip_incomplete)
        return select_runs(runs_dir, self.run_dirs, skip_incomplete=self.skip_incomplete)


def check_permutations(n_permutations: Any) -> None:
    """Raise :class:`KdfairError` unless ``n_permutations`` is an integer >= 0 (0: no noise floor)."""
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 0:
        raise KdfairError(f"--permutations must be an integer >= 0, got {n_permutations!r}")


def representation_option(representation: str | Path | None) -> str:
    """``--representation`` as recorded: None is ``auto``; a path to an npz is made absolute, so that the
    audit can be repeated from another working folder."""
    if representation is None:
        return "auto"
    text = str(representation)
    return text if text in REPRESENTATIONS else str(Path(text).absolute())


def relative_run_dirs(runs_dir: str | Path, run_dirs: Sequence[str | Path] | None) -> tuple[str, ...] | None:
    """``run_dirs`` (relative to ``runs_dir``, or absolute below it) as sorted POSIX paths relative to
    ``runs_dir``; KdfairError naming a folder that is not below ``runs_dir``."""
    if run_dirs is None:
        return None
    root = Path(runs_dir).absolute()
    relative = []
    for run_dir in run_dirs:
        path = Path(run_dir)
        full = path if path.is_absolute() else root / path
        try:
            relative.append(full.absolute().relative_to(root).as_posix())
        except ValueError:
            raise KdfairError(f"run_dirs: {run_dir} is not below the runs folder {runs_dir}") from None
    return tuple(sorted(set(relative)))


def _is_relative_folder(path: Any) -> bool:
    if not isinstance(path, str) or not path:
        return False
    pure = PurePosixPath(path)
    return not pure.is_absolute() and ".." not in pure.parts
