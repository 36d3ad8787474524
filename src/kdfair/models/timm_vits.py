"""Vision transformers from timm, always with ``pretrained=False``: ViT-Base/16 and TinyViT-5M.

The wrapper keeps the timm module as ``net`` (a timm-format state_dict loads into it). ``features`` is the
pre-logits vector (``forward_features`` then ``forward_head(pre_logits=True)``: pooled [CLS] / average token
after the head norm); ``logits`` is the classifier applied to it; ``maps`` is empty (not a conv net).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kdfair.errors import ConfigError
from kdfair.models.base import KDModel, ModelOutput
from kdfair.models.weights import load_pretrained

VIT_DEFAULT_IMAGE_SIZE = 224


class TimmClassifier(KDModel):
    """A timm classification model seen through the KDModel interface."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.feature_dim = int(net.num_features)

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        features = self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        return ModelOutput(self.net.get_classifier()(features), features, [])


def vit_base(
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int | None = None,
    pretrained: str | Path | None = None,
    patch_size: int = 16,
    depth: int = 12,
    embed_dim: int = 768,
    num_heads: int = 12,
) -> KDModel:
    """ViT-Base (86M parameters at the defaults) on ``image_size`` (default 224) images split into
    ``patch_size`` patches; ``depth``/``embed_dim``/``num_heads`` shrink it for tests."""
    import timm

    size = image_size or VIT_DEFAULT_IMAGE_SIZE
    if size % patch_size != 0:
        raise ConfigError(f"vit_base: image_size {size} is not a multiple of patch_size {patch_size}")
    net = timm.create_model(
        "vit_base_patch16_224",
        pretrained=False,
        num_classes=num_classes,
        in_chans=in_channels,
        img_size=size,
        patch_size=patch_size,
        depth=depth,
        embed_dim=embed_dim,
        num_heads=num_heads,
    )
    return _finish(TimmClassifier(net, num_classes), pretrained)


def tiny_vit(
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int | None = None,
    pretrained: str | Path | None = None,
    variant: str = "tiny_vit_5m_224",
) -> KDModel:
    """TinyViT (``variant``: tiny_vit_5m_224 (5.4M), tiny_vit_11m_224 or tiny_vit_21m_224). timm 1.0's
    TinyViT has no ``img_size`` argument: its windowed attention pads, so any image_size >= 32 works."""
    import timm

    variants = ("tiny_vit_5m_224", "tiny_vit_11m_224", "tiny_vit_21m_224")
    if variant not in variants:
        raise ConfigError(f"tiny_vit: unknown variant '{variant}'; valid variants: {', '.join(variants)}")
    net = timm.create_model(variant, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    return _finish(TimmClassifier(net, num_classes), pretrained)


def _finish(model: KDModel, pretrained: str | Path | None) -> KDModel:
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model
