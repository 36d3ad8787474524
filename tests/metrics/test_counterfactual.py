"""Counterfactual unfairness and flip rate on fixtures with known answers; kNN pair diagnostics by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdfair.errors import DataError
from kdfair.metrics.counterfactual import (
    counterfactual_by_attribute,
    counterfactual_flip_rate,
    counterfactual_unfairness,
    knn_pair_diagnostics,
    pair_total_variation,
)

N_LEVELS = 10


def _twin_fixture(seed: int = 0) -> dict[str, np.ndarray]:
    """200 originals (shape label, colour attribute) and their 9 colour twins each (every other colour)."""
    rng = np.random.default_rng(seed)
    shape = rng.integers(0, N_LEVELS, 200)
    colour = rng.integers(0, N_LEVELS, 200)
    source = np.repeat(np.arange(200), N_LEVELS - 1)
    twin_colour = np.concatenate([[c for c in range(N_LEVELS) if c != own] for own in colour])
    return {"shape": shape, "colour": colour, "source": source, "twin_colour": twin_colour}


def _one_hot(classes: np.ndarray) -> np.ndarray:
    return np.eye(N_LEVELS)[classes]


def _soft(classes: np.ndarray, top: float) -> np.ndarray:
    """Probability ``top`` on the class, the rest spread evenly over the other 9 classes."""
    probs = np.full((len(classes), N_LEVELS), (1.0 - top) / (N_LEVELS - 1))
    probs[np.arange(len(classes)), classes] = top
    return probs


def test_a_model_that_ignores_the_attribute_scores_zero() -> None:
    f = _twin_fixture()
    rng = np.random.default_rng(1)
    by_shape = rng.dirichlet(np.ones(N_LEVELS), N_LEVELS)  # any probability vector per shape, colour unused
    probs, twin_probs = by_shape[f["shape"]], by_shape[f["shape"][f["source"]]]
    assert counterfactual_unfairness(probs, twin_probs, source_index=f["source"]) == 0.0
    flips = counterfactual_flip_rate(probs.argmax(1), twin_probs.argmax(1), source_index=f["source"])
    assert flips == 0.0


def test_a_model_that_predicts_from_the_attribute_alone_scores_its_known_value() -> None:
    f = _twin_fixture()
    # one-hot on the colour: every twin has another colour, so every pair is disjoint and flips
    probs, twin_probs = _one_hot(f["colour"]), _one_hot(f["twin_colour"])
    assert counterfactual_unfairness(probs, twin_probs, source_index=f["source"]) == 1.0
    assert counterfactual_flip_rate(f["colour"], f["twin_colour"], source_index=f["source"]) == 1.0
    # 0.7 on the colour's class, 0.3 / 9 elsewhere: two entries swap, TV = 0.7 - 0.3 / 9 = 2 / 3
    soft = counterfactual_unfairness(
        _soft(f["colour"], 0.7), _soft(f["twin_colour"], 0.7), source_index=f["source"]
    )
    assert soft == pytest.approx(0.7 - 0.3 / 9, abs=1e-12)


def test_a_model_that_uses_the_attribute_for_half_the_classes() -> None:
    """Binary attribute (CIFAR-10S grey/colour), twins row by row: the model is right on colour images and
    predicts class 0 for grey images of classes 0-4, so the pairs of classes 1-4 flip (4 of 10), with TV 1."""
    label = np.repeat(np.arange(N_LEVELS), 10)
    on_colour = label
    on_grey = np.where(label < 5, 0, label)
    assert counterfactual_flip_rate(on_colour, on_grey) == pytest.approx(0.4)
    assert counterfactual_unfairness(_one_hot(on_colour), _one_hot(on_grey)) == pytest.approx(0.4)


def test_hand_worked_pairs_and_per_attribute_split() -> None:
    probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    twins = np.array([[0.5, 0.5], [0.3, 0.7], [0.1, 0.9], [0.9, 0.1]])
    source = np.array([0, 0, 1, 1])
    changed = np.array(["colour", "colour", "texture", "texture"])
    np.testing.assert_allclose(pair_total_variation(probs, twins, source_index=source), [0.0, 0.2, 0.8, 0.0])
    assert counterfactual_unfairness(probs, twins, source_index=source) == pytest.approx(0.25)
    out = counterfactual_by_attribute(probs, twins, source_index=source, changed_attribute=changed)
    assert out["colour"] == pytest.approx({"unfairness": 0.1, "flip_rate": 0.5, "n_pairs": 2})
    assert out["texture"] == pytest.approx({"unfairness": 0.4, "flip_rate": 0.5, "n_pairs": 2})


def test_order_of_the_twins_does_not_matter() -> None:
    f = _twin_fixture(3)
    probs, twins = _soft(f["colour"], 0.55), _soft(f["twin_colour"], 0.55)
    order = np.random.default_rng(0).permutation(len(twins))
    base = counterfactual_unfairness(probs, twins, source_index=f["source"])
    assert counterfactual_unfairness(probs, twins[order], source_index=f["source"][order]) == pytest.approx(
        base
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: counterfactual_unfairness(np.eye(3), np.eye(3)[:2]), "pair row by row"),
        (lambda: counterfactual_unfairness(np.eye(3), np.eye(3), source_index=[0, 1, 3]), r"\[0, 3\)"),
        (lambda: counterfactual_unfairness(np.eye(3), np.eye(2)), "classes"),
        (lambda: counterfactual_unfairness(np.eye(3) * 2, np.eye(3)), "probability vectors"),
        (lambda: counterfactual_flip_rate([0, 1], [0, 1], source_index=[0.5, 1.0]), "integer rows"),
    ],
)
def test_bad_inputs_raise(call, match) -> None:
    with pytest.raises(DataError, match=match):
        call()


def test_knn_pair_diagnostics_by_hand() -> None:
    neighbors = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    y_true = np.array([0, 0, 1, 1])
    colour = np.array([5, 6, 5, 6])
    out = knn_pair_diagnostics(neighbors, y_true, sensitive_features={"colour": colour})
    # pairs (0,1) (0,2) (1,0) (1,3) (2,3) (2,0) (3,2) (3,1): same label 4 of 8; same colour 4 of 8
    assert out == {"n_pairs": 8, "same_label": 0.5, "same_group": {"colour": 0.5}}
    pixel_like = knn_pair_diagnostics(
        np.array([[2], [3], [0], [1]]), y_true, sensitive_features={"colour": colour}
    )
    assert pixel_like["same_label"] == 0.0 and pixel_like["same_group"]["colour"] == 1.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30), st.integers(1, 60), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_matches_a_loop_and_ignores_class_and_twin_order(n, m, c, seed) -> None:
    rng = np.random.default_rng(seed)
    probs, twins = rng.dirichlet(np.ones(c), n), rng.dirichlet(np.ones(c), m)
    source = rng.integers(0, n, m)
    by_loop = np.mean([0.5 * sum(abs(probs[source[j], i] - twins[j, i]) for i in range(c)) for j in range(m)])
    value = counterfactual_unfairness(probs, twins, source_index=source)
    assert value == pytest.approx(by_loop, abs=1e-12) and 0.0 <= value <= 1.0
    classes, order = rng.permutation(c), rng.permutation(m)
    assert counterfactual_unfairness(
        probs[:, classes], twins[order][:, classes], source_index=source[order]
    ) == pytest.approx(value, abs=1e-12)
    flips = counterfactual_flip_rate(probs.argmax(1), twins.argmax(1), source_index=source)
    assert flips == np.mean([probs[source[j]].argmax() != twins[j].argmax() for j in range(m)])
