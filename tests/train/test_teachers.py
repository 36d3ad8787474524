"""Teacher sources beyond a sweep run: the output cache follows the weights' content, a features-only
black-box teacher drives a feature method, and every run folder records its environment."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from standin import make_dataset
from train_helpers import run_config

import kdfair
from kdfair.errors import ConfigError
from kdfair.predictions import load_predictions, read_run_meta
from kdfair.runfolder import teacher_features_files
from kdfair.train.runner import execute


def _predictions(folder: Path) -> bytes:
    with np.load(folder / "predictions.npz") as npz:
        return npz["logits"].tobytes()


def test_checkpoint_changed_in_place_invalidates_the_teacher_cache(
    sweep: Path, tmp_path: Path, live_calls: list[int]
) -> None:
    weights = tmp_path / "teacher.pt"
    state = torch.load(sweep / "runs" / "teacher_s0" / "checkpoint.pt", weights_only=False)["model"]
    torch.save({k: v.clone() for k, v in state.items()}, weights)
    teacher = {"kind": "checkpoint", "path": str(weights), "model": {"name": "lenet5"}}

    def run(run_id: str, where: Path = sweep) -> Path:
        config = run_config(run_id, teacher=teacher, train={"augment": False})
        return execute([config], where, device="cpu", progress=False)[0]

    first = run("ds_a")
    assert live_calls == [96]  # one pass over the 96 train images fills the cache
    (cache,) = (sweep / "cache").glob("teacher_ckpt_*.npz")
    again = run("ds_b")
    assert live_calls == [96] and _predictions(again) == _predictions(first)  # same content: reused

    stat = weights.stat()
    torch.save({k: v * 0.5 for k, v in state.items()}, weights)  # new weights, same path and size...
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...and the same mtime
    assert weights.stat().st_size == stat.st_size
    changed = run("ds_c")
    assert live_calls == [96, 96]  # recomputed
    assert _predictions(changed) != _predictions(first)
    with_new = run("ds_d")
    assert live_calls == [96, 96] and _predictions(with_new) == _predictions(changed)  # new cache reused
    run("ds_e", tmp_path / "fresh")  # the new weights' outputs, computed from scratch in another sweep
    (fresh,) = (tmp_path / "fresh" / "cache").glob("teacher_ckpt_*.npz")
    with np.load(cache) as updated, np.load(fresh) as expected:
        assert updated["logits"].shape == (96, 3)
        assert np.array_equal(updated["logits"], expected["logits"])
        assert np.array_equal(updated["features"], expected["features"])


def test_retrained_teacher_run_invalidates_the_teacher_cache(sweep: Path, live_calls: list[int]) -> None:
    execute([run_config("ds_a", train={"augment": False})], sweep, device="cpu", progress=False)
    assert live_calls == [96]
    path = sweep / "runs" / "teacher_s0" / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["model"] = {k: v * 0.5 for k, v in checkpoint["model"].items()}
    torch.save(checkpoint, path)
    execute([run_config("ds_b", train={"augment": False})], sweep, device="cpu", progress=False)
    assert live_calls == [96, 96]


def test_features_only_outputs_teacher_trains_a_feature_method(sweep: Path, tmp_path: Path) -> None:
    train_ids = make_dataset().split("train").sample_ids
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(train_ids), 10)).astype(np.float32)  # width 10: a learned map to 84
    order = rng.permutation(len(train_ids))
    np.savez(tmp_path / "foundation.npz", sample_id=train_ids[order], features=features[order])
    config = run_config(
        "ds_fkd_T4_a0.8_s0",
        method="fkd",
        teacher={"kind": "outputs", "path": str(tmp_path / "foundation.npz")},
    )
    (folder,) = execute([config], sweep, device="cpu", progress=False)
    assert (folder / "DONE").is_file()
    meta = read_run_meta(folder)
    assert meta.method == "fkd" and meta.settings["teacher"] == f"outputs {tmp_path / 'foundation.npz'}"
    with open(folder / "epochs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    feature_loss = [float(r["train_feature"]) for r in rows]
    assert len(feature_loss) == 2 and all(np.isfinite(feature_loss)) and min(feature_loss) > 0
    pred = load_predictions(folder)
    assert pred.probs.shape == (40, 3) and np.isfinite(pred.features).all()
    logits_method = run_config("ds_kd_T4_a0.8_s0", teacher=config.teacher.model_dump())
    with pytest.raises(
        ConfigError, match="method 'kd' needs the teacher's logits, which outputs .*foundation"
    ):
        execute([logits_method], sweep, device="cpu", progress=False)  # before any training step
    assert not (sweep / "runs" / "ds_kd_T4_a0.8_s0" / "checkpoint.pt").exists()


def test_run_folder_environment(sweep: Path) -> None:
    (folder,) = execute([run_config("nds_s0", role="nds")], sweep, device="cpu", progress=False)
    env = json.loads((folder / "environment.json").read_text())
    assert env["device"] == "cpu" and env["python"] == platform.python_version()
    for package in ("kdfair", "torch", "numpy", "scipy"):
        assert env["versions"][package] == md.version(package)
    git = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=Path(kdfair.__file__).parent, capture_output=True, text=True
    )
    expected = git.stdout.strip() if git.returncode == 0 else None
    assert env["git_revision"] == expected
    if expected is not None:
        assert re.fullmatch(r"[0-9a-f]{40}", env["git_revision"])


def _cached_keys(sweep: Path) -> set[str]:
    (cache,) = (sweep / "cache").glob("teacher_*.npz")
    with np.load(cache) as npz:
        return set(npz.files)


@pytest.mark.parametrize(
    ("method", "maps"),
    [("at", {"map0", "map1"}), ("fitnet", {"map1"})],  # AT: both LeNet-5 maps; FitNet: its hint layer (-1)
)
def test_map_methods_read_the_maps_they_need_from_the_cache(
    sweep: Path, live_calls: list[int], method: str, maps: set[str]
) -> None:
    cached = execute(
        [run_config("ds_cached", method=method, train={"augment": False})],
        sweep,
        device="cpu",
        progress=False,
    )[0]
    assert live_calls == [96]  # the cache pass only: no teacher forward per training batch
    assert _cached_keys(sweep) == {"sample_id", "fingerprint", "logits", "features", *maps}
    live = execute(
        [run_config("ds_live", method=method, train={"augment": False, "teacher_cache": "off"})],
        sweep,
        device="cpu",
        progress=False,
    )[0]
    assert len(live_calls) > 1  # a forward per batch
    with np.load(cached / "predictions.npz") as a, np.load(live / "predictions.npz") as b:
        np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-5, atol=1e-5)


def test_maps_over_the_cache_limit_stay_live(
    sweep: Path, live_calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kdfair.train.teacher.MAP_CACHE_BYTES", 0)
    execute([run_config("ds_at", method="at", train={"augment": False})], sweep, device="cpu", progress=False)
    assert live_calls == [32] * 6  # a live forward per batch (3 a epoch, 2 epochs); AT reads no cached logits
    assert not list((sweep / "cache").glob("teacher_*.npz"))


def test_a_cache_without_the_maps_asked_for_is_recomputed(sweep: Path, live_calls: list[int]) -> None:
    execute([run_config("ds_kd", train={"augment": False})], sweep, device="cpu", progress=False)
    assert live_calls == [96] and "map1" not in _cached_keys(sweep)
    execute(
        [run_config("ds_fitnet", method="fitnet", train={"augment": False})],
        sweep,
        device="cpu",
        progress=False,
    )
    assert live_calls == [96, 96] and "map1" in _cached_keys(sweep)
    execute([run_config("ds_kd2", train={"augment": False})], sweep, device="cpu", progress=False)
    assert live_calls == [96, 96]  # a file with more maps than asked for serves KD


def test_a_checkpoint_teacher_leaves_its_test_features_for_the_audit(sweep: Path, tmp_path: Path) -> None:
    # bug: a sweep distilling from a checkpoint has no teacher run folder, so its audit skipped kNN
    # individual fairness (UTKFace, RESULTS.md 3). Now the DS unit writes teacher_features_s<seed>.npz and
    # the audit's default ('auto') representation reads the lowest seed's.
    from kdfair.audit.engine import audit_runs

    weights = tmp_path / "teacher.pt"
    shutil.copy(sweep / "runs" / "teacher_s0" / "checkpoint.pt", weights)
    teacher = {"kind": "checkpoint", "path": str(weights), "model": {"name": "lenet5"}}
    fresh = tmp_path / "fresh"
    execute([run_config("ds_a", teacher=teacher)], fresh, device="cpu", progress=False)
    own_file = sweep / "runs/teacher_s0/predictions.npz"
    with np.load(fresh / "teacher_features_s0.npz") as npz, np.load(own_file) as own:
        assert np.array_equal(npz["sample_id"], own["sample_id"])
        # the same weights on the same test inputs: the teacher run's own features
        assert np.allclose(npz["x"], own["features"].reshape(len(own["features"]), -1), atol=1e-5)
        assert str(npz["weights_sha256"]) == hashlib.sha256(weights.read_bytes()).hexdigest()
    auto = audit_runs(fresh, permutations=0)
    info = auto.info["individual_fairness"]
    assert info["space"] == "teacher" and "teacher_features_s0.npz" in info["representation"]
    by_path = audit_runs(fresh, representation=fresh / "teacher_features_s0.npz", permutations=0)
    value = auto.run_metrics.query("metric == 'individual_unfairness'")["value"].to_numpy()
    expected = by_path.run_metrics.query("metric == 'individual_unfairness'")["value"].to_numpy()
    assert len(value) == 1 and np.isfinite(value).all() and np.array_equal(value, expected)
    # several seeds' checkpoint teachers: the lowest seed's file is the space, in numeric order (s2 < s10)
    with np.load(fresh / "teacher_features_s0.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    for seed, scale in ((10, 3.0), (2, -1.0)):
        np.savez(fresh / f"teacher_features_s{seed}.npz", **{**arrays, "x": scale * arrays["x"] ** 3})
    assert [p.name for p in teacher_features_files(fresh)] == [
        f"teacher_features_s{s}.npz" for s in (0, 2, 10)
    ]
    again = audit_runs(fresh, permutations=0)
    assert "teacher_features_s0.npz" in again.info["individual_fairness"]["representation"]
    (fresh / "teacher_features_s0.npz").unlink()
    assert (
        "teacher_features_s2.npz"
        in audit_runs(fresh, permutations=0).info["individual_fairness"]["representation"]
    )
    # without any such file the audit skips kNN individual fairness, as before
    for path in teacher_features_files(fresh):
        path.unlink()
    skipped = audit_runs(fresh, permutations=0).info["individual_fairness"]
    assert skipped["space"] == "none" and "teacher_features_s" in skipped["note"]
