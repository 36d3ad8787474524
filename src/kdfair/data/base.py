"""What every data set loader returns: a :class:`Dataset` of named :class:`DataSplit` objects.

Images are uint8 arrays of shape (N, H, W, 3) (RGB, HWC), either held in memory as a numpy array or read
lazily from files by an object with ``__len__`` and ``__getitem__(index_array) -> uint8 (B, H, W, 3)``.
Text inputs are int64 token ids of shape (N, L), padded with ``pad_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from kdfair.data.twins import CounterfactualTwins


class InputSource(Protocol):
    """Anything indexable by an int64 index array that returns a batch as a numpy array."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class DataSplit:
    """One split: inputs, integer labels, stable sample ids and protected attributes as integer codes."""

    inputs: InputSource
    labels: np.ndarray
    sample_ids: np.ndarray
    attributes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if len(self.inputs) != n or len(self.sample_ids) != n:
            raise ValueError(
                f"split arrays differ in length: inputs {len(self.inputs)}, labels {n}, "
                f"sample_ids {len(self.sample_ids)}"
            )
        for name, codes in self.attributes.items():
            if len(codes) != n:
                raise ValueError(f"attribute '{name}' has {len(codes)} values, expected {n}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> DataSplit:
        """The samples at ``index`` (an int array), materialising lazily read inputs only when indexed."""
        index = np.asarray(index, dtype=np.int64)
        inputs = (
            self.inputs[index] if isinstance(self.inputs, np.ndarray) else _IndexedSource(self.inputs, index)
        )
        return DataSplit(
            inputs=inputs,
            labels=self.labels[index],
            sample_ids=self.sample_ids[index],
            attributes={k: v[index] for k, v in self.attributes.items()},
        )


@dataclass(frozen=True)
class _IndexedSource:
    base: InputSource
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return self.base[self.index[np.asarray(index, dtype=np.int64)]]


@dataclass(frozen=True)
class Dataset:
    """A loaded data set. ``splits`` has at least "train" and "test"; "val" where the data set defines one."""

    name: str
    modality: Literal["image", "text"]
    num_classes: int
    class_names: list[str]
    splits: dict[str, DataSplit]
    attribute_levels: dict[str, list[str]] = field(default_factory=dict)
    image_size: int | None = None
    vocab_size: int | None = None
    pad_id: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    # counterfactual twins of the test split (SPEC §6; kdfair.data.twins), for data sets that can make them
    counterfactual: CounterfactualTwins | None = None

    def split(self, name: str) -> DataSplit:
        if name not in self.splits:
            raise KeyError(f"data set '{self.name}' has no split '{name}' (has: {', '.join(self.splits)})")
        return self.splits[name]
