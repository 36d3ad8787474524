"""Atomic file writes and run-environment capture.

Every file kdfair writes goes to a temporary file in the same folder first and is then renamed over the
target, so a crash never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, fsync and rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        crash_point(f"write:{target.name}")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``$KDFAIR_CRASH_AT`` equals ``name``.

    Used only by the resume tests to interrupt a sweep at exact points (``write:<file name>`` just before a
    rename, ``epoch:<run_id>:<epoch>`` after an epoch's checkpoint). Unset, it does nothing.
    """
    if os.environ.get("KDFAIR_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def save_npz_atomic(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """Save arrays as an uncompressed ``.npz`` atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def git_revision(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The current git commit of ``cwd`` (default: this package's folder), or None outside a repository."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_info(device: str | None = None) -> dict[str, Any]:
    """Versions, platform, git revision and device, saved with every run for reproducibility.

    ``device``: the run's device (``"cpu"``, ``"cuda"``, ``"cuda:1"``; None: CUDA when available); on CUDA
    ``cuda_device_name`` names that GPU (``"cuda"``: the current one), not GPU 0.
    """
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for name in ("kdfair", "torch", "torchvision", "numpy", "scipy", "timm", "transformers", "ray"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "git_revision": git_revision(),
        "device": device,
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda_available"] = torch.cuda.is_available()
        # None: the trainer's default (kdfair.train.device.resolve_device): CUDA when available
        used = torch.device(device if device else ("cuda" if torch.cuda.is_available() else "cpu"))
        if used.type == "cuda" and torch.cuda.is_available():
            index = used.index if used.index is not None else torch.cuda.current_device()
            info["cuda_device_name"] = torch.cuda.get_device_name(index)  # the GPU this run uses
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def say(line: str) -> None:
    """Print one line to stdout in a single write, flushed.

    Worker processes share the parent's stdout; ``print`` writes the text and the newline separately when
    stdout is unbuffered (``PYTHONUNBUFFERED``), so two workers' lines could interleave mid-line. One
    ``write`` of a line shorter than the pipe buffer is atomic.
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
