"""A counter of host reads of tensor values made by kdfair's own code (a CPU stand-in for
``torch.cuda.set_sync_debug_mode``): on a GPU each of these waits for the device.

Counted: ``item``, ``tolist``, ``numpy``, ``float()``/``int()``/``bool()`` of a tensor (``if tensor:``),
``nonzero``, ``unique``, ``masked_select``, ``bincount`` (on CUDA it reads its input's range back) and
indexing with a boolean mask, when the call comes from a module of the ``kdfair`` package (torch's own host
reads, such as a CPU optimizer reading its step count, are not kdfair's and are never device syncs).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

import kdfair

KDFAIR = str(Path(kdfair.__file__).parent)
# torch's dispatch to a TorchFunctionMode: Tensor.__float__ and friends are Python functions in _tensor.py
DISPATCH = {str(Path(torch.__file__).parent / name) for name in ("_tensor.py", "overrides.py")}
READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__bool__,
    torch.Tensor.__index__,
    torch.Tensor.nonzero,
    torch.nonzero,
    torch.unique,
    torch.Tensor.unique,
    torch.masked_select,
    torch.Tensor.masked_select,
    torch.bincount,  # on CUDA it reads the max and min back to size its output
    torch.Tensor.bincount,
}
INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}


def _boolean_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(torch.is_tensor(i) and i.dtype == torch.bool and i.dim() > 0 for i in items)


class HostReads(TorchFunctionMode):
    """``with HostReads() as reads:`` ... ``reads.calls``: ``"<function> at <file>:<line>"`` per host read."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        read = func in READS or (func in INDEXING and len(args) > 1 and _boolean_index(args[1]))
        if read:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename in DISPATCH:
                frame = frame.f_back
            if frame is not None and frame.f_code.co_filename.startswith(KDFAIR):
                name = getattr(func, "__name__", str(func))
                self.calls.append(f"{name} at {frame.f_code.co_filename}:{frame.f_lineno}")
        return func(*args, **(kwargs or {}))
