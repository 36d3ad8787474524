"""Finding the run folders below a runs root, and the folders that look like runs but are not complete.

A *run folder* holds ``run.json`` and a predictions file (``predictions.npz``, ``predictions.parquet`` or
``predictions.csv``; :mod:`kdfair.predictions`). A folder is *incomplete* when it has a predictions file but
no ``run.json`` (a training job killed between the two writes, a copy that lost a file), ``run.json`` but
no predictions file, or when it or one of those files cannot be read.

An incomplete folder is an error that names it: a dropped seed changes every Welch test without a word, and
with two seeds it ends in an unrelated "condition has 1 seed" error. ``skip_incomplete=True``
(``kdfair audit --skip-incomplete``) skips them instead; the caller names each skipped folder (the audit on
the console and in ``audit.json`` ``skipped_runs``).

:func:`find_runs` searches a root; :func:`select_runs` checks a given list of run folders below it (an audit
of chosen runs, such as a sweep's finished runs, ``audit.json`` ``options.run_dirs``), where a folder that
is missing is incomplete too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kdfair.errors import PredictionFormatError
from kdfair.runfolder import PREDICTION_FILES, RUN_JSON

# Why a sweep's audit leaves a folder out (kdfair.sweep.finish). A re-audit with the sweep's recorded run_dirs
# cannot find these again, so the report carries them over (kdfair.report.source).
NOT_FINISHED = "planned run not finished (no DONE)"
NOT_PLANNED = "not a run of this sweep's plan"
FINISHED_LATER = "planned run finished after the sweep's audit (run the sweep again to audit it)"


@dataclass(frozen=True)
class SkippedRun:
    """An incomplete folder left out of the audit, and why."""

    folder: Path
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The folder's entry in ``audit.json`` ``skipped_runs``."""
        return {"folder": str(self.folder), "reason": self.reason}


@dataclass(frozen=True)
class RunFolders:
    """The run folders below a root, sorted by path, and the incomplete folders that were skipped."""

    run_dirs: list[Path]
    skipped: list[SkippedRun]


def _classify(folder: Path, files: set[str]) -> str | None:
    """Why ``folder`` (holding ``files``) is incomplete; None for a complete run folder."""
    predictions = [name for name in PREDICTION_FILES if name in files]
    has_meta = RUN_JSON in files
    if predictions and not has_meta:
        return f"has {predictions[0]} but no {RUN_JSON}"
    if has_meta and not predictions:
        return f"has {RUN_JSON} but no predictions file ({', '.join(PREDICTION_FILES)})"
    unreadable = [
        name for name in (RUN_JSON, *predictions) if name in files and not os.access(folder / name, os.R_OK)
    ]
    if unreadable:
        return f"cannot be read ({', '.join(unreadable)}: permission denied)"
    return None


def find_runs(root: str | Path, *, skip_incomplete: bool = False) -> RunFolders:
    """Every run folder below ``root`` (module docstring), sorted by path.

    Raises :class:`PredictionFormatError` naming the first incomplete folder (and how many more there are)
    unless ``skip_incomplete``, and when ``root`` holds no run folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise PredictionFormatError(f"{root}: not a directory")
    runs: list[Path] = []
    incomplete: list[SkippedRun] = []

    def unreadable(error: OSError) -> None:
        folder = Path(error.filename) if error.filename else root
        incomplete.append(SkippedRun(folder, f"cannot be read ({type(error).__name__}: {error.strerror})"))

    for folder, _, files in os.walk(root, onerror=unreadable):
        names = set(files)
        if RUN_JSON not in names and not names.intersection(PREDICTION_FILES):
            continue
        reason = _classify(Path(folder), names)
        if reason is None:
            runs.append(Path(folder))
        else:
            incomplete.append(SkippedRun(Path(folder), reason))
    return _checked(root, runs, incomplete, skip_incomplete)


def select_runs(
    root: str | Path, run_dirs: Sequence[str | Path], *, skip_incomplete: bool = False
) -> RunFolders:
    """The run folders ``run_dirs`` (relative to ``root``, or absolute), each checked as :func:`find_runs`
    checks a folder it finds; a folder that does not exist is incomplete. Errors as :func:`find_runs`."""
    root = Path(root)
    if not root.is_dir():
        raise PredictionFormatError(f"{root}: not a directory")
    runs: list[Path] = []
    incomplete: list[SkippedRun] = []
    for run_dir in dict.fromkeys(root / d for d in run_dirs):
        try:
            with os.scandir(run_dir) as entries:
                files = {entry.name for entry in entries if entry.is_file()}
            reason = _classify(run_dir, files)
        except FileNotFoundError:
            reason = "no such folder"
        except OSError as error:
            reason = f"cannot be read ({type(error).__name__}: {error.strerror})"
        if reason is None:
            runs.append(run_dir)
        else:
            incomplete.append(SkippedRun(run_dir, reason))
    return _checked(root, runs, incomplete, skip_incomplete)


def _checked(root: Path, runs: list[Path], incomplete: list[SkippedRun], skip_incomplete: bool) -> RunFolders:
    """The runs, sorted; PredictionFormatError naming the first incomplete folder (unless
    ``skip_incomplete``), or saying that there is no run folder."""
    incomplete.sort(key=lambda s: s.folder)
    if incomplete and not skip_incomplete:
        first, more = incomplete[0], len(incomplete) - 1
        others = f" ({more} more incomplete folder(s))" if more else ""
        raise PredictionFormatError(
            f"{first.folder}: incomplete run folder: {first.reason}{others}; complete or remove it, or skip "
            "incomplete folders (kdfair audit --skip-incomplete)"
        )
    if not runs:
        raise PredictionFormatError(
            f"{root}: no run folders found (no {RUN_JSON} with a predictions file below it)"
        )
    return RunFolders(sorted(runs), incomplete)


def discover_runs(root: str | Path) -> list[Path]:
    """All run folders below ``root``, sorted by path; an incomplete one is an error (:func:`find_runs`)."""
    return find_runs(root).run_dirs
