"""The sweep config: schema defaults, strictness, and one-line errors naming the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import TINY, merged, write_config

from kdfair.errors import ConfigError
from kdfair.sweep.config import SweepConfig, load_sweep_config, parse_sweep_config


def test_defaults_follow_spec() -> None:
    config = parse_sweep_config(
        {
            "name": "x",
            "data": {"name": "trifeature"},
            "teacher": {"model": "resnet20"},
            "student": {"model": "lenet5"},
        },
        check=False,
    )
    assert config.distill.temperatures == [float(t) for t in range(1, 11)]  # paper: T = 1..10
    assert config.distill.alphas == [0.8]
    assert config.distill.t2_scaling is True
    assert config.seeds == [0, 1, 2, 3, 4]
    assert config.train.lr == 0.1 and config.train.epochs == 100 and config.train.milestones == [30, 60, 90]
    assert config.audit.level == 0.05 and config.report is True and config.include_nds is True
    assert config.teacher is not None and config.teacher.source == "train"


def test_teacher_train_overrides_only_teacher(tmp_path: Path) -> None:
    raw = merged(TINY, teacher_train={"epochs": 7, "lr": 0.05})
    config = load_sweep_config(write_config(tmp_path, raw), check=False)
    assert config.train.epochs == 2 and config.train.lr == 0.1
    teacher = config.teacher_train_config()
    assert teacher.epochs == 7 and teacher.lr == 0.05 and teacher.max_steps_per_epoch == 2


def test_config_is_frozen() -> None:
    config = parse_sweep_config(TINY, check=False)
    with pytest.raises(Exception, match="frozen"):
        config.seeds = [3]  # type: ignore[misc]


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    from kdfair.sweep.cli import dump_config

    config = parse_sweep_config(TINY, check=False)
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(config), encoding="utf-8")
    again = load_sweep_config(path, check=False)
    assert again == config and isinstance(again, SweepConfig)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"epochz": 3}, "bad.yaml: epochz: Extra inputs are not permitted"),
        ({"train": {"lrr": 0.1}}, "bad.yaml: train.lrr: Extra inputs are not permitted"),
        ({"train": {"lr": -0.1}}, "bad.yaml: train.lr: Input should be greater than 0"),
        (
            {"distill": {"temperatures": [1, -2]}},
            "bad.yaml: distill.temperatures.1: Input should be greater than 0",
        ),
        (
            {"distill": {"temperatures": [0]}},
            "bad.yaml: distill.temperatures.0: Input should be greater than 0",
        ),
        (
            {"distill": {"alphas": [1.5]}},
            "bad.yaml: distill.alphas.0: Input should be less than or equal to 1",
        ),
        (
            {"distill": {"alphas": [-0.1]}},
            "bad.yaml: distill.alphas.0: Input should be greater than or equal to 0",
        ),
        ({"distill": {"alphas": [0.8, 0.8]}}, "bad.yaml: distill.alphas: values must be unique"),
        ({"seeds": [-1]}, "bad.yaml: seeds.0: Input should be greater than or equal to 0"),
        (
            {"teacher_train": {"epochs": 0}},
            "bad.yaml: teacher_train.epochs: Input should be greater than or equal to 1",
        ),
        ({"teacher_train": {"epoch": 3}}, "bad.yaml: teacher_train.epoch: Extra inputs are not permitted"),
        ({"data": {"nam": "x"}}, "bad.yaml: data.nam: Extra inputs are not permitted"),
        (
            {"teacher": {"source": "checkpoint"}},
            "bad.yaml: teacher: 'path' is required when source is 'checkpoint'",
        ),
        ({"train": {"milestones": [5, 2]}}, "bad.yaml: train.milestones must be increasing"),
        ({"pairs": [{"teacher": {"model": "resnet20"}, "student": {"model": "lenet5"}}]}, "not both"),
    ],
)
def test_schema_errors_are_one_line_naming_file_and_key(tmp_path: Path, changes: dict, expected: str) -> None:
    path = write_config(tmp_path, merged(TINY, **changes), "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_sweep_config(path, check=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and expected.removeprefix("bad.yaml") in message, message


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndata: {name: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML \(line 3"):
        load_sweep_config(path)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sweep config not found"):
        load_sweep_config(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_sweep_config(path)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"student": {"model": "lenet6"}}, "student.model: unknown model 'lenet6'; valid models: "),
        ({"teacher": {"model": "resnet21"}}, "teacher.model: unknown model 'resnet21'"),
        ({"student": {"options": {"widht": 2}}}, "student.model: unknown option(s) widht of model 'lenet5'"),
        ({"distill": {"methods": ["kd", "kdd"]}}, "distill.methods: unknown method 'kdd'; valid methods: "),
        (
            {"teacher": {"source": "checkpoint", "path": "/nonexistent/t_s{seed}.pt"}},
            "teacher.path: file not found",
        ),
        (
            {"student": {"pretrained": "/nonexistent/w.pt"}},
            "student.pretrained: file not found: /nonexistent/w.pt",
        ),
    ],
)
def test_registry_and_file_checks(tmp_path: Path, changes: dict, expected: str) -> None:
    path = write_config(tmp_path, merged(TINY, **changes), "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_sweep_config(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value), str(info.value)
