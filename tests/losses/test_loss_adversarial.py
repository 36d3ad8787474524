"""The gradient reversal layer: identity forward, -lambda x upstream gradient backward (SPEC §2 "AD")."""

import pytest
import torch

from kdfair.losses.adversarial import GroupAdversary, grad_reverse


@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0, 3.0])
def test_gradient_reversal_sign_and_scale(scale: float) -> None:
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, 3, dtype=torch.float64)
    y = grad_reverse(x, scale)
    torch.testing.assert_close(y, x)
    (y * upstream).sum().backward()
    torch.testing.assert_close(x.grad, -scale * upstream)


def test_reversal_through_a_network_negates_the_gradient() -> None:
    torch.manual_seed(0)
    adversary = GroupAdversary(3, 2, hidden=5).double()
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    groups = torch.tensor([0, 1, 0, 1, 1, 0])
    plain = torch.autograd.grad(torch.nn.functional.cross_entropy(adversary(x), groups), x)[0]
    reversed_ = torch.autograd.grad(
        torch.nn.functional.cross_entropy(adversary(grad_reverse(x, 0.3)), groups), x
    )[0]
    torch.testing.assert_close(reversed_, -0.3 * plain)
    assert adversary(x).shape == (6, 2)
