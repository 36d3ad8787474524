"""Loading optional local pretrained weights into a registry model.

Random initialisation is the offline default. A ``pretrained`` path names a local file holding a
state_dict: ``.safetensors`` (read with ``safetensors``), anything else with torch.load(weights_only=True).
A dict that wraps the state_dict under ``"model"`` or ``"state_dict"`` (e.g. a kdfair checkpoint) is
unwrapped. Nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdfair.errors import ConfigError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from a local .pt/.pth/.safetensors file; a missing file is a ConfigError."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"pretrained weights file not found: {file}")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(file), device="cpu")
        else:
            raw = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any read failure is a bad user file
        raise ConfigError(f"cannot read pretrained weights {file}: {type(exc).__name__}: {exc}") from exc
    for key in ("model", "state_dict"):
        if isinstance(raw, Mapping) and isinstance(raw.get(key), Mapping):
            raw = raw[key]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ConfigError(f"pretrained weights {file} do not hold a state_dict (name -> tensor)")
    return dict(raw)


def load_pretrained(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the state_dict at ``path`` into ``model`` strictly; any key or shape mismatch is a ConfigError.

    A wrapper model holding a library module as ``net`` (torchvision, timm, transformers) also accepts that
    library's own state_dict format (keys without the ``net.`` prefix).
    """
    state = read_state_dict(path)
    mismatch = _mismatch(model, state)
    inner = getattr(model, "net", None)
    if mismatch and isinstance(inner, nn.Module) and not _mismatch(inner, state):
        inner.load_state_dict(state, strict=True)
        return model
    if mismatch:
        raise ConfigError(f"pretrained weights {path} do not fit {type(model).__name__}: {mismatch}")
    model.load_state_dict(state, strict=True)
    return model


def _mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """A one-line account of how ``state`` fails to fit ``module``; empty when it fits exactly."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if not (missing or unexpected or wrong_shape):
        return ""
    return f"missing {_few(missing)}, unexpected {_few(unexpected)}, wrong shape {_few(wrong_shape)}"


def _few(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"[{shown}{more}]"
