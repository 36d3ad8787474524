"""Predictions of the counterfactual twins (SPEC §6) for a run folder: ``counterfactual.npz``.

Two ways in:

- :func:`write_run_counterfactual`: a run that just finished training writes its twins' predictions before
  ``DONE`` (called by :func:`kdfair.train.runner.finish_run`).
- :func:`add_missing_counterfactuals`: for finished runs (``DONE``) written before twins existed, the final
  weights are read from ``checkpoint.pt``, checked against the run's ``predictions.npz`` (the test split is
  predicted again and must give the same classes), and the twins are predicted; no retraining.
  ``kdfair sweep`` calls it for every sub-sweep after training, so re-running the sweep command on a
  finished sweep folder adds the files. Each file is written atomically.

Twins that are themselves test samples (CIFAR-10S: the grey copy of a colour test image is a test image)
are taken from the run's test logits, so no network is needed for them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from kdfair.counterfactual import save_counterfactual
from kdfair.data.base import Dataset
from kdfair.data.twins import CounterfactualTwins
from kdfair.errors import ConfigError, KdfairWarning
from kdfair.models.base import KDModel
from kdfair.runfolder import (
    CHECKPOINT_PT,
    CONFIG_JSON,
    COUNTERFACTUAL_NPZ,
    PREDICTIONS_NPZ,
    RUNS,
    is_done,
    read_config,
)
from kdfair.train import datasets
from kdfair.train.augment import InputPipeline
from kdfair.train.config import RunConfig, parse_run_config
from kdfair.train.device import Runtime, make_runtime, resolve_device
from kdfair.train.rundir import CHECKPOINT_FORMAT

MIN_AGREEMENT = 0.99  # share of test predictions the restored weights must reproduce (float rounding aside)
Log = Callable[[str], None]


def _rows_in(ids: np.ndarray, sample_ids: np.ndarray) -> np.ndarray | None:
    """Row of each of ``ids`` in ``sample_ids``, or None unless every id is there."""
    order = np.argsort(sample_ids)
    position = np.clip(np.searchsorted(sample_ids[order], ids), 0, max(len(order) - 1, 0))
    if len(order) == 0 or not np.array_equal(sample_ids[order][position], ids):
        return None
    return order[position]


def twin_logits(
    twins: CounterfactualTwins,
    test_ids: np.ndarray,
    test_logits: np.ndarray,
    predict_twins: Callable[[], np.ndarray],
) -> np.ndarray:
    """Logits of every twin: gathered from ``test_logits`` when every twin is a test sample, else
    ``predict_twins()`` (the network on the twin inputs)."""
    rows = _rows_in(twins.split.sample_ids, test_ids)
    return test_logits[rows] if rows is not None else predict_twins()


def save_twins(run_dir: Path, dataset: Dataset, logits: np.ndarray) -> Path:
    """Write ``run_dir/counterfactual.npz`` for ``dataset.counterfactual`` with the twins' ``logits``."""
    twins = dataset.counterfactual
    assert twins is not None
    level = np.empty(len(twins), dtype=object)
    for name in twins.attributes_changed:
        mine = twins.attribute == name
        codes = twins.split.attributes[name][mine] if name in twins.split.attributes else None
        names = dataset.attribute_levels.get(name)
        level[mine] = np.asarray(names)[codes] if codes is not None and names else ""
    return save_counterfactual(
        run_dir,
        sample_id=twins.split.sample_ids,
        source_id=twins.source_ids,
        attribute=twins.attribute,
        logits=np.asarray(logits, dtype=np.float32),
        level=level.astype(str),
    )


def _predictor(
    model: KDModel, dataset: Dataset, runtime: Runtime, config: RunConfig
) -> Callable[[], np.ndarray]:
    """A function predicting the twin inputs with ``model``, normalised as in training."""
    from kdfair.train.trainer import predict

    def run() -> np.ndarray:
        assert dataset.counterfactual is not None
        mean, std = datasets.normalization(config, dataset)
        pipeline = InputPipeline(
            dataset.counterfactual.split,
            modality=dataset.modality,
            augment=False,
            mean=mean,
            std=std,
            device=runtime.device,
            channels_last=runtime.channels_last,
        )
        return predict(model, pipeline, runtime, config.train.eval_batch_size)[0]

    return run


def write_run_counterfactual(
    run_dir: Path,
    config: RunConfig,
    dataset: Dataset,
    model: KDModel,
    runtime: Runtime,
    test_logits: np.ndarray,
) -> Path | None:
    """Predict the twins with ``model`` and write ``run_dir/counterfactual.npz``; None when the data set has
    no twins. A failure is a :class:`KdfairWarning` (the run still finishes; re-running the sweep adds the
    file from checkpoint.pt), never an error."""
    if dataset.counterfactual is None:
        return None
    try:
        test_ids = dataset.split("test").sample_ids
        logits = twin_logits(
            dataset.counterfactual, test_ids, test_logits, _predictor(model, dataset, runtime, config)
        )
        return save_twins(run_dir, dataset, logits)
    except Exception as exc:  # noqa: BLE001 - twins are extra output: the trained run must still finish
        warnings.warn(
            f"{run_dir.name}: {COUNTERFACTUAL_NPZ} not written ({type(exc).__name__}: {exc}); re-run the "
            "sweep command to add it from checkpoint.pt",
            KdfairWarning,
            stacklevel=2,
        )
        return None


