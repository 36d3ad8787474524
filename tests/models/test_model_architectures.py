"""Architecture details: CIFAR ResNet sizes and option-A shortcuts, LeNet-5 sizes, the CIFAR stem option."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdfair.errors import ConfigError
from kdfair.models.cifar_resnet import CifarResNet, PadShortcut
from kdfair.models.registry import build_model


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cifar_resnet_params(depth: int, num_classes: int, in_channels: int = 3) -> int:
    """Independent count: stem conv+BN, 2 conv3x3+BN per block, no shortcut weights (option A), fc."""
    n = (depth - 2) // 6
    total = in_channels * 16 * 9 + 2 * 16
    previous = 16
    for channels in (16, 32, 64):
        for block in range(n):
            c_in = previous if block == 0 else channels
            total += c_in * channels * 9 + channels * channels * 9 + 4 * channels
        previous = channels
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize(
    ("name", "millions"), [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66), ("resnet56", 0.85)]
)
def test_cifar_resnet_parameter_counts_match_the_paper(name: str, millions: float) -> None:
    """He et al. 2016, Table 6: 0.27M / 0.46M / 0.66M / 0.85M parameters on CIFAR-10."""
    model = build_model(name, 10)
    depth = int(name.removeprefix("resnet"))
    assert n_params(model) == cifar_resnet_params(depth, 10)
    assert round(n_params(model) / 1e6, 2) == millions


def test_resnet20_and_resnet56_exact_counts() -> None:
    assert n_params(build_model("resnet20", 10)) == 269_722
    assert n_params(build_model("resnet56", 10)) == 853_018
    assert n_params(build_model("resnet20", 100)) == 269_722 + 64 * 90 + 90


def test_cifar_resnet_stage_maps_and_no_shortcut_weights() -> None:
    model = build_model("resnet20", 10, in_channels=1)
    assert not any("shortcut" in key for key in model.state_dict())
    assert len(model.stages) == 3 and all(len(stage) == 3 for stage in model.stages)
    out = model.forward_all(torch.randn(2, 1, 32, 32))
    assert [tuple(m.shape) for m in out.maps] == [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8)]
    # the features are the global average of the last stage map
    torch.testing.assert_close(out.features, out.maps[-1].mean(dim=(2, 3)))


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    y = PadShortcut(2, 4, stride=2)(x)
    assert y.shape == (1, 4, 2, 2)
    # channel layout: 1 zero channel, the 2 input channels at stride 2, 1 zero channel
    assert torch.equal(y[0, 0], torch.zeros(2, 2)) and torch.equal(y[0, 3], torch.zeros(2, 2))
    assert torch.equal(y[0, 1], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))
    assert torch.equal(y[0, 2], torch.tensor([[16.0, 18.0], [24.0, 26.0]]))


def test_cifar_resnet_kaiming_init() -> None:
    torch.manual_seed(0)
    conv = build_model("resnet110", 10).stages[2][0].conv2  # 64 -> 64 channels, 3x3: fan_in 576
    assert conv.weight.std().item() == pytest.approx((2.0 / 576) ** 0.5, rel=0.05)


@pytest.mark.parametrize("depth", [0, 7, 21, 2])
def test_cifar_resnet_bad_depth(depth: int) -> None:
    with pytest.raises(ConfigError, match="6n \\+ 2"):
        CifarResNet(depth, 10)


def lenet_params(image_size: int, num_classes: int, in_channels: int = 3) -> int:
    side = ((image_size - 4) // 2 - 4) // 2
    conv = (in_channels * 25 + 1) * 6 + (6 * 25 + 1) * 16
    return conv + (16 * side * side + 1) * 120 + (120 + 1) * 84 + (84 + 1) * num_classes


def test_lenet5_parameter_count_and_shapes() -> None:
    model = build_model("lenet5", 10)
    assert n_params(model) == 62_006 == lenet_params(32, 10)
    out = model.forward_all(torch.randn(3, 3, 32, 32))
    assert [tuple(m.shape) for m in out.maps] == [(3, 6, 14, 14), (3, 16, 5, 5)]
    assert out.features.shape == (3, 84) and (out.features >= 0).all()


@pytest.mark.parametrize(("image_size", "in_channels"), [(28, 1), (64, 3), (16, 3)])
def test_lenet5_adapts_to_image_size(image_size: int, in_channels: int) -> None:
    model = build_model("lenet5", 7, image_size=image_size, in_channels=in_channels)
    assert n_params(model) == lenet_params(image_size, 7, in_channels)
    assert model(torch.randn(2, in_channels, image_size, image_size)).shape == (2, 7)


def test_lenet5_too_small_image() -> None:
    with pytest.raises(ConfigError, match="image_size >= 16"):
        build_model("lenet5", 10, image_size=15)


@pytest.mark.parametrize(
    ("options", "kernel", "stride", "has_maxpool"),
    [
        ({}, 7, 2, True),
        ({"image_size": 224}, 7, 2, True),
        ({"image_size": 64}, 3, 1, False),
        ({"image_size": 32}, 3, 1, False),
        ({"image_size": 32, "cifar_stem": False}, 7, 2, True),
        ({"image_size": 224, "cifar_stem": True}, 3, 1, False),
    ],
)
def test_torchvision_resnet_cifar_stem(options: dict, kernel: int, stride: int, has_maxpool: bool) -> None:
    net = build_model("resnet18", 10, **options).net
    assert net.conv1.kernel_size == (kernel, kernel) and net.conv1.stride == (stride, stride)
    assert isinstance(net.maxpool, nn.MaxPool2d) is has_maxpool


def test_cifar_stem_keeps_resolution_in_every_family() -> None:
    def first_map_side(name: str, **options: object) -> int:
        model = build_model(name, 10, **options).eval()
        with torch.no_grad():
            return model.forward_all(torch.randn(1, 3, 16, 16)).maps[0].shape[-1]

    assert first_map_side("resnet18", image_size=16) == 16
    assert first_map_side("densenet121", image_size=16) == 16
    assert first_map_side("shufflenet_v2", image_size=16) == 8  # stage2 itself has stride 2
    assert first_map_side("shufflenet_v2") == 2  # ImageNet stem: 16 / 4, then stage2


def test_in_channels_changes_the_stem() -> None:
    for name in ("resnet18", "densenet121", "shufflenet_v2"):
        model = build_model(name, 4, in_channels=1, image_size=16)
        assert model(torch.randn(2, 1, 16, 16)).shape == (2, 4)


def test_small_vit_options_and_bad_text_heads() -> None:
    vit = build_model("vit_base", 3, image_size=32, patch_size=8, depth=1, embed_dim=48, num_heads=3)
    assert vit.feature_dim == 48 and vit.net.patch_embed.num_patches == 16 and len(vit.net.blocks) == 1
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        build_model("bert_base", 2, hidden_size=30, num_heads=4, num_layers=1)
    with pytest.raises(ConfigError, match="image_size 30 is not a multiple of patch_size 8"):
        build_model("vit_base", 3, image_size=30, patch_size=8, depth=1, embed_dim=48, num_heads=3)
    with pytest.raises(ConfigError, match="unknown variant"):
        build_model("tiny_vit", 2, variant="tiny_vit_9m")
