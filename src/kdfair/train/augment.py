"""Batches of model inputs, built in the main process on tensors (PERF-NOTES §5: no DataLoader).

Images: the uint8 split is converted to NCHW once and, when augmenting, zero-padded once (padding 4 at 32x32,
scaled with the image size). Each batch is a random crop and a horizontal flip done as one gather, with the
crop offsets and flips drawn from a ``torch.Generator`` seeded by ``(seed, epoch)``; then the uint8 batch
is normalised on the device with per-channel mean/std (of the train split, or 0.5/0.5).
Text: token ids are passed through unchanged.

On CUDA the host never waits for the GPU: an in-memory split of at most ``DEVICE_IMAGES_BYTES`` (padded,
uint8) is kept on the GPU once, so crop, flip and normalisation run there; a lazily read split (or a larger
one) is gathered on the host into pinned memory and copied without blocking, as are the index tensors
(:meth:`InputPipeline.to_device`). The trainer builds the next batch on a worker thread meanwhile
(``EpochContext.prefetch``). On the CPU nothing changes: the same gathers in the same order.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kdfair.data.base import DataSplit

STATS_SAMPLE = 20_000  # images used to estimate mean/std of lazily read splits (in-memory: all)
# in-memory image splits up to this size (bytes, padded uint8 NCHW) live on a CUDA device: CIFAR's 50,000
# padded 40x40 images take 240 MB; 4 GiB leaves most of a 16 GB GPU to training
DEVICE_IMAGES_BYTES = 4 << 30


def crop_padding(image_size: int) -> int:
    """Random-crop padding in pixels: 4 at 32x32 (SPEC §3), scaled with the image side."""
    return max(1, round(4 * image_size / 32))


def channel_stats(split: DataSplit) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of a uint8 image split in [0, 1] units (float64, (3,))."""
    n = len(split)
    index = np.arange(n) if isinstance(split.inputs, np.ndarray) or n <= STATS_SAMPLE else None
    if index is None:
        index = np.linspace(0, n - 1, STATS_SAMPLE).round().astype(np.int64)
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for start in range(0, len(index), 4096):
        chunk = np.asarray(split.inputs[index[start : start + 4096]], dtype=np.float64) / 255.0
        total += chunk.sum(axis=(0, 1, 2))
        total_sq += (chunk**2).sum(axis=(0, 1, 2))
        count += chunk.shape[0] * chunk.shape[1] * chunk.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return mean, std


class InputPipeline:
    """Builds normalised input batches of one split on ``device``.

    ``augment`` pads the split once and crops/flips every batch; ``mean``/``std`` are per-channel in [0, 1]
    units. ``channels_last`` returns image batches in that memory format (PERF-NOTES §2).
    ``images_on_device``: keep an in-memory image split on ``device`` and gather there; None (default): on
    CUDA when the padded split is at most ``DEVICE_IMAGES_BYTES``, never on the CPU (where it is the same).
    """

    def __init__(
        self,
        split: DataSplit,
        *,
        modality: str,
        augment: bool,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        images_on_device: bool | None = None,
    ) -> None:
        self.split, self.modality, self.device = split, modality, torch.device(device)
        self.augment = augment and modality == "image"
        self.channels_last = channels_last and modality == "image"
        self._images: torch.Tensor | None = None
        self.pad = 0
        if modality == "image":
            sample = np.asarray(split.inputs[np.arange(min(1, len(split)), dtype=np.int64)])
            self.image_size = int(sample.shape[1])
            self.pad = crop_padding(self.image_size) if self.augment else 0
            if isinstance(split.inputs, np.ndarray):
                images = self._to_nchw(split.inputs)
                if images_on_device is None:
                    images_on_device = self.device.type == "cuda" and images.numel() <= DEVICE_IMAGES_BYTES
                self._images = images.to(self.device) if images_on_device else images
            mean = np.full(3, 0.5) if mean is None else mean
            std = np.full(3, 0.5) if std is None else std
            # normalise uint8 directly: (x - 255 mean) / (255 std)
            self._shift = torch.tensor(np.asarray(mean) * 255.0, dtype=torch.float32).view(1, -1, 1, 1)
            self._scale = torch.tensor(1.0 / (np.asarray(std) * 255.0), dtype=torch.float32).view(1, -1, 1, 1)
            self._shift, self._scale = self._shift.to(self.device), self._scale.to(self.device)

    def _to_nchw(self, images: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        if self.pad:
            tensor = F.pad(tensor, (self.pad,) * 4)
        return tensor.contiguous()

    def __len__(self) -> int:
        return len(self.split)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A host tensor on the pipeline's device; to CUDA through pinned memory, not blocking the host."""
        if self.device.type != "cuda":
            return tensor.to(self.device)
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def draw(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Random crop offsets ``(B, 2)`` in ``[0, 2 * pad]`` and flip flags ``(B,)`` for one batch."""
        offsets = torch.randint(0, 2 * self.pad + 1, (batch_size, 2), generator=generator)
        flips = torch.rand(batch_size, generator=generator) < 0.5
        return offsets, flips

    def batch(
        self, index: np.ndarray, augmentation: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Inputs at ``index`` (positions in the split), normalised, on the device.

        ``augmentation`` (from :meth:`draw`, one row per index) crops and flips; None takes the centre.
        """
        index = np.asarray(index, dtype=np.int64)
        if self.modality != "image":
            return self.to_device(torch.from_numpy(np.asarray(self.split.inputs[index], dtype=np.int64)))
        if self._images is not None:
            source, rows_of = self._images, torch.from_numpy(index)
        else:
            source, rows_of = self._to_nchw(np.asarray(self.split.inputs[index])), torch.arange(len(index))
        if source.device != rows_of.device:  # the split lives on the device: gather there
            rows_of = self.to_device(rows_of)
            if augmentation is not None:
                augmentation = (self.to_device(augmentation[0]), self.to_device(augmentation[1]))
        size = self.image_size
        if augmentation is None or not self.augment:
            p = self.pad
            images = source[rows_of][:, :, p : p + size, p : p + size]
        else:
            images = _crop_flip(source, rows_of, *augmentation, size)
        if images.device != self.device:
            images = self.to_device(images)
        images = images.float().sub_(self._shift).mul_(self._scale)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


def _crop_flip(
    padded: torch.Tensor, rows_of: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, size: int
) -> torch.Tensor:
    """Crop ``size x size`` at ``offsets`` from ``padded[rows_of]``, mirrored where ``flips``: one gather."""
    steps = torch.arange(size, device=padded.device)
    rows = offsets[:, 0:1] + steps  # (B, size)
    cols = offsets[:, 1:2] + torch.where(flips[:, None], size - 1 - steps, steps)  # (B, size)
    channels = torch.arange(padded.shape[1], device=padded.device)
    return padded[
        rows_of[:, None, None, None],
        channels[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
