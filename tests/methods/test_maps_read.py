"""Which teacher stage maps a method reads (Method.teacher_maps_read): the trainer caches only these."""

from __future__ import annotations

import pytest

from kdfair.methods.base import MethodContext
from kdfair.methods.registry import build_method
from kdfair.models.registry import build_model


def _context() -> MethodContext:
    student = build_model("lenet5", 10)
    return MethodContext(
        student=student,
        num_classes=10,
        temperature=4.0,
        alpha=0.5,
        teacher_feature_dim=64,
        teacher_map_channels=(16, 32, 64),
        student_map_channels=(6, 16),
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, (1, 2)),  # LeNet-5's 2 maps pair with ResNet-20's last 2
        ({"layer_pairs": [[0, 0], [1, -1]]}, (0, 2)),
        ({"layer_pairs": [[0, 2], [1, 2]]}, (2,)),
    ],
)
def test_attention_transfer_reads_its_pairs_teacher_maps(options: dict, expected: tuple[int, ...]) -> None:
    assert build_method("at", options, _context()).teacher_maps_read(3) == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [({}, (2,)), ({"teacher_layer": 0, "student_layer": 0}, (0,)), ({"teacher_layer": -2}, (1,))],
)
def test_fitnet_reads_its_hint_layer(options: dict, expected: tuple[int, ...]) -> None:
    assert build_method("fitnet", options, _context()).teacher_maps_read(3) == expected


def test_fitnet_on_features_and_kd_read_no_map() -> None:
    assert build_method("fitnet", {"hint": "features"}, _context()).teacher_maps_read(3) == ()
    assert build_method("kd", {}, _context()).teacher_maps_read(3) == ()
