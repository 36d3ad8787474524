"""A tiny stand-in data set for the trainer tests (the real registry is tested elsewhere).

Run as a script it trains the runs of a JSON file (a list of RunConfig dicts) with this data set, so tests
can interrupt training in a subprocess: ``python standin.py RUNS.json SWEEP_DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from kdfair.data.base import Dataset, DataSplit

IMAGE_SIZE = 16
NUM_CLASSES = 3


def _split(rng: np.random.Generator, n: int, id_offset: int) -> DataSplit:
    labels = rng.integers(0, NUM_CLASSES, n)
    colour = rng.integers(0, 2, n)
    texture = rng.integers(0, 2, n)
    base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], dtype=np.float64)[labels]
    images = (
        base[:, None, None, :]
        + 30 * colour[:, None, None, None]
        + rng.normal(0, 40, (n, IMAGE_SIZE, IMAGE_SIZE, 3))
    )
    images = np.clip(images, 0, 255).astype(np.uint8)
    return DataSplit(
        inputs=images,
        labels=labels.astype(np.int64),
        sample_ids=np.arange(id_offset, id_offset + n, dtype=np.int64),
        attributes={"colour": colour.astype(np.int64), "texture": texture.astype(np.int64)},
    )


def make_dataset(n_train: int = 96, n_test: int = 40) -> Dataset:
    rng = np.random.default_rng(1234)
    return Dataset(
        name="standin",
        modality="image",
        num_classes=NUM_CLASSES,
        class_names=["red", "green", "blue"],
        splits={"train": _split(rng, n_train, 0), "test": _split(rng, n_test, 10_000)},
        attribute_levels={"colour": ["dark", "light"], "texture": ["plain", "rough"]},
        image_size=IMAGE_SIZE,
    )


def install() -> None:
    """Make ``kdfair.train.datasets.load_data`` return the stand-in for data set name 'standin'."""
    from kdfair.train import datasets

    original = datasets.load_data

    def load(config):  # noqa: ANN001, ANN202
        return make_dataset() if config.name == "standin" else original(config)

    datasets.load_data = load


def ddp_main() -> None:
    """``torch.distributed.run ... standin.py --ddp RUN.json [...] --sweep-dir DIR`` on the stand-in data.

    With ``KDFAIR_TEST_RANK_STATES=DIR`` every rank also saves each trained student's parameters as
    ``DIR/rank<r>_<run_id>.pt``, its method's state (BIRD's phi, AD's adversary, projectors) as
    ``DIR/rank<r>_method_<run_id>.pt`` and its teacher's live forward count as
    ``DIR/rank<r>_teacher_forwards.txt`` (rank 0 alone writes the run folder).
    """
    import os

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    install()
    from kdfair.train import runner
    from kdfair.train.ddp_cli import main

    states = os.environ.get("KDFAIR_TEST_RANK_STATES")
    if states:
        real = runner.finish_run

        def finish_and_save(config, folder, student, dataset, test, runtime, teacher):  # noqa: ANN001, ANN202
            rank = dist.get_rank()
            torch.save(student.model.state_dict(), Path(states) / f"rank{rank}_{config.run_id}.pt")
            torch.save(student.method.state_dict(), Path(states) / f"rank{rank}_method_{config.run_id}.pt")
            forwards = 0 if teacher is None else teacher.forwards
            (Path(states) / f"rank{rank}_teacher_forwards.txt").write_text(str(forwards))
            return real(config, folder, student, dataset, test, runtime, teacher)

        runner.finish_run = finish_and_save
    raise SystemExit(main(sys.argv[2:]))


if __name__ == "__main__" and sys.argv[1] == "--ddp":
    ddp_main()
elif __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    install()
    from kdfair.train.config import RunConfig
    from kdfair.train.runner import execute

    runs = [RunConfig.model_validate(r) for r in json.loads(Path(sys.argv[1]).read_text())]
    execute(runs, Path(sys.argv[2]), device="cpu", progress=False)
