"""Checks of a sweep config against the registries and the file system, run before any training.

Each check raises a :class:`~kdfair.errors.ConfigError` (or the registry's :class:`DataError`) whose one-line
message starts with the key path (``data.name``, ``pairs[1].student.model``, ...). The registries are
imported here, lazily, because they import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdfair.errors import ConfigError, KdfairError
from kdfair.train.config import DataConfig

# factory keywords the trainer sets itself; a config may not set them through `options`
_TRAINER_SET_OPTIONS = ("in_channels", "image_size", "pretrained")


def check_model(name: str, where: str, options: dict[str, Any] | None = None) -> None:
    """``name`` is a registered model and ``options`` are keywords its factory accepts."""
    from kdfair.models.registry import model_options, model_spec

    try:
        model_spec(name)
    except KdfairError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    valid = [o for o in model_options(name) if o not in _TRAINER_SET_OPTIONS]
    unknown = sorted(set(options or {}) - set(valid))
    if unknown:
        shown = ", ".join(valid) or "(none)"
        raise ConfigError(
            f"{where}: unknown option(s) {', '.join(unknown)} of model '{name}'; valid: {shown}"
        )


def check_method(name: str, options: dict[str, Any] | None) -> None:
    """``name`` is a registered method and ``options`` validate against its options model."""
    from kdfair.methods.registry import parse_method_options

    try:
        parse_method_options(name, options)
    except KdfairError as exc:
        raise ConfigError(f"distill.methods: {exc}") from exc


def check_path(path: str | None, where: str) -> None:
    """A configured file exists (None passes)."""
    if path is not None and not Path(path).exists():
        raise ConfigError(f"{where}: file not found: {path}")


def check_data(data: DataConfig, where: str, *, files: bool = True) -> None:
    """``data.name`` is registered, its options validate, and the files its loader needs exist.

    Nothing is loaded. The files are those the loader says it opens for these options (the registry's
    ``DatasetSpec.files_for``, owned by each loader module), so a renamed file (CelebA's ``attr_file``,
    HateXplain's ``dataset_file``) or an optional one (SVHN's ``extra``, HateXplain's ``train_jsonl``) is
    checked under its configured name. A file may sit in ``root`` or in its listed sub-folder. Patterns
    (``train/<wnid>/*.JPEG``) are left to the loader.
    """
    from kdfair.data.common import missing_data_error
    from kdfair.data.registry import dataset_spec, parse_dataset_options

    try:
        spec = dataset_spec(data.name)
    except KdfairError as exc:
        raise ConfigError(f"{where}.name: {exc}") from exc
    try:
        options = parse_dataset_options(data.name, data.options)
    except KdfairError as exc:
        raise ConfigError(f"{where}.options: {exc}") from exc
    if not files or not spec.expected_files:
        return
    root = Path(data.root).expanduser() if data.root is not None else None
    if root is None or not root.is_dir():
        error = missing_data_error(data.name, spec.expected_files, root, spec.download_hint)
        raise type(error)(f"{where}.root: {error}")
    missing = [f for f in required_files(spec, options) if not _exists(root, f)]
    if missing:
        error = missing_data_error(data.name, missing, root, spec.download_hint)
        raise type(error)(f"{where}.root: {error}")


def required_files(spec: Any, options: Any) -> list[str]:
    """The files data set ``spec``'s loader opens for parsed ``options`` (its ``files_for``: paths relative to
    root, or absolute), patterns and prose left out."""
    return [entry for entry in spec.files_for(options) if _plain(entry)]


def _plain(entry: str) -> bool:
    """An expected-file entry that names one file or folder (no wildcard, placeholder or prose)."""
    return not any(c in entry for c in "<>{}*?[]() ")


def _exists(root: Path, entry: str) -> bool:
    """``root/entry``, or ``root/<entry without its first folder>`` (files extracted flat into root)."""
    path = Path(entry.rstrip("/")).expanduser()
    if path.is_absolute():
        return path.exists()
    candidates = [root / path] + ([root.joinpath(*path.parts[1:])] if len(path.parts) > 1 else [])
    return any(c.exists() for c in candidates)
