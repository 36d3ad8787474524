"""DDP: runs trained by 2 CPU processes (torchrun, gloo, GPUs hidden) against the same runs in one process.

Each rank takes ``batch[rank::2]`` of the same batches (same order and augmentation); DDP averages the
student's gradients and kdfair the method's (issue 20, defect 1). LeNet-5 has no BatchNorm and the losses are
batch means, so with each rank's loss weighted by its share of the batch the averaged gradient is the
gradient of the whole batch, also for shards of unequal size (batch 33 = 17 + 16) and for a batch smaller
than the world size (batch 1: rank 1 trains on a stand-in sample with weight 0, not on an empty shard):
such runs equal the single-process run up to float rounding. BIRD's meta-gradient is not a batch mean, so
for BIRD only the ranks' equality is checked: its ``phi`` and AD's adversary are the same on every rank.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from standin import make_dataset
from train_helpers import run_config

from kdfair.errors import ConfigError
from kdfair.predictions import load_predictions
from kdfair.train import ddp_cli
from kdfair.train.augment import InputPipeline
from kdfair.train.lockstep import EpochContext, _make_batch
from kdfair.train.runner import execute
from kdfair.train.teacher import build_network

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _torchrun(configs: list, sweep: Path, states: Path) -> None:
    """Train ``configs`` (one lockstep unit) with 2 gloo processes, GPUs hidden and ``--device cpu``."""
    specs = []
    for config in configs:
        specs.append(states / f"{config.run_id}.json")
        specs[-1].write_text(config.model_dump_json())
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"),
        *("--master_addr", "127.0.0.1", "--master_port", str(_free_port())),
        *(str(HERE / "standin.py"), "--ddp", *map(str, specs), "--sweep-dir", str(sweep)),
        *("--no-progress", "--device", "cpu"),
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "KDFAIR_TEST_RANK_STATES": str(states),
        "CUDA_VISIBLE_DEVICES": "",  # a GPU machine must not pick nccl for this CPU test
    }
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _rank_states(states: Path, run_id: str, what: str = "") -> list[dict[str, torch.Tensor]]:
    return [torch.load(states / f"rank{r}{what}_{run_id}.pt", weights_only=False) for r in (0, 1)]


def _alone(config, sweep: Path, tmp_path: Path) -> dict[str, torch.Tensor]:  # noqa: ANN001
    other = tmp_path / f"single_{config.run_id}"
    (other / "runs").mkdir(parents=True)
    (other / "runs" / "teacher_s0").symlink_to(sweep / "runs" / "teacher_s0")
    (single,) = execute([config], other, device="cpu", progress=False)
    return torch.load(single / "checkpoint.pt", weights_only=False)["model"]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in b)


def test_ddp_unit_of_bird_ad_kd_uneven_shards(sweep: Path, tmp_path: Path) -> None:
    """One lockstep unit over 2 ranks, batch 33 (shards of 17 and 16), teacher outputs cached."""
    train = {"batch_size": 33, "teacher_cache": "on"}
    bird = run_config("ds_bird_s0", method="bird", method_options={"warmup_epochs": 0}, train=train)
    ad = run_config("ds_ad_s0", method="ad", train=train)
    kd = run_config("ds_kd_T4_a0.8_s0", train=train)
    _torchrun([bird, ad, kd], sweep, tmp_path)

    for config in (bird, ad, kd):  # the students: the same parameters on both ranks
        rank0, rank1 = _rank_states(tmp_path, config.run_id)
        assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), config.run_id
    phi0, phi1 = (m["phi"] for m in _rank_states(tmp_path, bird.run_id, "_method"))
    assert torch.equal(phi0, phi1) and phi0.abs().max() > 1e-3  # phi took the same meta steps on each rank
    adv0, adv1 = _rank_states(tmp_path, ad.run_id, "_method")
    adversary = [k for k in adv0 if k.startswith("adversary.")]
    assert adversary and all(torch.equal(adv0[k], adv1[k]) for k in adversary)
    # the teacher cache: one pass over the 96 train images (eval batch 512) by rank 0, none by rank 1
    assert [(tmp_path / f"rank{r}_teacher_forwards.txt").read_text() for r in (0, 1)] == ["1", "0"]

    for config in (ad, kd):  # batch means with shards weighted by size: the one-process run
        rank0, _ = _rank_states(tmp_path, config.run_id)
        reference = _alone(config, sweep, tmp_path)
        torch.manual_seed(config.seed)
        initial = build_network(config.model, make_dataset()).state_dict()
        mismatch, moved = _max_difference(rank0, reference), _max_difference(reference, initial)
        assert mismatch < 1e-6 and moved > 5e-3, (config.run_id, mismatch, moved)  # measured: ~1e-8, 1e-2

    folder = sweep / "runs" / kd.run_id
    saved = torch.load(folder / "checkpoint.pt", weights_only=False)
    rank0, _ = _rank_states(tmp_path, kd.run_id)
    assert saved["epoch"] == 2 and all(torch.equal(saved["model"][k], rank0[k]) for k in rank0)
    single = tmp_path / f"single_{kd.run_id}" / "runs" / kd.run_id
    pred, ref_pred = load_predictions(folder), load_predictions(single)
    np.testing.assert_array_equal(pred.sample_id, ref_pred.sample_id)
    np.testing.assert_allclose(pred.probs, ref_pred.probs, atol=1e-5)
    assert (folder / "DONE").is_file() and len((folder / "epochs.csv").read_text().splitlines()) == 3


def test_ddp_batch_smaller_than_world_size(sweep: Path, tmp_path: Path) -> None:
    """Batch 1 over 2 ranks: rank 1 has no sample; its stand-in adds nothing (no NaN), one-process result."""
    kd = run_config("ds_kd_T4_a0.8_s0", train={"batch_size": 1, "epochs": 1, "max_steps_per_epoch": 4})
    _torchrun([kd], sweep, tmp_path)
    rank0, rank1 = _rank_states(tmp_path, kd.run_id)
    assert all(torch.isfinite(v).all() and torch.equal(v, rank1[k]) for k, v in rank0.items())
    reference = _alone(kd, sweep, tmp_path)
    assert _max_difference(rank0, reference) < 1e-6


def _context(world_rank: tuple[int, int]) -> EpochContext:
    split = make_dataset().split("train")
    pipeline = InputPipeline(split, modality="image", augment=True)
    labels = torch.from_numpy(split.labels)
    return EpochContext(pipeline, labels, {}, None, None, 0, progress=False, shard=world_rank)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shard", "size", "rows", "weight"),
    [((0, 1), 3, [0, 1, 2], 1.0), ((0, 2), 3, [0, 2], 4 / 3), ((1, 2), 3, [1], 2 / 3), ((1, 2), 1, [0], 0.0)],
)
def test_shard_rows_and_gradient_weight(
    shard: tuple[int, int], size: int, rows: list[int], weight: float
) -> None:
    positions = np.array([40, 7, 13][:size], dtype=np.int64)
    ctx = _context(shard)
    whole, _, _ = _make_batch(positions, torch.Generator().manual_seed(5), _context((0, 1)))
    batch, total, got = _make_batch(positions, torch.Generator().manual_seed(5), ctx)
    assert total == size and got == pytest.approx(weight)
    assert batch.index.tolist() == positions[rows].tolist()
    torch.testing.assert_close(batch.inputs, whole.inputs[rows], rtol=0, atol=0)  # the whole batch's crops


def test_nccl_pins_the_local_gpu_before_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With CUDA, ``torch.cuda.set_device(cuda:LOCAL_RANK)`` comes before ``init_process_group("nccl")``."""
    calls = _stopped_main(tmp_path, monkeypatch, gpus=4, local_rank=3)
    assert calls == [("set_device", torch.device("cuda", 3)), ("init_process_group", "nccl")]