def restore_final_model(run_dir: Path, config: RunConfig, dataset: Dataset, runtime: Runtime) -> KDModel:
    """The run's network with the final weights of ``checkpoint.pt`` (the checkpoint of its last epoch),
    in eval mode on the runtime's device; ConfigError when the checkpoint is absent or not final."""
    from kdfair.train.teacher import build_network

    path = run_dir / CHECKPOINT_PT
    if not path.is_file():
        raise ConfigError(f"{run_dir.name}: no {CHECKPOINT_PT}, so its twins cannot be predicted")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise ConfigError(f"{path}: not a kdfair checkpoint")
    if int(state.get("epoch", -1)) != config.train.epochs:
        raise ConfigError(
            f"{path}: holds epoch {state.get('epoch')}, not the final epoch {config.train.epochs}"
        )
    model = build_network(config.model, dataset, pretrained=False)
    model.load_state_dict(state["model"])
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def _check_reproduces(
    run_dir: Path, model: KDModel, dataset: Dataset, runtime: Runtime, config: RunConfig
) -> np.ndarray:
    """Predict the test split again; ConfigError unless ``MIN_AGREEMENT`` of the classes match
    predictions.npz. Returns the saved test logits in split order."""
    from kdfair.train.trainer import predict

    test = dataset.split("test")
    with np.load(run_dir / PREDICTIONS_NPZ) as saved:
        rows = _rows_in(test.sample_ids, saved["sample_id"])
        if rows is None:
            raise ConfigError(f"{run_dir.name}: predictions.npz does not hold the data set's test ids")
        saved_logits = np.asarray(saved["logits"], dtype=np.float32)[rows]
    mean, std = datasets.normalization(config, dataset)
    pipeline = InputPipeline(
        test,
        modality=dataset.modality,
        augment=False,
        mean=mean,
        std=std,
        device=runtime.device,
        channels_last=runtime.channels_last,
    )
    again = predict(model, pipeline, runtime, config.train.eval_batch_size)[0]
    agreement = float(np.mean(again.argmax(axis=1) == saved_logits.argmax(axis=1)))
    if agreement < MIN_AGREEMENT:
        raise ConfigError(
            f"{run_dir.name}: checkpoint.pt reproduces only {100 * agreement:.1f}% of the classes in "
            f"predictions.npz (< {100 * MIN_AGREEMENT:.0f}%); its twins are not written"
        )
    return saved_logits


def add_run_counterfactual(run_dir: Path, *, device: str | None = None) -> Path | None:
    """Add ``counterfactual.npz`` to one finished run folder (see the module docstring); None when the run's
    data set has no twins. Raises ConfigError when the final weights cannot be restored or checked."""
    config = parse_run_config(read_config(run_dir), str(run_dir / CONFIG_JSON))
    dataset = datasets.load_data(config.data)
    if dataset.counterfactual is None:
        return None
    twin_ids = dataset.counterfactual.split.sample_ids
    with np.load(run_dir / PREDICTIONS_NPZ) as saved:
        rows = _rows_in(twin_ids, saved["sample_id"]) if "logits" in saved.files else None
        if rows is not None:  # every twin is a test sample (CIFAR-10S): its logits are saved already
            return save_twins(run_dir, dataset, np.asarray(saved["logits"], dtype=np.float32)[rows])
    runtime = make_runtime(config.train, resolve_device(device), dataset.modality)
    model = restore_final_model(run_dir, config, dataset, runtime)
    _check_reproduces(run_dir, model, dataset, runtime, config)
    return save_twins(run_dir, dataset, _predictor(model, dataset, runtime, config)())


def add_missing_counterfactuals(
    sweep_dir: str | Path, *, device: str | None = None, log: Log = print
) -> list[Path]:
    """Add ``counterfactual.npz`` to every finished run under ``sweep_dir/runs`` that lacks it and whose
    data set has twins; returns the files written. A run that cannot be completed is logged and skipped
    (the audit then lists it among the runs without twins)."""
    written = []
    for run_dir in sorted(Path(sweep_dir).glob(f"{RUNS}/*/")):
        if not is_done(run_dir) or (run_dir / COUNTERFACTUAL_NPZ).exists():
            continue
        if not (run_dir / CONFIG_JSON).is_file():
            continue
        try:
            path = add_run_counterfactual(run_dir, device=device)
        except ConfigError as exc:
            log(f"counterfactual twins: {exc}")
            continue
        if path is not None:
            written.append(path)
            log(f"counterfactual twins: wrote {path}")
    return written
