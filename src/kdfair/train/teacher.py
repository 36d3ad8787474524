"""Teachers of DS runs: a finished run of the sweep, a checkpoint file, or a black-box outputs file.

A live teacher runs in eval mode without gradients, once per batch for all students of a lockstep group
(``forward_all``: logits, penultimate features, stage maps). Without augmentation its outputs are computed
once for the whole train split and cached in memory and in ``<sweep>/cache/teacher_<key>.npz``
(PERF-NOTES §3): logits and features always, and the stage maps that the unit's methods read (AT, FitNet's
map hints) when they fit in :data:`MAP_CACHE_BYTES`; larger maps stay live forwards. The cache is valid
only for the same weights: its fingerprint holds the sha256 of the teacher's weights file (a run's
checkpoint.pt or the checkpoint file), so a file changed in place, even at the same path, is recomputed.
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

# The most bytes of cached stage maps (float32, all train samples) per process. ResNet-20's last two maps on
# CIFAR's 50,000 train images take 2.5 GB (12,288 floats an image) and save a teacher forward per step,
# which costs ten times a LeNet-5 student's step on the CPU; an ImageNet ResNet's maps would take 100s of GB.
MAP_CACHE_BYTES = 4 * 2**30


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
    # "logits"/"features": (N_train, ...); "map<i>": stage map i, (N_train, C, H, W)
    cached: dict[str, torch.Tensor] = field(default_factory=dict)
    map_count: int = 0  # stage maps of the live network (0 without one)
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
        """Cached outputs at train positions ``index`` (a device int64 tensor); ``maps`` holds the cached
        stage maps (None at the others) or is None when none are cached."""
        logits = self.cached.get("logits")
        features = self.cached.get("features")
        maps = [self.cached.get(map_key(i)) for i in range(self.map_count)]
        return TeacherOutput(
            logits=None if logits is None else logits[index],
            features=None if features is None else features[index],
            maps=None if all(m is None for m in maps) else [None if m is None else m[index] for m in maps],
        )

    def map_shapes(self, example: torch.Tensor, runtime: Runtime) -> tuple[tuple[int, ...], ...] | None:
        """Per-sample shapes (C, H, W) of the live teacher's stage maps, from one forward on ``example``
        (not counted); sets :attr:`map_count`. None without a network."""
        if self.model is None:
            return None
        with torch.no_grad(), runtime.autocast():
            maps = self.model.forward_all(example).maps
        self.map_count = len(maps)
        return tuple(tuple(int(d) for d in m.shape[1:]) for m in maps)

    def maps_in_cache(self, wanted: set[int], shapes: tuple[tuple[int, ...], ...], n_train: int) -> set[int]:
        """The stage maps to cache: ``wanted`` when their float32 bytes over ``n_train`` samples fit in
        :data:`MAP_CACHE_BYTES`, else none (the methods that read them then use live forwards)."""
        size = sum(4 * n_train * int(np.prod(shapes[i])) for i in wanted)
        return set(wanted) if size <= MAP_CACHE_BYTES else set()


def map_key(index: int) -> str:
    """The cache key of stage map ``index``."""
    return f"map{index}"


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
    maps: set[int] | frozenset[int] = frozenset(),
) -> None:
    """Compute (or load) the teacher's logits, features and stage maps ``maps`` for every train sample,
    unaugmented.

    Stored in memory and in ``cache_dir/teacher_<key>.npz`` (atomic) with ``sample_id`` and a ``fingerprint``
    of what produced them (teacher key and weights sha256, data, normalisation, precision); a file with
    another fingerprint, or without one of the maps asked for, is recomputed.
    """
    if teacher.cached:
        return
    path = cache_dir / f"teacher_{teacher.key}.npz"
    ids = np.asarray(pipeline.split.sample_ids)
    keys = ["logits", "features", *(map_key(i) for i in sorted(maps))]
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                if (
                    str(npz["fingerprint"]) == fingerprint
                    and np.array_equal(npz["sample_id"], ids)
                    and set(keys) <= set(npz.files)
                ):
                    teacher.cached = {k: torch.from_numpy(npz[k]).to(runtime.device) for k in keys}
                    return
        except (OSError, ValueError, KeyError):
            pass
    arrays: dict[str, np.ndarray] = {}  # filled in place: the maps can take GBs, no second copy
    for start in range(0, len(pipeline), batch_size):
        index = np.arange(start, min(start + batch_size, len(pipeline)))
        out = teacher.live(pipeline.batch(index), runtime)
        rows = {"logits": out.logits, "features": out.features}
        rows.update({map_key(i): out.maps[i] for i in maps})
        for key, value in rows.items():
            if key not in arrays:
                arrays[key] = np.empty((len(pipeline), *value.shape[1:]), dtype=np.float32)
            arrays[key][index] = value.float().cpu().numpy()
    save_npz_atomic(path, sample_id=ids, fingerprint=np.array(fingerprint), **arrays)
    teacher.cached = {k: torch.from_numpy(v).to(runtime.device) for k, v in arrays.items()}
