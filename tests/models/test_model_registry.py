"""Every registry model: builds offline, runs forward/backward, and honours the KDModel contract."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
import torch
from torch import nn

from kdfair.errors import ConfigError
from kdfair.models.base import KDModel
from kdfair.models.registry import MODELS, build_model, model_options

NUM_CLASSES = 5
BATCH = 2
SEQ_LEN = 12
SMALL_TEXT = dict(
    vocab_size=50, num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, max_length=32
)
SIDE = 16  # image side for the fast tests; every image model accepts it
SMALL_VIT = dict(image_size=SIDE, patch_size=8, depth=2, embed_dim=64, num_heads=4)

# Options that keep each model fast on a CPU; the defaults are the real sizes (checked further below).
SMALL_OPTIONS: dict[str, dict[str, object]] = {
    "resnet20": {},
    "resnet32": {},
    "resnet44": {},
    "resnet56": {},
    "resnet110": {},
    "lenet5": {"image_size": SIDE},
    "resnet18": {"image_size": SIDE},
    "resnet34": {"image_size": SIDE},
    "resnet50": {"image_size": SIDE},
    "densenet121": {"image_size": SIDE},
    "densenet169": {"image_size": SIDE},
    "shufflenet_v2": {"image_size": SIDE},
    "vit_base": SMALL_VIT,
    "tiny_vit": {"image_size": SIDE},
    "bert_base": SMALL_TEXT,
    "distilbert": SMALL_TEXT,
}

CONV_NETS = {
    "resnet20": 3,
    "resnet32": 3,
    "resnet44": 3,
    "resnet56": 3,
    "resnet110": 3,
    "lenet5": 2,
    "resnet18": 4,
    "resnet34": 4,
    "resnet50": 4,
    "densenet121": 4,
    "densenet169": 4,
    "shufflenet_v2": 3,
}

# The final linear layer of each model: logits must equal classifier(features).
CLASSIFIER: dict[str, Callable[[KDModel], nn.Module]] = {
    **{name: (lambda m: m.fc) for name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")},
    "lenet5": lambda m: m.fc3,
    **{name: (lambda m: m.net.fc) for name in ("resnet18", "resnet34", "resnet50", "shufflenet_v2")},
    **{
        name: (lambda m: m.net.classifier)
        for name in ("densenet121", "densenet169", "bert_base", "distilbert")
    },
    "vit_base": lambda m: m.net.head,
    "tiny_vit": lambda m: m.net.head.fc,
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection (a weight download) fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def make_input(name: str, generator: torch.Generator) -> torch.Tensor:
    if MODELS[name].modality == "text":
        ids = torch.randint(1, 50, (BATCH, SEQ_LEN), generator=generator)
        ids[0, SEQ_LEN // 2 :] = 0  # padding: masked out
        return ids
    return torch.randn(BATCH, 3, SIDE, SIDE, generator=generator)


def test_every_registered_model_has_test_options() -> None:
    assert set(SMALL_OPTIONS) == set(MODELS) == set(CLASSIFIER)
    assert all(spec.modality in ("image", "text") and spec.description for spec in MODELS.values())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES, **SMALL_OPTIONS[name])
    assert isinstance(model, KDModel) and model.num_classes == NUM_CLASSES
    x = make_input(name, torch.Generator().manual_seed(1))

    model.train()
    out = model.forward_all(x)
    assert out.logits.shape == (BATCH, NUM_CLASSES)
    assert out.features.shape == (BATCH, model.feature_dim)
    if name in CONV_NETS:
        assert len(out.maps) == CONV_NETS[name]
        assert all(m.dim() == 4 and m.shape[0] == BATCH for m in out.maps)
    else:
        assert out.maps == []
    (out.logits.logsumexp(dim=1).sum() + out.features.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    model.eval()
    with torch.no_grad():
        out = model.forward_all(x)
        torch.testing.assert_close(model(x), out.logits)
        torch.testing.assert_close(CLASSIFIER[name](model)(out.features), out.logits)


@pytest.mark.parametrize(
    "name", ["resnet20", "lenet5", "resnet18", "densenet121", "shufflenet_v2", "tiny_vit"]
)
def test_channels_last_matches_contiguous(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES, **SMALL_OPTIONS[name]).eval()
    x = make_input(name, torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "vit_base", "tiny_vit", "distilbert"])
def test_bf16_autocast_runs(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES, **SMALL_OPTIONS[name])
    x = make_input(name, torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.forward_all(x)
    assert out.logits.shape == (BATCH, NUM_CLASSES) and out.features.shape == (BATCH, model.feature_dim)
    assert torch.isfinite(out.logits.float()).all()
    out.logits.float().sum().backward()


@pytest.mark.parametrize(
    "name",
    ["resnet18", "densenet121", "shufflenet_v2", "vit_base", "tiny_vit"],
)
def test_wrapper_logits_equal_library_forward(name: str) -> None:
    """The hook-free forward_all reproduces the library module's own forward."""
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES, **SMALL_OPTIONS[name]).eval()
    x = make_input(name, torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net(x))


