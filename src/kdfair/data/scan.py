"""A full pass over one split, for ``kdfair data inspect`` and the counts in ``Dataset.info``.

Labels and attributes are read chunk by chunk and counted. With ``decode``, inputs that are not in memory
(images read lazily from files) are read through the split's own reader, chunk by chunk; when a chunk fails,
its samples are read one by one so that every unreadable file is reported with its sample id and the reason
(which names the file), and the scan goes on. In-memory inputs (arrays, token ids) are not re-read, so their
scan only counts. A tqdm bar per split on stderr counts samples: ``progress`` "always", "never", or "auto"
(only on a terminal).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from kdfair.data.base import DataSplit
from kdfair.errors import DataError

CHUNK_SIZE = 256  # samples per chunk: labels, attributes and (lazy) images are read this many at a time
Progress = Literal["auto", "always", "never"]


@dataclass
class ScanResult:
    """What one pass over a split found: the counts (``n``, ``classes``, ``groups``: per attribute the level
    counts and the (class, level) cell counts) and the samples whose input could not be read."""

    counts: dict[str, Any]
    decoded: int = 0  # samples whose image came back from a lazy reader (0 for in-memory inputs)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (sample id, reason naming the file)


def _levels(codes: np.ndarray, declared: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
    """Level names and the code value of each level: the declared names stand for codes 0..K-1; otherwise
    the values present in ``codes``, sorted, named by their value."""
    if declared is not None:
        return list(declared), np.arange(len(declared))
    values = np.unique(codes)
    return [str(v) for v in values], values


class _Tally:
    """Running counts per class, per attribute level and per (class, level) cell."""

    def __init__(self, class_names: Sequence[str], levels: dict[str, tuple[list[str], np.ndarray]]) -> None:
        self.class_names = list(class_names)
        self.levels = levels
        k = len(self.class_names)
        self.classes = np.zeros(k, dtype=np.int64)
        self.level = {a: np.zeros(len(names), dtype=np.int64) for a, (names, _) in levels.items()}
        self.cells = {a: np.zeros((k, len(names)), dtype=np.int64) for a, (names, _) in levels.items()}

    def add(self, labels: np.ndarray, attributes: dict[str, np.ndarray]) -> None:
        k = len(self.class_names)
        known = (labels >= 0) & (labels < k)  # labels outside the class list are in no class count
        self.classes += np.bincount(labels[known], minlength=k)
        for attr, (names, values) in self.levels.items():
            if not len(values):
                continue
            codes = attributes[attr]
            position = np.clip(np.searchsorted(values, codes), 0, len(values) - 1)
            valid = codes == values[position]  # codes outside the declared levels are in no level count
            self.level[attr] += np.bincount(position[valid], minlength=len(names))
            both = valid & known
            cells = np.bincount(labels[both] * len(names) + position[both], minlength=k * len(names))
            self.cells[attr] += cells.reshape(k, len(names))

    def counts(self, n: int) -> dict[str, Any]:
        groups = {}
        for attr, (names, _) in self.levels.items():
            groups[attr] = {
                "levels": {lvl: int(self.level[attr][j]) for j, lvl in enumerate(names)},
                "class_by_level": {
                    f"{cname}|{lvl}": int(self.cells[attr][c, j])
                    for c, cname in enumerate(self.class_names)
                    for j, lvl in enumerate(names)
                },
            }
        classes = {name: int(self.classes[c]) for c, name in enumerate(self.class_names)}
        return {"n": int(n), "classes": classes, "groups": groups}


def _read_chunk(split: DataSplit, index: np.ndarray, unreadable: list[tuple[str, str]]) -> int:
    """Decode ``split.inputs[index]``; when the chunk fails, retry sample by sample to name every bad file.
    Returns how many samples came back with pixels (a placeholder source returns empty images)."""
    try:
        return len(index) if split.inputs[index].size else 0
    except DataError:
        pass
    read = 0
    for i in index:
        try:
            read += int(split.inputs[np.asarray([i])].size > 0)
        except DataError as exc:
            unreadable.append((str(split.sample_ids[i]), str(exc)))
    return read


def scan_split(
    split: DataSplit,
    class_names: Sequence[str],
    attribute_levels: dict[str, list[str]],
    *,
    desc: str = "scanning",
    chunk_size: int = CHUNK_SIZE,
    decode: bool = True,
    progress: Progress = "auto",
) -> ScanResult:
    """Count samples per class, per attribute level and per (class, level) cell chunk by chunk, decoding
    lazily read inputs (unless ``decode`` is false), with a tqdm bar on stderr that counts samples."""
    levels = {a: _levels(np.asarray(c), attribute_levels.get(a)) for a, c in split.attributes.items()}
    tally = _Tally(class_names, levels)
    lazy = decode and not isinstance(split.inputs, np.ndarray)
    unreadable: list[tuple[str, str]] = []
    decoded, n = 0, len(split)
    disable = {"auto": None, "always": False, "never": True}[progress]  # tqdm: None = off without a TTY
    bar = tqdm(total=n, desc=desc, unit="sample", disable=disable, file=sys.stderr, leave=True)
    with bar:
        for start in range(0, n, chunk_size):
            index = np.arange(start, min(start + chunk_size, n))
            labels = np.asarray(split.labels[index], dtype=np.int64)
            tally.add(labels, {a: np.asarray(split.attributes[a][index]) for a in levels})
            if lazy:
                decoded += _read_chunk(split, index, unreadable)
            bar.update(len(index))
    return ScanResult(counts=tally.counts(n), decoded=decoded, unreadable=unreadable)
