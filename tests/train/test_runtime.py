"""Device and precision choices (``make_runtime``) and the SPEC §3 recipe defaults, without a GPU.

``make_runtime`` only reads ``device.type``, so a ``torch.device("cuda")`` tests the GPU choices on the CPU;
nothing is allocated on CUDA. bf16 autocast needs no GradScaler (bf16 has fp32's exponent range), so a
Runtime carries none; fp16 is not offered.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import run_config

from kdfair.predictions import load_predictions, read_run_meta
from kdfair.train import runner
from kdfair.train.config import TrainConfig, default_batch_size
from kdfair.train.device import Runtime, make_runtime, resolve_device
from kdfair.train.trainer import make_optimizer

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("train", "device", "modality", "expected"),
    [
        # precision auto: bf16 autocast + channels_last on CUDA (PERF-NOTES §2), fp32 on the CPU
        ({}, CUDA, "image", ("bf16", torch.bfloat16, True)),
        ({}, CUDA, "text", ("bf16", torch.bfloat16, False)),  # channels_last is for images only
        ({}, CPU, "image", ("fp32", None, False)),
        # explicit options
        ({"precision": "bf16"}, CPU, "image", ("bf16", torch.bfloat16, True)),
        ({"precision": "bf16", "channels_last": False}, CPU, "image", ("bf16", torch.bfloat16, False)),
        ({"precision": "fp32"}, CUDA, "image", ("fp32", None, False)),
        ({"precision": "fp32", "channels_last": True}, CUDA, "image", ("fp32", None, True)),
        ({"channels_last": False}, CUDA, "image", ("bf16", torch.bfloat16, False)),
    ],
)
def test_make_runtime_choices(train: dict, device: torch.device, modality: str, expected: tuple) -> None:
    runtime = make_runtime(TrainConfig(**train), device, modality)
    assert runtime.device == device
    assert (runtime.precision, runtime.dtype, runtime.channels_last) == expected


def test_runtime_has_no_grad_scaler() -> None:
    assert [f.name for f in dataclasses.fields(Runtime)] == ["device", "dtype", "channels_last"]


def test_cuda_autocast_is_bf16_on_cuda() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without a GPU torch warns that it disables this autocast
        autocast = make_runtime(TrainConfig(), CUDA, "image").autocast()
    assert isinstance(autocast, torch.autocast)
    assert (autocast.device, autocast.fast_dtype) == ("cuda", torch.bfloat16)


def test_cpu_autocast_computes_in_bf16_and_fp32_is_a_no_op() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with make_runtime(TrainConfig(precision="bf16"), CPU, "image").autocast():
        assert (a @ b).dtype == torch.bfloat16
    with make_runtime(TrainConfig(), CPU, "image").autocast():
        assert (a @ b).dtype == torch.float32


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == CPU and resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == CUDA
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == CPU


def test_train_defaults_are_the_paper_recipe() -> None:
    train = TrainConfig()
    assert (train.optimizer, train.lr, train.momentum, train.weight_decay) == ("sgd", 0.1, 0.9, 1e-3)
    assert (train.epochs, train.milestones, train.lr_decay) == (100, [30, 60, 90], 0.1)
    assert train.augment is True and train.precision == "auto" and train.batch_size is None


@pytest.mark.parametrize(
    ("dataset", "batch"),
    [
        ("cifar10", 128),
        ("cifar100", 128),
        ("svhn", 128),
        ("tiny_imagenet", 512),
        ("imagenet", 512),
        ("celeba", 256),
        ("trifeature", 64),
    ],
)
def test_spec_batch_sizes(dataset: str, batch: int) -> None:
    assert default_batch_size(dataset) == batch
    assert TrainConfig().resolved_batch_size(dataset) == batch
    assert TrainConfig(batch_size=7).resolved_batch_size(dataset) == 7


def test_make_optimizer_passes_momentum_and_weight_decay() -> None:
    param = torch.nn.Parameter(torch.tensor([1.0]))
    sgd = make_optimizer(TrainConfig(), [param])
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 1e-3)
    assert (group["nesterov"], group["dampening"]) == (False, 0)
    # two steps with gradient 2, by hand: d = g + wd * p; buf = momentum * buf + d; p -= lr * buf
    p, buf = 1.0, 0.0
    for _ in range(2):
        param.grad = torch.tensor([2.0])
        sgd.step()
        d = 2.0 + 1e-3 * p
        buf = 0.9 * buf + d
        p -= 0.1 * buf
    assert param.item() == pytest.approx(p, rel=1e-6)
    custom = make_optimizer(TrainConfig(lr=0.2, momentum=0.5, weight_decay=0.0), [param]).param_groups[0]
    assert (custom["lr"], custom["momentum"], custom["weight_decay"]) == (0.2, 0.5, 0.0)
    adam = make_optimizer(TrainConfig(optimizer="adam", lr=1e-3, weight_decay=5e-4), [param])
    assert isinstance(adam, torch.optim.Adam)
    assert (adam.param_groups[0]["lr"], adam.param_groups[0]["weight_decay"]) == (1e-3, 5e-4)


def test_cuda_runtime_needs_no_gpu_to_build() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing touches CUDA while resolving the runtime
        make_runtime(TrainConfig(), CUDA, "image")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tiny_run_on_cuda_uses_bf16_and_channels_last(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    students = []
    real = runner.build_student

    def keep(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        students.append(real(*args, **kwargs))
        return students[-1]

    monkeypatch.setattr(runner, "build_student", keep)
    (folder,) = runner.execute([run_config("ds_kd_T4_a0.8_s0")], sweep, device="cuda", progress=False)
    settings = read_run_meta(folder).settings
    assert (settings["device"], settings["precision"]) == ("cuda", "bf16")
    conv = students[0].model.conv1.weight
    assert conv.is_cuda and conv.is_contiguous(memory_format=torch.channels_last)
    assert np.isfinite(load_predictions(folder).probs).all()