@pytest.mark.parametrize("name", ["bert_base", "distilbert"])
def test_text_wrapper_equals_library_forward_with_padding_mask(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES, **SMALL_TEXT).eval()
    x = make_input(name, torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model.net(input_ids=x, attention_mask=(x != 0).long()).logits
        torch.testing.assert_close(model(x), expected)
        # Row 0 is padded after SEQ_LEN // 2 tokens: the mask makes it equal to the unpadded short sequence,
        # while the same ids with an all-ones mask give different logits.
        short = model(x[:1, : SEQ_LEN // 2])
        unmasked = model.net(input_ids=x, attention_mask=torch.ones_like(x)).logits
    torch.testing.assert_close(short[0], expected[0], rtol=1e-4, atol=1e-5)
    assert (unmasked[0] - expected[0]).abs().max() > 1e-5  # random-init logits are ~0.01; noise ~1e-7


# Published parameter counts (torchvision / timm model cards, bert-base-uncased, distilbert-base-uncased)
# with the ImageNet stem and 1000 classes (text: 2 classes).
FULL_SIZE_PARAMETERS = {
    "resnet18": (1000, 11_689_512),
    "resnet34": (1000, 21_797_672),
    "resnet50": (1000, 25_557_032),
    "densenet121": (1000, 7_978_856),
    "densenet169": (1000, 14_149_480),
    "shufflenet_v2": (1000, 2_278_604),
    "tiny_vit": (1000, 5_392_764),
    "vit_base": (1000, 86_567_656),
    "bert_base": (2, 109_482_240 + 768 * 2 + 2),
    "distilbert": (2, 66_362_880 + 768 * 768 + 768 + 768 * 2 + 2),
}
HUGE = ["bert_base", "distilbert", "vit_base"]


def count_full_size(name: str) -> None:
    num_classes, expected = FULL_SIZE_PARAMETERS[name]
    model = build_model(name, num_classes)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("name", [n for n in sorted(FULL_SIZE_PARAMETERS) if n not in HUGE])
def test_default_size_is_the_real_model(name: str) -> None:
    count_full_size(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", HUGE)
def test_default_size_is_the_real_model_huge(name: str) -> None:
    """ViT-Base / BERT-Base / DistilBERT at full size: ~2 s CPU each just to initialise."""
    count_full_size(name)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet21'.*lenet5.*resnet20.*vit_base"):
        build_model("resnet21", 10)


def test_unknown_option_lists_valid_options() -> None:
    assert model_options("resnet18") == ["in_channels", "image_size", "pretrained", "cifar_stem"]
    with pytest.raises(ConfigError, match="model 'resnet18'.*'depth'.*cifar_stem"):
        build_model("resnet18", 10, depth=3)


@pytest.mark.parametrize("num_classes", [1, 0, 2.0])
def test_bad_num_classes(num_classes: object) -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("resnet20", num_classes)  # type: ignore[arg-type]
