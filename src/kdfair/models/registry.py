"""Models by name (the sweep config's ``teacher.model`` / ``student.model`` values).

Each entry maps a name to a factory ``factory(num_classes, *, in_channels=3, image_size=None,
pretrained=None, **options) -> KDModel``, the input modality (``"image"``: float (B, C, H, W); ``"text"``:
int64 token ids (B, L)) and a one-line description. Models start from random initialisation; ``pretrained``
names an optional local state_dict file. Nothing is ever downloaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from kdfair.errors import ConfigError
from kdfair.models.base import KDModel
from kdfair.models.cifar_resnet import cifar_resnet
from kdfair.models.lenet import lenet5
from kdfair.models.text_transformers import bert_base, distilbert
from kdfair.models.timm_vits import tiny_vit, vit_base
from kdfair.models.torchvision_nets import torchvision_model

Modality = Literal["image", "text"]


@dataclass(frozen=True)
class ModelSpec:
    factory: Callable[..., KDModel]
    modality: Modality
    description: str


MODELS: dict[str, ModelSpec] = {
    "resnet20": ModelSpec(partial(cifar_resnet, 20), "image", "CIFAR ResNet-20, option-A shortcuts, 0.27M"),
    "resnet32": ModelSpec(partial(cifar_resnet, 32), "image", "CIFAR ResNet-32, option-A shortcuts, 0.46M"),
    "resnet44": ModelSpec(partial(cifar_resnet, 44), "image", "CIFAR ResNet-44, option-A shortcuts, 0.66M"),
    "resnet56": ModelSpec(partial(cifar_resnet, 56), "image", "CIFAR ResNet-56, option-A shortcuts, 0.85M"),
    "resnet110": ModelSpec(partial(cifar_resnet, 110), "image", "CIFAR ResNet-110, option-A shortcuts, 1.7M"),
    "lenet5": ModelSpec(lenet5, "image", "LeNet-5 for colour input (ReLU, max-pool), 62k at 32x32"),
    "resnet18": ModelSpec(partial(torchvision_model, "resnet18"), "image", "torchvision ResNet-18, 11.7M"),
    "resnet34": ModelSpec(partial(torchvision_model, "resnet34"), "image", "torchvision ResNet-34, 21.8M"),
    "resnet50": ModelSpec(partial(torchvision_model, "resnet50"), "image", "torchvision ResNet-50, 25.6M"),
    "densenet121": ModelSpec(
        partial(torchvision_model, "densenet121"), "image", "torchvision DenseNet-121, 8.0M"
    ),
    "densenet169": ModelSpec(
        partial(torchvision_model, "densenet169"), "image", "torchvision DenseNet-169, 14.1M"
    ),
    "shufflenet_v2": ModelSpec(
        partial(torchvision_model, "shufflenet_v2"), "image", "torchvision ShuffleNetV2 x1.0"
    ),
    "vit_base": ModelSpec(vit_base, "image", "timm ViT-Base/16 (86M), img_size and patch_size options"),
    "tiny_vit": ModelSpec(tiny_vit, "image", "timm TinyViT-5M (5.4M at 1000 classes)"),
    "bert_base": ModelSpec(
        bert_base, "text", "transformers BERT-Base from BertConfig() (110M), [CLS] pooler head"
    ),
    "distilbert": ModelSpec(distilbert, "text", "transformers DistilBERT from DistilBertConfig() (67M)"),
}


def model_spec(name: str) -> ModelSpec:
    """The registered model ``name``; an unknown name raises :class:`ConfigError` listing the valid ones."""
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def model_options(name: str) -> list[str]:
    """The keyword options model ``name``'s factory accepts (besides ``num_classes``)."""
    parameters = inspect.signature(model_spec(name).factory).parameters
    return [p for p, v in parameters.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]


def build_model(name: str, num_classes: int, **options: Any) -> KDModel:
    """Build model ``name`` for ``num_classes`` classes; unknown options are a ConfigError."""
    spec = model_spec(name)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"model '{name}': num_classes must be an integer >= 2, got {num_classes!r}")
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"model '{name}': unknown option(s) {unknown}; valid options: {', '.join(valid)}")
    return spec.factory(num_classes, **options)
