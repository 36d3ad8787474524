"""Counterfactual twins of a test split (SPEC §6): inputs that differ from a test sample in one protected
attribute only, everything else equal.

A loader that can make them (Trifeature, CIFAR-10S) sets ``Dataset.counterfactual`` to a
:class:`CounterfactualTwins`:

- ``split``: a :class:`~kdfair.data.base.DataSplit` of the twins. ``inputs`` are the twin images (often read
  lazily: rendered or gathered on first use), ``labels`` the label of the source sample (the label factor is
  unchanged), ``sample_ids`` the twins' own ids, ``attributes`` the twins' own protected-attribute codes.
- ``source_ids``: for each twin, the ``sample_id`` of the test sample it is a twin of.
- ``attribute``: for each twin, the name of the protected attribute that was changed.

Pairs are explicit: twin ``j`` pairs ``split.sample_ids[j]`` with ``source_ids[j]``. The sweep writes the
models' predictions of the twins to ``counterfactual.npz`` (:mod:`kdfair.counterfactual`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdfair.data.base import DataSplit, InputSource


@dataclass(frozen=True)
class CounterfactualTwins:
    """The counterfactual twins of a data set's test split (see the module docstring)."""

    split: DataSplit
    source_ids: np.ndarray  # (M,) test sample id each twin is a twin of
    attribute: np.ndarray  # (M,) str: the protected attribute changed

    def __post_init__(self) -> None:
        n = len(self.split)
        if len(self.source_ids) != n or len(self.attribute) != n:
            raise ValueError(
                f"twins: {n} twins but {len(self.source_ids)} source ids and {len(self.attribute)} attributes"
            )

    def __len__(self) -> int:
        return len(self.split)

    @property
    def attributes_changed(self) -> list[str]:
        """The protected attributes the twins change, in first-seen order."""
        return list(dict.fromkeys(str(a) for a in self.attribute))

    def check_against(self, test: DataSplit) -> None:
        """Raise ValueError unless every source id is a test id and twins keep their source's label."""
        order = np.argsort(test.sample_ids)
        sorted_ids = test.sample_ids[order]
        where = np.searchsorted(sorted_ids, self.source_ids)
        where = np.clip(where, 0, max(len(sorted_ids) - 1, 0))
        if len(sorted_ids) == 0 or not np.array_equal(sorted_ids[where], self.source_ids):
            raise ValueError("twins: some source ids are not sample ids of the test split")
        if not np.array_equal(test.labels[order[where]], self.split.labels):
            raise ValueError("twins: a twin's label differs from its source's label")


@dataclass(frozen=True)
class IndexView:
    """Rows ``index`` of ``base``, read lazily: ``view[i] == base[index[i]]`` (no copy of the images)."""

    base: InputSource
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.base[self.index[np.asarray(index, dtype=np.int64)]])
