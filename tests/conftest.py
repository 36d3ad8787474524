"""Session-wide test settings.

Torch runs single-threaded in tests: on a small shared machine, intra-op threads spin against each other and
make small CPU convolutions far slower, and one thread keeps CPU results bit-reproducible. Tests never reach
the network: Hugging Face libraries are told to stay offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread() -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
