"""Training methods by name (the sweep config's ``method:`` value).

Each entry maps a name to its typed options (a strict pydantic model; defaults per SPEC §2) and a builder
``build(options, context) -> Method``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from kdfair.errors import ConfigError
from kdfair.methods import ad, at, bird, feature_kd, fitnet, mfd, standard
from kdfair.methods.base import Method, MethodContext


@dataclass(frozen=True)
class MethodSpec:
    options: type[BaseModel]
    build: Callable[[Any, MethodContext], Method]
    description: str


METHODS: dict[str, MethodSpec] = {
    "ce": MethodSpec(standard.NoOptions, standard.build_ce, "cross-entropy only (teachers and NDS)"),
    "kd": MethodSpec(standard.NoOptions, standard.build_kd, "Hinton KD on temperature-softened logits"),
    "fkd": MethodSpec(
        feature_kd.FeatureKDOptions, feature_kd.build_fkd, "feature KD: MSE on penultimate features"
    ),
    "fitnet": MethodSpec(
        fitnet.FitNetOptions, fitnet.build_fitnet, "FitNet hints through a learned regressor"
    ),
    "at": MethodSpec(at.AttentionTransferOptions, at.build_at, "attention transfer on stage maps"),
    "ad": MethodSpec(ad.AdversarialOptions, ad.build_ad, "adversarial debiasing with gradient reversal"),
    "mfd": MethodSpec(mfd.MFDOptions, mfd.build_mfd, "MFD: class- and group-wise MMD to teacher features"),
    "bird": MethodSpec(bird.BIRDOptions, bird.build_bird, "BIRD: meta-learned FAIRDISTILL gate + L_o"),
    "bird_no_meta": MethodSpec(
        bird.BIRDOptions, bird.build_bird_no_meta, "BIRD without the meta step (gate fixed)"
    ),
}


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name raises :class:`ConfigError` listing the valid ones."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; valid methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def parse_method_options(name: str, raw: dict[str, Any] | None) -> BaseModel:
    """Validate ``raw`` options for method ``name`` strictly (unknown keys and bad values are errors)."""
    spec = method_spec(name)
    try:
        return spec.options.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"method '{name}' option '{key}': {first['msg']}") from exc


def build_method(name: str, raw_options: dict[str, Any] | None, context: MethodContext) -> Method:
    """Build method ``name`` for one run."""
    spec = method_spec(name)
    return spec.build(parse_method_options(name, raw_options), context)
