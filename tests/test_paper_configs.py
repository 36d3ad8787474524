"""Every config in configs/paper/ validates: keys, values, model, data and method names and options.

The data and teacher files of the papers' experiments are not on this machine, so file checks are off.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kdfair.sweep.config import load_sweep_config
from kdfair.sweep.expand import expand

PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper"
CONFIGS = sorted(PAPER.glob("*.yaml"))


def test_there_is_a_config_per_experiment() -> None:
    names = {path.stem.split("_")[0] + "_" + path.stem.split("_")[1] for path in CONFIGS}
    for table in ("table1", "table2", "table3", "table5", "table6", "table7", "table8", "table9"):
        assert any(name.startswith(table) for name in names), table
    for table in range(1, 8):
        assert any(path.stem.startswith(f"bird_table{table}_") for path in CONFIGS), f"BIRD table {table}"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_paper_config_validates_and_expands(path: Path, tmp_path: Path) -> None:
    config = load_sweep_config(path, files=False)
    assert config.seeds == [0, 1, 2, 3, 4]
    plan = expand(config, tmp_path)
    runs = plan.runs
    n_pairs, n_data = len(config.pair_list), len(config.data_list)
    n_ds = len(config.distill.methods) * len(config.distill.temperatures) * len(config.distill.alphas)
    trained_teachers = sum(pair.teacher.source == "train" for pair in config.pair_list)
    expected = 5 * n_data * (trained_teachers + n_pairs * (1 + n_ds))
    assert len(runs) == expected


EXPERIMENTS = sorted((PAPER.parent / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_config_validates(path: Path, tmp_path: Path) -> None:
    """The CPU-scale experiments of RESULTS.md (their data roots are checked when they run)."""
    config = load_sweep_config(path, files=False)
    assert expand(config, tmp_path).runs


def test_demo_config_validates_and_trains_learning_students(tmp_path: Path) -> None:
    """The README's main job: a teacher, an NDS and DS at T = 1..10 over 3 seeds on built-in Trifeature."""
    from kdfair.demo import demo_config_text

    path = tmp_path / "demo.yaml"
    path.write_text(demo_config_text(), encoding="utf-8")
    config = load_sweep_config(path)  # built-in data: the file checks run too
    runs = expand(config, tmp_path / "out").runs
    assert len(runs) == 3 * (1 + 1 + 10)
    assert sorted({run.temperature for run in runs if run.role == "ds"}) == list(range(1, 11))
    # students with Adam (SGD students collapsed at T >= 2 at this scale, RESULTS.md), the teacher with SGD
    assert config.train.optimizer == "adam" and config.teacher_train_config().optimizer == "sgd"
