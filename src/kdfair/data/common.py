"""Helpers shared by the loaders: strict options, missing-file errors, the cache folder, progress bars, image
decoding, the lazy file-backed image source and the per-split counts that go into ``Dataset.info``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from kdfair.data.base import DataSplit
from kdfair.data.scan import scan_split
from kdfair.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_SHOW_PROGRESS: ContextVar[bool | None] = ContextVar("kdfair_data_show_progress", default=None)


class StrictOptions(BaseModel):
    """Base of every data set's options: unknown keys and wrong types are errors; frozen after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def missing_data_error(dataset: str, expected: Sequence[str], searched: Path | None, hint: str) -> DataError:
    """The one-line error for absent files: data set, expected files, where we looked, how to get them."""
    where = "no --root given" if searched is None else f"searched {searched}"
    return DataError(
        f"data set '{dataset}': missing {', '.join(expected)} ({where}); {hint} (kdfair never downloads)"
    )


def require_root(dataset: str, root: Path | None, expected: Sequence[str], hint: str) -> Path:
    """``root`` as a Path, raising the missing-data error when it is None or not a folder."""
    if root is None or not Path(root).is_dir():
        raise missing_data_error(dataset, expected, None if root is None else Path(root), hint)
    return Path(root)


def require_file(dataset: str, path: Path, expected: Sequence[str], hint: str) -> Path:
    """``path`` if it is a file; otherwise the missing-data error naming the folder searched."""
    if not path.is_file():
        raise missing_data_error(dataset, expected, path.parent, hint)
    return path


def cache_dir(sub: str, override: str | None = None) -> Path:
    """The cache folder: ``override``, else ``$KDFAIR_CACHE/<sub>``, else ``~/.cache/kdfair/<sub>``."""
    if override is not None:
        return Path(override).expanduser()
    base = os.environ.get("KDFAIR_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "kdfair") / sub


def fingerprint(*parts: Any) -> str:
    """A short stable hash of ``parts`` (their ``repr``), used to name cache files."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]


@contextmanager
def progress_mode(show: bool | None) -> Iterator[None]:
    """Within the block, the data stage's progress bars are forced on (True), off (False), or shown only when
    stderr is a terminal (None, the default outside any block)."""
    token = _SHOW_PROGRESS.set(show)
    try:
        yield
    finally:
        _SHOW_PROGRESS.reset(token)


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    leave: bool = False,
) -> tqdm:
    """A tqdm bar on stderr that follows :func:`progress_mode` (terminal only by default)."""
    show = _SHOW_PROGRESS.get()
    disable = None if show is None else not show
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, disable=disable, mininterval=0.5)


def read_image(path: Path | str, image_size: int | None) -> np.ndarray:
    """Decode ``path`` to uint8 RGB (H, W, 3); with ``image_size``, centre-crop to a square and resize to
    ``image_size`` x ``image_size`` (PIL bicubic, which low-pass filters when shrinking). A file PIL cannot
    decode raises :class:`DataError` naming it."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if image_size is not None and img.size != (image_size, image_size):
                width, height = img.size
                side = min(width, height)
                left, top = (width - side) // 2, (height - side) // 2
                img = img.crop((left, top, left + side, top + side))
                img = img.resize((image_size, image_size), Image.Resampling.BICUBIC)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from exc


class LazyImageFiles:
    """Images read from files on demand: ``source[index_array] -> uint8 (B, image_size, image_size, 3)``."""

    def __init__(self, paths: Sequence[str | Path], image_size: int) -> None:
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index = np.atleast_1d(np.asarray(index, dtype=np.int64))
        out = np.empty((len(index), self.image_size, self.image_size, 3), dtype=np.uint8)
        for row, i in enumerate(index):
            out[row] = read_image(self.paths[i], self.image_size)
        return out


def decode_images(paths: Sequence[str | Path], image_size: int, desc: str) -> np.ndarray:
    """Decode every file into one uint8 array (N, image_size, image_size, 3), with a progress bar."""
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    for row, path in enumerate(progress_bar(paths, desc=desc, unit="img")):
        out[row] = read_image(path, image_size)
    return out


def image_source(paths: Sequence[str | Path], image_size: int, in_memory: bool, desc: str) -> Any:
    """Decoded images in memory when ``in_memory``, else a :class:`LazyImageFiles`."""
    if in_memory:
        return decode_images(paths, image_size, desc)
    return LazyImageFiles(paths, image_size)


def list_images(folder: Path) -> list[Path]:
    """Image files (jpg, jpeg, png; any case) directly in ``folder``, sorted by name. One ``scandir`` pass:
    the entry types come with the listing, so large folders need no ``stat`` per file."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
    return [folder / name for name in sorted(names)]


def split_counts(
    split: DataSplit, class_names: Sequence[str], attribute_levels: dict[str, list[str]]
) -> dict[str, Any]:
    """Sizes of one split: ``n``, samples per class, per attribute level and per (class, level) cell (levels
    without declared names are the code values present, sorted). Inputs are not read."""
    return scan_split(
        split, class_names, attribute_levels, chunk_size=max(len(split), 1), decode=False, progress="never"
    ).counts


def splits_info(
    splits: dict[str, DataSplit], class_names: Sequence[str], attribute_levels: dict[str, list[str]]
) -> dict[str, Any]:
    """:func:`split_counts` for every split, keyed by split name (goes into ``Dataset.info["splits"]``)."""
    return {name: split_counts(s, class_names, attribute_levels) for name, s in splits.items()}


def to_grey(images: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B`` (PIL's "L"), rounded, copied to 3 channels (uint8)."""
    luma = images[..., 0] * 0.299 + images[..., 1] * 0.587 + images[..., 2] * 0.114
    grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
