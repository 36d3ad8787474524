"""Unit tests: run config validation, samplers, batch augmentation, normalisation statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdfair.data.base import DataSplit
from kdfair.errors import ConfigError
from kdfair.train.augment import InputPipeline, channel_stats, crop_padding
from kdfair.train.config import RunConfig, default_batch_size, make_run_id, parse_run_config
from kdfair.train.sampling import balanced_batches, random_batches, split_meta

DS = {
    "run_id": "ds_kd_T4_a0.8_s0",
    "role": "ds",
    "seed": 0,
    "data": {"name": "cifar10"},
    "model": {"name": "resnet20"},
    "method": "kd",
    "temperature": 4,
    "alpha": 0.8,
    "teacher": {"kind": "run", "run_id": "teacher_s0"},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperature": 0}, "temperature must be > 0"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"teacher": None}, "teacher is required"),
        ({"role": "nds"}, "temperature is only allowed"),
        ({"teacher": {"kind": "checkpoint", "path": "t.pt"}}, "teacher.model is required"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"bogus": 1}}, "train.bogus: Extra inputs"),
        ({"run_id": "../x"}, "run_id"),
    ],
)
def test_run_config_errors_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_run_config({**DS, **change})


def test_defaults_ids_and_lockstep_key() -> None:
    run = RunConfig.model_validate(DS)
    assert run.train.resolved_batch_size("cifar10") == 128 and default_batch_size("Tiny-ImageNet") == 512
    assert (default_batch_size("celeba"), default_batch_size("trifeature"), default_batch_size("other")) == (
        256,
        64,
        128,
    )
    assert run.condition_id == "ds_kd_T4_a0.8" and make_run_id("teacher", "ce", None, None, 2) == "teacher_s2"
    assert make_run_id("nds", "mfd", None, None, 0) == "nds_mfd_s0"
    other_t = RunConfig.model_validate({**DS, "run_id": "b", "temperature": 8, "method": "fitnet"})
    other_seed = RunConfig.model_validate({**DS, "run_id": "c", "seed": 1})
    assert run.lockstep_key() == other_t.lockstep_key() != other_seed.lockstep_key()


@given(n=st.integers(2, 300), batch=st.integers(1, 64), seed=st.integers(0, 5), epoch=st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_random_batches_cover_each_sample_once(n: int, batch: int, seed: int, epoch: int) -> None:
    batches = random_batches(n, batch, seed=seed, epoch=epoch)
    flat = np.concatenate(batches)
    dropped = n - len(flat)
    assert dropped in ((1,) if n % batch == 1 and n > batch else (0,))
    assert len(np.unique(flat)) == len(flat) and all(len(b) <= batch for b in batches)
    again = random_batches(n, batch, seed=seed, epoch=epoch)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_balanced_batches_balance_cells() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    groups = (rng.random(500) < 0.1).astype(np.int64)  # a rare group
    batches = balanced_batches(labels, groups, 60, seed=1, epoch=0)
    assert len(batches) == 9  # ceil(500 / 60)
    for batch in batches:
        counts = np.bincount(labels[batch] * 2 + groups[batch], minlength=6)
        assert counts.tolist() == [10] * 6
    with_extra = balanced_batches(labels, groups, 64, seed=1, epoch=0)[0]
    counts = np.bincount(labels[with_extra] * 2 + groups[with_extra], minlength=6)
    assert sorted(counts.tolist()) == [10, 10, 11, 11, 11, 11]


def test_split_meta_is_a_partition() -> None:
    train, meta = split_meta(100, 0.1, seed=3)
    assert len(meta) == 10 and np.array_equal(np.sort(np.concatenate([train, meta])), np.arange(100))
    assert np.array_equal(meta, split_meta(100, 0.1, seed=3)[1]) and not np.array_equal(
        meta, split_meta(100, 0.1, seed=4)[1]
    )


def _split(n: int = 6, size: int = 8) -> DataSplit:
    images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return DataSplit(images, np.zeros(n, np.int64), np.arange(n))


def test_crop_flip_matches_numpy_reference() -> None:
    split = _split()
    pipe = InputPipeline(split, modality="image", augment=True, mean=np.zeros(3), std=np.ones(3))
    assert pipe.pad == crop_padding(8) == 1 and crop_padding(32) == 4 and crop_padding(224) == 28
    offsets, flips = pipe.draw(4, torch.Generator().manual_seed(0))
    index = np.array([5, 0, 3, 3])
    out = pipe.batch(index, (offsets, flips)).numpy() * 255
    padded = np.pad(split.inputs, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for row, i in enumerate(index):
        oy, ox = offsets[row].tolist()
        crop = padded[i, oy : oy + 8, ox : ox + 8].transpose(2, 0, 1)
        expected = crop[:, :, ::-1] if flips[row] else crop
        np.testing.assert_allclose(out[row], expected, atol=1e-3)
    np.testing.assert_allclose(
        pipe.batch(index).numpy() * 255, split.inputs[index].transpose(0, 3, 1, 2), atol=1e-3
    )


def test_channel_stats_and_normalisation() -> None:
    split = _split(n=20)
    mean, std = channel_stats(split)
    pixels = split.inputs.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-8)
    x = InputPipeline(split, modality="image", augment=False, mean=mean, std=std).batch(np.arange(20))
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), unbiased=False).numpy(), 1, atol=1e-4)
