"""Determinism settings (issue 20, defect 6; docs/sweeps.md "Determinism").

``train.deterministic``: true (deterministic kernels, warn where torch has none), "strict" (raise there),
false (off, cudnn.benchmark on CUDA); on CUDA kdfair sets ``CUBLAS_WORKSPACE_CONFIG`` when it is unset.
What can be checked without a GPU: the settings a CUDA run gets, and that no model or loss of kdfair puts an
op in the backward graph that torch flags as nondeterministic on CUDA (scripts/gpu_check.py's
``determinism`` step checks the rest on a GPU: strict mode, and two runs bit for bit).
"""

from __future__ import annotations

import os

import pytest
import torch

from kdfair.losses.attention import attention_transfer_loss
from kdfair.losses.fitnet import hint_loss
from kdfair.models.registry import build_model
from kdfair.train.config import TrainConfig
from kdfair.train.device import CUBLAS_WORKSPACE, deterministic_threads

CUDA = torch.device("cuda")  # a device object only: nothing here runs on a GPU

# backward nodes of ops that torch.use_deterministic_algorithms(True) rejects on CUDA (torch's docs, 2.x)
NONDETERMINISTIC_ON_CUDA = {
    "AdaptiveAvgPool2DBackward0",
    "AdaptiveAvgPool3DBackward0",
    "AdaptiveMaxPool2DBackward0",
    "AvgPool3DBackward0",
    "FractionalMaxPool2DBackward0",
    "FractionalMaxPool3DBackward0",
    "MaxUnpool2DBackward0",
    "MaxUnpool3DBackward0",
    "UpsampleLinear1DBackward0",
    "UpsampleBilinear2DBackward0",
    "UpsampleBicubic2DBackward0",
    "UpsampleTrilinear3DBackward0",
    "ReflectionPad1DBackward0",
    "ReflectionPad2DBackward0",
    "ReflectionPad3DBackward0",
    "CtcLossBackward0",
    "EmbeddingBagBackward0",
    "GridSampler2DBackward0",
}


def _backward_nodes(output: torch.Tensor) -> set[str]:
    seen, names, stack = set(), set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def _flags() -> tuple[bool, bool]:
    return torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()


def test_cuda_runs_get_the_cublas_workspace_and_no_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    with deterministic_threads(TrainConfig(), torch.device("cpu")):
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ  # the CPU needs none
    with deterministic_threads(TrainConfig(), CUDA):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE  # read by cuBLAS later
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own deterministic setting
    with deterministic_threads(TrainConfig(), CUDA):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_strict_raises_where_true_warns_and_false_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    with deterministic_threads(TrainConfig(deterministic="strict"), CUDA):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    with deterministic_threads(TrainConfig(deterministic=False), CUDA):
        assert not torch.are_deterministic_algorithms_enabled() or before[0]
        assert torch.backends.cudnn.benchmark is True  # the fastest convolutions; GPU runs then vary
    assert torch.backends.cudnn.benchmark is False
    assert (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    ) == before
    assert TrainConfig(deterministic="strict").deterministic == "strict"


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "resnet18", "shufflenet_v2", "densenet121"])
def test_models_backward_has_no_op_flagged_nondeterministic_on_cuda(name: str) -> None:
    """The global average pool of every CNN is ``adaptive_avg_pool2d(x, 1)``, which torch computes as a mean
    (deterministic backward), not with the adaptive pooling kernel that CUDA's deterministic mode rejects."""
    torch.manual_seed(0)
    model = build_model(name, 10)
    out = model.forward_all(torch.randn(2, 3, 32, 32))
    loss = out.logits.logsumexp(1).sum() + out.features.square().sum()
    assert not _backward_nodes(loss) & NONDETERMINISTIC_ON_CUDA


def test_hint_and_attention_pooling_is_deterministic_on_cuda() -> None:
    """Maps of different sizes are pooled to the smaller: ``avg_pool2d`` when the size divides (equal to
    adaptive pooling, bit for bit on the CPU), adaptive pooling only when it does not."""
    student = torch.randn(2, 4, 16, 16, requires_grad=True)
    teacher = torch.randn(2, 4, 8, 8)
    for loss in (hint_loss(student, teacher), attention_transfer_loss([student], [teacher])):
        assert not _backward_nodes(loss) & NONDETERMINISTIC_ON_CUDA
    expected = torch.nn.functional.adaptive_avg_pool2d(student, (8, 8))
    torch.testing.assert_close(
        hint_loss(student, teacher), (expected - teacher).square().mean(), rtol=0, atol=0
    )
    odd = hint_loss(torch.randn(2, 4, 9, 9, requires_grad=True), torch.randn(2, 4, 4, 4))
    assert "AdaptiveAvgPool2DBackward0" in _backward_nodes(odd)  # 9 -> 4: no deterministic CUDA backward
