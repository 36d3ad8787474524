"""Device, precision and determinism settings of a training process (PERF-NOTES §1-2).

``precision="auto"``: bf16 autocast + channels_last on CUDA, fp32 on the CPU (bf16 accuracy on the CPU is
unchecked, so it is an explicit option there). Loss, softmax and KD terms stay fp32: the methods cast logits
with ``.float()``. For best CPU speed start Python with tcmalloc preloaded
(``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4``) or PERF-NOTES' ``GLIBC_TUNABLES``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from kdfair.train.config import TrainConfig
from kdfair.train.sampling import STREAM_CUDA_RESUME, torch_seed_for


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed for one run (or lockstep group)."""

    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None = plain fp32
    channels_last: bool

    @property
    def precision(self) -> str:
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """bf16 autocast on the run's device, or a no-op for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def resolve_device(device: str | None) -> torch.device:
    """``device`` or, when None, CUDA if available else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_runtime(train: TrainConfig, device: torch.device, modality: str) -> Runtime:
    """Resolve ``train.precision`` and ``train.channels_last`` for ``device`` (channels_last: images only)."""
    use_bf16 = train.precision == "bf16" or (train.precision == "auto" and device.type == "cuda")
    if train.channels_last == "auto":
        channels_last = use_bf16
    else:
        channels_last = bool(train.channels_last)
    return Runtime(device, torch.bfloat16 if use_bf16 else None, channels_last and modality == "image")


CUBLAS_WORKSPACE = ":4096:8"  # the cuBLAS workspace setting that makes its GEMMs deterministic (CUDA docs)


@contextlib.contextmanager
def deterministic_threads(train: TrainConfig, device: torch.device | None = None) -> Iterator[None]:
    """Fix the thread count and apply ``train.deterministic`` for the block; restore torch's flags after.

    ``train.deterministic`` (what holds on each device: docs/sweeps.md "Determinism"):

    - ``true`` (default): ``torch.use_deterministic_algorithms(True, warn_only=True)``, so an op without a
      deterministic kernel warns, naming itself. On CUDA also ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (set in
      the process's environment when unset; cuBLAS reads it at its first call, so it stays set) and
      ``cudnn.benchmark`` off.
    - ``"strict"``: the same, but such an op raises: a run that finishes was computed deterministically.
    - ``false``: none of it, and ``cudnn.benchmark`` on on CUDA (the fastest convolutions; GPU results then
      vary from run to run).

    Deterministic mode also fills every new ``torch.empty`` tensor with NaN by default
    (``torch.utils.deterministic.fill_uninitialized_memory``), a debugging aid that changes no correct
    result but cost ResNet-20 training ~15% on the CPU (BENCHMARKS.md "Lockstep students"); it is off here.
    """
    import torch.utils.deterministic as deterministic

    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_fill = deterministic.fill_uninitialized_memory
    old_benchmark = torch.backends.cudnn.benchmark
    cuda = device is not None and device.type == "cuda"
    if train.threads is not None:
        torch.set_num_threads(train.threads)
    if train.deterministic:
        if cuda:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True, warn_only=train.deterministic != "strict")
        deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False
    elif cuda:
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        deterministic.fill_uninitialized_memory = old_fill
        torch.backends.cudnn.benchmark = old_benchmark


def resumed_cuda_rng_state(
    saved: torch.Tensor | None, device: torch.device, seed: int, epoch: int
) -> torch.Tensor | None:
    """The CUDA RNG state a resumed student continues with.

    Off CUDA: None, even when a GPU run wrote the checkpoint (the CPU run never calls ``torch.cuda``). On
    CUDA: the saved state, or, for a checkpoint written without CUDA, a state of the student's own seeded by
    ``(seed, epoch)`` (``STREAM_CUDA_RESUME``): every student keeps a stream of its own, as in a fresh run,
    instead of all drawing from the process's global CUDA stream.
    """
    if device.type != "cuda":
        return None
    if saved is not None:
        return saved
    generator = torch.Generator(device=device)
    generator.manual_seed(torch_seed_for(seed, epoch, STREAM_CUDA_RESUME))
    return generator.get_state()
