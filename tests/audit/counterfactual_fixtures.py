"""Runs with counterfactual twins whose audit values are known (tests/audit/test_counterfactual_audit.py).

100 test samples: label = shape = i mod 10, colour = i // 10 (every (shape, colour) pair once), texture =
7 i mod 10. Twins: 2 colour twins (colour + 1 and + 2, mod 10) and 1 texture twin (texture + 1) per sample.
Teacher and DS (T = 2) predict from the shape alone; the NDS from the colour alone. Two seeds each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdfair.counterfactual import save_counterfactual
from kdfair.io import save_npz_atomic, write_json_atomic

N, LEVELS = 100, 10
SHAPE = np.arange(N) % LEVELS
COLOUR = np.arange(N) // LEVELS
TEXTURE = (7 * np.arange(N)) % LEVELS


def _twins() -> dict[str, np.ndarray]:
    source = np.concatenate([np.repeat(np.arange(N), 2), np.arange(N)])
    colour = np.concatenate([(COLOUR[:, None] + [1, 2]).reshape(-1) % LEVELS, COLOUR])
    texture = np.concatenate([np.repeat(TEXTURE, 2), (TEXTURE + 1) % LEVELS])
    attribute = np.array(["colour"] * 2 * N + ["texture"] * N)
    return {"source": source, "colour": colour, "texture": texture, "attribute": attribute}


def _logits(role: str, shape: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Teacher and DS: from the shape; NDS: from the colour alone (a margin of 50: softmax ~ one-hot)."""
    return 50.0 * np.eye(LEVELS)[colour] if role == "nds" else 4.0 * np.eye(LEVELS)[shape]


def write_pair_runs(
    root: Path, *, pixel_like_representation: bool = False, teacher_features: bool = True
) -> None:
    """Write the six runs (and, optionally, a colour-dominated ``representation.npz``) under ``root``."""
    rng = np.random.default_rng(0)
    twins = _twins()
    if pixel_like_representation:  # neighbours share the colour, never the shape: like raw pixels
        x = 3.0 * np.eye(LEVELS)[COLOUR] + 0.1 * rng.standard_normal((N, LEVELS))
        save_npz_atomic(root / "representation.npz", sample_id=np.arange(N), x=x)
    for role in ("teacher", "nds", "ds"):
        for seed in (0, 1):
            name = f"{role}_s{seed}" if role != "ds" else f"ds_kd_T2_a0.8_s{seed}"
            run = root / "runs" / name
            meta = {"role": role, "seed": seed} | ({"temperature": 2, "alpha": 0.8} if role == "ds" else {})
            write_json_atomic(run / "run.json", meta)
            arrays = {
                "sample_id": np.arange(N),
                "y_true": SHAPE,
                "logits": _logits(role, SHAPE, COLOUR),
                "attr_colour": COLOUR,
                "attr_texture": TEXTURE,
            }
            if role == "teacher" and teacher_features:
                arrays["features"] = 3.0 * np.eye(LEVELS)[SHAPE] + 0.1 * rng.standard_normal((N, LEVELS))
            save_npz_atomic(run / "predictions.npz", **arrays)
            source = twins["source"]
            save_counterfactual(
                run,
                sample_id=np.arange(N, N + len(source)),
                source_id=source,
                attribute=twins["attribute"],
                logits=_logits(role, SHAPE[source], twins["colour"]),
            )