def test_device_cpu_uses_gloo_on_a_gpu_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _stopped_main(tmp_path, monkeypatch, gpus=2, local_rank=1, extra=["--device", "cpu"])
    assert calls == [("init_process_group", "gloo")]


def test_local_rank_without_a_gpu_is_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert _stopped_main(tmp_path, monkeypatch, gpus=1, local_rank=1) == []  # no process group started
    err = capsys.readouterr().err
    assert "LOCAL_RANK 1 has no GPU: this process sees 1 GPU(s) (CUDA_VISIBLE_DEVICES='5')" in err
    with pytest.raises(ConfigError, match="CUDA is not available"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        ddp_cli.choose_device("cuda", 0)
    assert ddp_cli.choose_device("auto", 0) == torch.device("cpu")


def _stopped_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, gpus: int, local_rank: int, extra: list[str] = ()
) -> list[tuple[str, object]]:
    """``ddp_cli.main`` on a pretend machine with ``gpus`` GPUs, stopped at ``init_process_group``."""
    calls: list[tuple[str, object]] = []

    class Stop(Exception):
        pass

    def init(backend: str) -> None:
        calls.append(("init_process_group", backend))
        raise Stop

    spec = tmp_path / "run.json"
    spec.write_text(run_config("nds_s0", role="nds").model_dump_json())
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(ddp_cli.dist, "init_process_group", init)
    try:
        status = ddp_cli.main([str(spec), "--sweep-dir", str(tmp_path), *extra])
    except Stop:
        return calls
    assert status == 2
    return calls
