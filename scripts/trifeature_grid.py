"""Regenerate docs/img/trifeature_grid.png: a 10 x 10 grid of Trifeature samples (SPEC §7).

Row = shape, column = texture, colour = (row + column) mod 10, so every shape, texture and colour appears ten
times; poses are drawn with the seed. Run from the repository root:

    .venv/bin/python scripts/trifeature_grid.py [--size 64] [--seed 0] [--out docs/img/trifeature_grid.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from kdfair.data.trifeature import COLOURS, SHAPES, TEXTURES, TrifeatureOptions, draw_pose, render_all


def grid_image(size: int, seed: int) -> np.ndarray:
    """The grid as uint8 (10 * size, 10 * size, 3); tile (r, c): shape r, texture c, colour (r + c) % 10."""
    rows, cols = np.divmod(np.arange(len(SHAPES) * len(TEXTURES)), len(TEXTURES))
    params = draw_pose(rows, cols, (rows + cols) % len(COLOURS), np.random.default_rng(seed))
    tiles = render_all(params, TrifeatureOptions(image_size=size, use_cache=False))
    tiles = tiles.reshape(len(SHAPES), len(TEXTURES), size, size, 3)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(len(SHAPES) * size, len(TEXTURES) * size, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="side of one sample in px (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="pose seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("docs/img/trifeature_grid.png"), help="output PNG")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid_image(args.size, args.seed)).save(args.out)
    print(f"wrote {args.out} ({10 * args.size} x {10 * args.size} px)")


if __name__ == "__main__":
    main()
