"""Optional dependencies: which extra installs each one, and one error that names it.

The core install (``pip install kdfair``) audits and reports prediction files: numpy, scipy, pandas,
matplotlib, pydantic, PyYAML and tqdm. Training needs the ``train`` extra (torch, torchvision, timm,
pillow), text models and data sets the ``text`` extra (transformers, tokenizers), the Ray executor the
``ray`` extra, and ``predictions.parquet`` files the ``parquet`` extra (pyarrow). A command that needs a
missing extra fails with one line naming it (a :class:`MissingExtraError`, printed by the CLI like every
:class:`~kdfair.errors.KdfairError`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kdfair.errors import KdfairError

# top-level module -> (extra that installs it, its distribution name on PyPI)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("train", "torch"),
    "torchvision": ("train", "torchvision"),
    "timm": ("train", "timm"),
    "PIL": ("train", "pillow"),
    "transformers": ("text", "transformers"),
    "tokenizers": ("text", "tokenizers"),
    "ray": ("ray", "ray"),
    "pyarrow": ("parquet", "pyarrow"),  # predictions.parquet (kdfair.prediction_tables)
}


class MissingExtraError(KdfairError):
    """A module of an optional extra is not installed; the message says which extra installs it."""


def install_command(extra: str) -> str:
    """The command that installs ``extra``: ``pip install "kdfair[train]"``."""
    return f'pip install "kdfair[{extra}]"'


def missing_extra(error: ImportError, what: str | None = None) -> MissingExtraError | None:
    """The one-line :class:`MissingExtraError` for ``error`` if it says a module of an extra is not
    installed, else None (another missing module, or a module that is installed but fails to import).

    ``what`` says what needed the module (``"training"``, ``"--executor ray"``); the message then reads
    ``training needs torch, which is not installed: pip install "kdfair[train]"``.
    """
    # a missing package is named by itself, also for "import torch.nn": "torch.xyz" means torch is there
    if not isinstance(error, ModuleNotFoundError) or error.name not in EXTRAS:
        return None
    extra, distribution = EXTRAS[error.name]
    return MissingExtraError(
        f"{what or 'this command'} needs {distribution}, which is not installed: {install_command(extra)}"
    )


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (of an extra, see :data:`EXTRAS`) or raise :class:`MissingExtraError`."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, what)
        if error is None:
            raise
        raise error from exc


def optional(module: str) -> ModuleType | None:
    """``module`` if it can be imported, else None: for code with a fallback (the audit without torch)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
