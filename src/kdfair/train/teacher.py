"""Teachers of DS runs: a finished run of the sweep, a checkpoint file, or a black-box outputs file.

A live teacher runs in eval mode without gradients, once per batch for all students of a lockstep group
(``forward_all``: logits, penultimate features, stage maps). Without augmentation its outputs are computed
once for the whole train split and cached in memory and in ``<sweep>/cache/teacher_<key>.npz``
(PERF-NOTES §3). The cache is valid only for the same weights: its fingerprint holds the sha256 of the
teacher's weights file (a run's checkpoint.pt or the checkpoint file), so a file changed in place, even at
the same path, is recomputed.
An outputs file (``sample_id`` and ``logits`` and/or ``features``) is aligned to the train split by sample id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdfair.data.base import Dataset
from kdfair.errors import ConfigError, DataError
from kdfair.io import save_npz_atomic
from kdfair.methods.base import TeacherOutput
from kdfair.models.base import KDModel
from kdfair.models.registry import build_model, model_options
from kdfair.models.weights import load_pretrained
from kdfair.runfolder import CHECKPOINT_PT, DONE, is_done, read_config, run_path
from kdfair.train.augment import InputPipeline
from kdfair.train.config import ModelConfig, TeacherSource, parse_run_config
from kdfair.train.device import Runtime


def build_network(model: ModelConfig, dataset: Dataset, *, pretrained: bool = True) -> KDModel:
    """Build a registry model for ``dataset`` (image size / vocabulary passed where the factory takes them).

    Used for students and teachers alike.
    """
    options = dict(model.options)
    accepted = model_options(model.name)
    if "image_size" in accepted and dataset.image_size is not None:
        options.setdefault("image_size", dataset.image_size)
    if "vocab_size" in accepted and dataset.vocab_size is not None:
        options.setdefault("vocab_size", dataset.vocab_size)
    if pretrained and model.pretrained is not None:
        options["pretrained"] = model.pretrained
    return build_model(model.name, dataset.num_classes, **options)


@dataclass
class Teacher:
    """A resolved teacher: a live network, cached outputs per train position, or both."""

    key: str  # names the cache file and run.json's settings.teacher
    description: str
    model: KDModel | None = None
    weights_sha256: str | None = None  # content of the live teacher's weights file (cache fingerprint)
    cached: dict[str, torch.Tensor] = field(default_factory=dict)  # "logits"/"features": (N_train, ...)
    forwards: int = 0  # live batch forwards done (tests count them)

    @property
    def feature_dim(self) -> int | None:
        if "features" in self.cached:
            return int(self.cached["features"].shape[1])
        return (
            int(self.model.feature_dim)
            if self.model is not None and hasattr(self.model, "feature_dim")
            else None
        )

    def live(self, inputs: torch.Tensor, runtime: Runtime) -> TeacherOutput:
        """One no-grad eval-mode ``forward_all`` on a batch; logits/features cast to fp32."""
        if self.model is None:
            raise ConfigError(f"teacher {self.key} has no network (outputs file); it cannot give stage maps")
        self.forwards += 1
        with torch.no_grad(), runtime.autocast():
            out = self.model.forward_all(inputs)
        return TeacherOutput(logits=out.logits.float(), features=out.features.float(), maps=list(out.maps))

    def lookup(self, index: torch.Tensor) -> TeacherOutput:
        """Cached outputs at train positions ``index`` (a device int64 tensor)."""
        logits = self.cached.get("logits")
        features = self.cached.get("features")
        return TeacherOutput(
            logits=None if logits is None else logits[index],
            features=None if features is None else features[index],
        )

    def map_channels(self, example: torch.Tensor, runtime: Runtime) -> tuple[int, ...] | None:
        """Channels of the live teacher's stage maps, from one forward on ``example`` (not counted)."""
        if self.model is None:
            return None
        with torch.no_grad(), runtime.autocast():
            maps = self.model.forward_all(example).maps
        return tuple(int(m.shape[1]) for m in maps)


