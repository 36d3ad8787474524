"""Attention maps and the AT loss on hand-worked tensors (SPEC §2 "AT")."""

import math

import pytest
import torch

from kdfair.losses.attention import attention_map, attention_transfer_loss


def test_attention_map_hand_worked() -> None:
    # channel 0 = [[1, 0], [0, 0]], channel 1 = [[1, 2], [0, 0]]
    # -> squares averaged over channels: [[1, 2], [0, 0]] -> [1, 2, 0, 0] / sqrt(5)
    x = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[1.0, 2.0], [0.0, 0.0]]]])
    expected = torch.tensor([[1.0, 2.0, 0.0, 0.0]]) / math.sqrt(5.0)
    torch.testing.assert_close(attention_map(x), expected)


def test_attention_map_sign_invariant_and_unit_norm() -> None:
    x = torch.randn(3, 4, 5, 5)
    a = attention_map(x)
    torch.testing.assert_close(a, attention_map(-x))
    torch.testing.assert_close(a.norm(dim=1), torch.ones(3))


def test_attention_transfer_loss_hand_worked() -> None:
    # student attention [1, 0, 0, 0], teacher [0, 1, 0, 0]: mean squared difference (1 + 1) / 4 = 0.5
    student = torch.tensor([[[[3.0, 0.0], [0.0, 0.0]]]])
    teacher = torch.tensor([[[[0.0, -2.0], [0.0, 0.0]], [[0.0, 5.0], [0.0, 0.0]]]])
    assert attention_transfer_loss([student], [teacher], beta=1000.0).item() == pytest.approx(250.0)
    # two identical pairs sum; identical maps give 0
    assert attention_transfer_loss([student, student], [teacher, teacher], beta=2.0).item() == pytest.approx(
        1.0
    )
    assert attention_transfer_loss([teacher], [teacher]).item() == pytest.approx(0.0)


def test_attention_transfer_pools_to_smaller_size() -> None:
    # a 4x4 student map made of constant 2x2 blocks: pooling to 2x2 gives the teacher map back
    teacher = torch.rand(2, 3, 2, 2)
    student = teacher.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # avg-pools back to the teacher
    assert attention_transfer_loss([student], [teacher]).item() == pytest.approx(0.0, abs=1e-10)
    loss = attention_transfer_loss([torch.rand(2, 3, 4, 4)], [teacher])
    assert loss.item() > 0
