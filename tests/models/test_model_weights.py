"""Optional local pretrained weights: round trips, formats, and errors. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kdfair.errors import ConfigError
from kdfair.models.registry import build_model

SMALL = {
    "resnet20": {},
    "lenet5": {"image_size": 16},
    "shufflenet_v2": {"image_size": 16},
    "distilbert": dict(vocab_size=40, num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32),
}


def make_input(name: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if name == "distilbert":
        return torch.randint(1, 40, (3, 8), generator=generator)
    return torch.randn(3, 3, 16, 16, generator=generator)


def trained_like(name: str) -> torch.nn.Module:
    """A model whose weights (and BN statistics) differ from a fresh initialisation."""
    torch.manual_seed(1)
    model = build_model(name, 4, **SMALL[name])
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.01 * torch.randn_like(tensor))
    return model.eval()


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_state_dict_round_trip_gives_identical_outputs(name: str, suffix: str, tmp_path: Path) -> None:
    source = trained_like(name)
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    torch.manual_seed(2)
    fresh = build_model(name, 4, **SMALL[name]).eval()
    loaded = build_model(name, 4, pretrained=path, **SMALL[name]).eval()
    x = make_input(name)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))
        assert not torch.allclose(fresh(x), source(x))


def test_checkpoint_dict_and_library_format_load(tmp_path: Path) -> None:
    source = trained_like("shufflenet_v2")
    torch.save({"model": source.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    torch.save(source.net.state_dict(), tmp_path / "torchvision.pth")  # keys without the "net." prefix
    x = make_input("shufflenet_v2")
    for file in ("checkpoint.pt", "torchvision.pth"):
        loaded = build_model("shufflenet_v2", 4, image_size=16, pretrained=tmp_path / file).eval()
        with torch.no_grad():
            assert torch.equal(loaded(x), source(x))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "resnet56.pt"
    with pytest.raises(ConfigError, match="not found: .*nowhere/resnet56.pt"):
        build_model("resnet56", 10, pretrained=path)


def test_mismatched_weights_are_a_config_error(tmp_path: Path) -> None:
    torch.save(build_model("resnet20", 10).state_dict(), tmp_path / "r20.pt")
    with pytest.raises(ConfigError, match="wrong shape \\[fc.bias, fc.weight\\]"):
        build_model("resnet20", 100, pretrained=tmp_path / "r20.pt")
    with pytest.raises(ConfigError, match="do not fit CifarResNet: missing .*unexpected"):
        build_model("resnet32", 10, pretrained=tmp_path / "r20.pt")


def test_unreadable_or_non_state_dict_file(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read pretrained weights .*junk.pt"):
        build_model("lenet5", 10, pretrained=tmp_path / "junk.pt")
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="do not hold a state_dict"):
        build_model("lenet5", 10, pretrained=tmp_path / "list.pt")
