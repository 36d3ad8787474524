"""ImageNet-family CNNs from torchvision (random init, ``weights=None``): ResNet-18/34/50, DenseNet-121/169,
ShuffleNetV2 x1.0.

Each wrapper keeps the torchvision module as ``net`` (so a torchvision-format state_dict loads into it) and
calls its submodules in order, without hooks, to return the pooled penultimate ``features`` and the stage
``maps``: layer1..4 (ResNets), the outputs of dense blocks 1..3 and the final ReLU'd norm5 map (DenseNets),
stage2..4 (ShuffleNetV2). ``cifar_stem`` (default: on when ``image_size`` <= 64) replaces the 7x7 stride-2
stem conv and its max-pool by a 3x3 stride-1 conv, as is standard for 32x32 inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from kdfair.models.base import KDModel, ModelOutput
from kdfair.models.weights import load_pretrained

if TYPE_CHECKING:  # torchvision is imported when a model is built, so listing the registry stays fast
    from torchvision import models as tvm

CIFAR_STEM_MAX_SIZE = 64  # images this small (or smaller) get the 3x3 stride-1 stem by default


def _use_cifar_stem(cifar_stem: bool | None, image_size: int | None) -> bool:
    if cifar_stem is not None:
        return cifar_stem
    return image_size is not None and image_size <= CIFAR_STEM_MAX_SIZE


def _stem_conv(in_channels: int, out_channels: int, cifar_stem: bool) -> nn.Conv2d:
    """The first conv: 3x3 stride 1 (CIFAR stem) or the ImageNet 7x7 stride 2, both without bias."""
    if cifar_stem:
        return nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
    return nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False)


def _init_conv(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


class TorchvisionResNet(KDModel):
    """torchvision ResNet; maps = layer1..layer4 outputs, features = the pooled layer4 vector."""

    def __init__(self, net: tvm.ResNet, num_classes: int, in_channels: int, cifar_stem: bool) -> None:
        super().__init__()
        if cifar_stem or in_channels != 3:
            net.conv1 = _init_conv(_stem_conv(in_channels, net.conv1.out_channels, cifar_stem))
        if cifar_stem:
            net.maxpool = nn.Identity()
        self.net = net
        self.num_classes = num_classes
        self.feature_dim = net.fc.in_features

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        net = self.net
        out = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        maps = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            out = layer(out)
            maps.append(out)
        features = torch.flatten(net.avgpool(out), 1)
        return ModelOutput(net.fc(features), features, maps)


class TorchvisionDenseNet(KDModel):
    """torchvision DenseNet; maps = dense blocks 1..3 outputs and the final ReLU'd norm5 map."""

    def __init__(self, net: tvm.DenseNet, num_classes: int, in_channels: int, cifar_stem: bool) -> None:
        super().__init__()
        features = net.features
        if cifar_stem or in_channels != 3:
            features.conv0 = _init_conv(_stem_conv(in_channels, features.conv0.out_channels, cifar_stem))
        if cifar_stem:
            features.pool0 = nn.Identity()
        self.net = net
        self.num_classes = num_classes
        self.feature_dim = net.classifier.in_features

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        maps = []
        out = x
        for name, module in self.net.features.named_children():
            out = module(out)
            if name in ("denseblock1", "denseblock2", "denseblock3"):
                maps.append(out)
        out = F.relu(out)
        maps.append(out)
        features = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return ModelOutput(self.net.classifier(features), features, maps)


class TorchvisionShuffleNetV2(KDModel):
    """torchvision ShuffleNetV2; maps = stage2..stage4 outputs, features = the pooled 1024-d conv5 output."""

    def __init__(self, net: tvm.ShuffleNetV2, num_classes: int, in_channels: int, cifar_stem: bool) -> None:
        super().__init__()
        if cifar_stem or in_channels != 3:
            out_channels = net.conv1[0].out_channels
            net.conv1[0] = _init_conv(
                nn.Conv2d(in_channels, out_channels, 3, 1 if cifar_stem else 2, 1, bias=False)
            )
        if cifar_stem:
            net.maxpool = nn.Identity()
        self.net = net
        self.num_classes = num_classes
        self.feature_dim = net.fc.in_features

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        net = self.net
        out = net.maxpool(net.conv1(x))
        maps = []
        for stage in (net.stage2, net.stage3, net.stage4):
            out = stage(out)
            maps.append(out)
        features = net.conv5(out).mean([2, 3])
        return ModelOutput(net.fc(features), features, maps)


# arch -> (torchvision constructor name, wrapper class)
_BUILDERS = {
    "resnet18": ("resnet18", TorchvisionResNet),
    "resnet34": ("resnet34", TorchvisionResNet),
    "resnet50": ("resnet50", TorchvisionResNet),
    "densenet121": ("densenet121", TorchvisionDenseNet),
    "densenet169": ("densenet169", TorchvisionDenseNet),
    "shufflenet_v2": ("shufflenet_v2_x1_0", TorchvisionShuffleNetV2),
}


def torchvision_model(
    arch: str,
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int | None = None,
    pretrained: str | Path | None = None,
    cifar_stem: bool | None = None,
) -> KDModel:
    """Build torchvision ``arch`` (a key of ``_BUILDERS``) with random weights; never downloads."""
    from torchvision import models

    constructor, wrapper = _BUILDERS[arch]
    net = getattr(models, constructor)(weights=None, num_classes=num_classes)
    model = wrapper(net, num_classes, in_channels, _use_cifar_stem(cifar_stem, image_size))
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model