def resolve_teacher(source: TeacherSource, sweep_dir: Path, dataset: Dataset, runtime: Runtime) -> Teacher:
    """Load the teacher named by ``source`` onto the runtime's device, in eval mode."""
    if source.kind == "outputs":
        return _from_outputs(Path(source.path or ""), dataset, runtime)
    if source.kind == "run":
        folder = run_path(sweep_dir, str(source.run_id))
        if not is_done(folder):
            raise ConfigError(f"teacher run '{source.run_id}' is not finished: no {DONE} in {folder}")
        teacher_config = parse_run_config(read_config(folder), str(folder))
        weights = folder / CHECKPOINT_PT
        model = build_network(teacher_config.model, dataset, pretrained=False)
        load_pretrained(model, weights)
        key, description = str(source.run_id), f"run {source.run_id} ({teacher_config.model.name})"
    else:
        assert source.model is not None and source.path is not None
        weights = Path(source.path)
        model = build_network(source.model, dataset, pretrained=False)
        load_pretrained(model, weights)
        digest = hashlib.sha1(f"{weights.resolve()}|{source.model.model_dump_json()}".encode()).hexdigest()
        key, description = f"ckpt_{digest[:12]}", f"checkpoint {source.path} ({source.model.name})"
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.eval().requires_grad_(False)
    return Teacher(key=key, description=description, model=model, weights_sha256=file_sha256(weights))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file's bytes (about 1 GB/s: a fraction of a second for a ResNet-50 checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:  # hashlib.file_digest is Python 3.11+
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_outputs(path: Path, dataset: Dataset, runtime: Runtime) -> Teacher:
    """A black-box teacher: rows of the npz matched to the train split's sample ids."""
    if not path.is_file():
        raise ConfigError(f"teacher outputs file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    if "sample_id" not in arrays or not ({"logits", "features"} & set(arrays)):
        raise DataError(f"{path}: a teacher outputs file needs 'sample_id' and 'logits' and/or 'features'")
    rows = _align(arrays["sample_id"], dataset.split("train").sample_ids, path)
    cached = {
        key: torch.from_numpy(np.ascontiguousarray(arrays[key][rows], dtype=np.float32)).to(runtime.device)
        for key in ("logits", "features")
        if key in arrays
    }
    if "logits" in cached and cached["logits"].shape[1] != dataset.num_classes:
        raise DataError(
            f"{path}: logits have {cached['logits'].shape[1]} classes, data has {dataset.num_classes}"
        )
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return Teacher(key=f"outputs_{digest}", description=f"outputs {path}", cached=cached)


def _align(file_ids: np.ndarray, split_ids: np.ndarray, path: Path) -> np.ndarray:
    """Row of ``file_ids`` holding each of ``split_ids``; a missing id is a DataError."""
    order = np.argsort(file_ids, kind="stable")
    pos = np.searchsorted(file_ids[order], split_ids)
    pos = np.minimum(pos, len(order) - 1)
    found = file_ids[order][pos] == split_ids
    if not found.all():
        missing = split_ids[~found]
        raise DataError(
            f"{path}: {len(missing)} train sample ids missing from the teacher outputs, e.g. {missing[0]}"
        )
    return order[pos]


def fill_cache(
    teacher: Teacher,
    pipeline: InputPipeline,
    runtime: Runtime,
    cache_dir: Path,
    batch_size: int,
    fingerprint: str,
) -> None:
    """Compute (or load) the teacher's logits and features for every train sample, unaugmented.

    Stored in memory and in ``cache_dir/teacher_<key>.npz`` (atomic) with ``sample_id`` and a ``fingerprint``
    of what produced them (teacher key and weights sha256, data, normalisation, precision); a file with
    another fingerprint is recomputed.
    """
    if teacher.cached:
        return
    path = cache_dir / f"teacher_{teacher.key}.npz"
    ids = np.asarray(pipeline.split.sample_ids)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                if str(npz["fingerprint"]) == fingerprint and np.array_equal(npz["sample_id"], ids):
                    teacher.cached = {
                        k: torch.from_numpy(npz[k]).to(runtime.device) for k in ("logits", "features")
                    }
                    return
        except (OSError, ValueError, KeyError):
            pass
    logits, features = [], []
    for start in range(0, len(pipeline), batch_size):
        index = np.arange(start, min(start + batch_size, len(pipeline)))
        out = teacher.live(pipeline.batch(index), runtime)
        logits.append(out.logits.cpu().numpy())
        features.append(out.features.cpu().numpy())
    arrays = {"logits": np.concatenate(logits), "features": np.concatenate(features)}
    save_npz_atomic(path, sample_id=ids, fingerprint=np.array(fingerprint), **arrays)
    teacher.cached = {k: torch.from_numpy(v).to(runtime.device) for k, v in arrays.items()}
