"""K same-architecture students as one wider network (HFTA, Wang et al., MLSys 2021).

Every parameter and buffer of the K models is stacked into one tensor of shape ``(K, *shape)``: slice ``k`` is
model ``k``'s tensor, so an elementwise optimiser (SGD, Adam) over the stacked tensors does each model's own
update, and unstacking gives back each model's state_dict. The forward pass uses the stacked tensors as:

- a first convolution with ``K * C_out`` output channels on the shared input;
- later convolutions grouped (``groups = K``): group ``k`` sees only model ``k``'s channels;
- BatchNorm over ``K * C`` channels, which is per channel, so each model keeps its own batch statistics and
  running averages;
- linear layers as batched matmuls (``torch.baddbmm``) over ``(K, B, features)``;
- activations in channels_last layout (see :meth:`FusedStudents.forward`).

It returns ``(K, B, num_classes)`` logits, model ``k``'s logits in slice ``k``, equal to its own forward up to
float32 round-off (other summation orders inside the convolutions and matmuls). Supported: LeNet-5 and the
CIFAR ResNets (:func:`fusable_architecture`); their layers draw no random numbers (no dropout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdfair.models.base import KDModel
from kdfair.models.cifar_resnet import CifarResNet, PadShortcut
from kdfair.models.lenet import LeNet5

FUSABLE_MODELS = (LeNet5, CifarResNet)


def fusable_architecture(models: list[KDModel]) -> str | None:
    """Why ``models`` cannot be fused into one :class:`FusedStudents` (None: they can).

    They can when every model is a LeNet-5 or every model is a CIFAR ResNet (exact classes), with equal
    parameter and buffer names and shapes (same depth, classes, input channels and image size).
    """
    kinds = {type(m) for m in models}
    if len(kinds) != 1 or next(iter(kinds)) not in FUSABLE_MODELS:
        names = ", ".join(sorted(k.__name__ for k in kinds))
        return f"architecture {names} is not fusable (LeNet-5 and CIFAR ResNets are)"
    shapes = {tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in models}
    if len(shapes) != 1:
        return "the students' parameter shapes differ"
    return None


class FusedStudents:
    """K models of one fusable architecture as stacked tensors, with a fused training forward.

    ``params`` maps each parameter name of the template (``"conv1.weight"``, ...) to a leaf
    ``nn.Parameter`` of shape ``(K, *shape)``; ``buffers`` likewise (BatchNorm running statistics and
    ``num_batches_tracked``). The models themselves are left untouched until :meth:`unfuse`.
    """

    def __init__(self, models: list[KDModel]) -> None:
        reason = fusable_architecture(models)
        if reason is not None:
            raise ValueError(reason)
        self.k = len(models)
        self.template = models[0]
        with torch.no_grad():
            named = [dict(m.named_parameters()) for m in models]
            self.params = {
                name: nn.Parameter(torch.stack([n[name].detach() for n in named]).contiguous())
                for name in named[0]
            }
            buffers = [dict(m.named_buffers()) for m in models]
            self.buffers = {name: torch.stack([b[name] for b in buffers]).contiguous() for name in buffers[0]}

    def parameters(self) -> list[nn.Parameter]:
        """The stacked parameters, in the template's parameter order."""
        return list(self.params.values())

    def unfuse(self, models: list[KDModel], slots: list[int] | None = None) -> None:
        """Copy slice ``slots[j]`` (default ``j``) of every stacked parameter and buffer into model ``j``."""
        slots = list(range(len(models))) if slots is None else slots
        with torch.no_grad():
            for k, model in zip(slots, models, strict=True):
                for name, tensor in model.named_parameters():
                    tensor.copy_(self.params[name][k])
                for name, tensor in model.named_buffers():
                    tensor.copy_(self.buffers[name][k])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training-mode logits of all K models on the shared batch ``x``: ``(K, B, num_classes)``.

        BatchNorm uses batch statistics and updates each model's running averages (and counter). The input is
        made channels_last first: grouped convolutions on the CPU run 1.5-1.8x faster in that layout (LeNet-5,
        K = 10, PERF-NOTES §4), and it changes only the round-off.
        """
        x = x.contiguous(memory_format=torch.channels_last)
        if isinstance(self.template, LeNet5):
            return self._lenet5(x)
        return self._cifar_resnet(x)

    def _lenet5(self, x: torch.Tensor) -> torch.Tensor:
        p, k = self.params, self.k
        h = F.conv2d(x, p["conv1.weight"].flatten(0, 1), p["conv1.bias"].flatten())  # shared input
        h = F.max_pool2d(F.relu(h), 2)
        h = F.conv2d(h, p["conv2.weight"].flatten(0, 1), p["conv2.bias"].flatten(), groups=k)
        h = F.max_pool2d(F.relu(h), 2)  # (B, K * 16, s, s)
        h = h.reshape(h.shape[0], k, -1).transpose(0, 1)  # (K, B, 16 * s * s), LeNet5's flatten order
        h = F.relu(_linear(h, p["fc1.weight"], p["fc1.bias"]))
        h = F.relu(_linear(h, p["fc2.weight"], p["fc2.bias"]))
        return _linear(h, p["fc3.weight"], p["fc3.bias"])

    def _cifar_resnet(self, x: torch.Tensor) -> torch.Tensor:
        p, k = self.params, self.k
        out = F.relu(self._bn(F.conv2d(x, p["conv1.weight"].flatten(0, 1), padding=1), "bn1"))
        assert isinstance(self.template, CifarResNet)
        for i, stage in enumerate(self.template.stages):
            for j, block in enumerate(stage):
                out = self._block(out, f"stages.{i}.{j}", block)
        features = F.adaptive_avg_pool2d(out, 1).flatten(1)  # (B, K * 64)
        features = features.reshape(features.shape[0], k, -1).transpose(0, 1)  # (K, B, 64)
        return _linear(features, p["fc.weight"], p["fc.bias"])

    def _block(self, x: torch.Tensor, prefix: str, block: nn.Module) -> torch.Tensor:
        """One BasicBlock of all K models: grouped 3x3 convolutions, per-model BatchNorm, option-A pad."""
        p, k = self.params, self.k
        stride = block.conv1.stride
        out = F.conv2d(x, p[f"{prefix}.conv1.weight"].flatten(0, 1), stride=stride, padding=1, groups=k)
        out = F.relu(self._bn(out, f"{prefix}.bn1"))
        out = F.conv2d(out, p[f"{prefix}.conv2.weight"].flatten(0, 1), padding=1, groups=k)
        out = self._bn(out, f"{prefix}.bn2")
        shortcut = x
        if isinstance(block.shortcut, PadShortcut):
            step, extra = block.shortcut.stride, block.shortcut.extra
            shortcut = x[:, :, ::step, ::step].unflatten(1, (k, -1))  # (B, K, C_in, H', W')
            shortcut = F.pad(shortcut, (0, 0, 0, 0, extra // 2, extra - extra // 2)).flatten(1, 2)
        return F.relu(out + shortcut)

    def _bn(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """Training-mode BatchNorm over ``K * C`` channels: per model and channel, as ``nn.BatchNorm2d``."""
        module = self.template.get_submodule(prefix)
        assert isinstance(module, nn.BatchNorm2d)
        self.buffers[f"{prefix}.num_batches_tracked"].add_(1)
        return F.batch_norm(
            x,
            self.buffers[f"{prefix}.running_mean"].view(-1),  # views: updated in place
            self.buffers[f"{prefix}.running_var"].view(-1),
            self.params[f"{prefix}.weight"].flatten(),
            self.params[f"{prefix}.bias"].flatten(),
            training=True,
            momentum=module.momentum,
            eps=module.eps,
        )


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """K linear layers: ``x`` (K, B, in), ``weight`` (K, out, in), ``bias`` (K, out) -> (K, B, out)."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
