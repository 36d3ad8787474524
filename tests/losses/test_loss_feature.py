"""Feature MSE, the width projector and FitNet's hint loss (SPEC §2)."""

import pytest
import torch

from kdfair.losses.feature import FeatureProjector, feature_mse
from kdfair.losses.fitnet import HintRegressor, hint_loss, match_spatial


def test_feature_mse_hand_worked() -> None:
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert feature_mse(s, t).item() == pytest.approx((1 + 4 + 0 + 4) / 4)
    with pytest.raises(ValueError, match="feature shapes differ"):
        feature_mse(s, torch.zeros(2, 3))


def test_projector_identity_or_linear() -> None:
    x = torch.randn(3, 4)
    assert FeatureProjector(4, 4)(x) is x
    assert FeatureProjector(4, 7)(x).shape == (3, 7)
    assert len(list(FeatureProjector(4, 4).parameters())) == 0


def test_hint_loss_pools_and_regresses() -> None:
    a, b = match_spatial(torch.ones(2, 3, 8, 8), torch.zeros(2, 5, 4, 4))
    assert a.shape == (2, 3, 4, 4) and b.shape == (2, 5, 4, 4)
    regressor = HintRegressor(3, 5, on_maps=True)
    assert hint_loss(regressor(torch.randn(2, 3, 8, 8)), torch.randn(2, 5, 4, 4)).item() > 0
    teacher = torch.full((2, 5, 4, 4), 2.0)
    assert hint_loss(torch.full((2, 5, 4, 4), 3.0), teacher).item() == pytest.approx(1.0)
    assert HintRegressor(3, 5, on_maps=False)(torch.randn(4, 3)).shape == (4, 5)
