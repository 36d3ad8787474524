"""Vectorised drawing for Trifeature: the 10 shape masks and the 10 textures (SPEC §7).

Coordinates come in as broadcastable arrays ``x (B, 1, W)`` and ``y (B, H, 1)``; the result is a float32
``(B, H, W)`` array. Shapes live in units of the shape radius (the shape fits in the unit disc); textures in
units of the texture period. ``y`` points down the image; shapes are drawn with "up" pointing up.
"""

from __future__ import annotations

import math

import numpy as np

SHAPE_NAMES = [
    "triangle", "square", "plus", "circle", "tee", "rhombus", "pentagon", "star", "fivesquare", "trapezoid",
]  # fmt: skip
TEXTURE_NAMES = [
    "solid", "stripes", "grid", "hexgrid", "dots", "noise", "triangles", "zigzags", "rain", "pluses",
]  # fmt: skip
NOISE_CELLS_PER_PERIOD = 3  # noise texture: one random value per (period / 3)-sized cell
NOISE_TABLE = 32  # noise cells repeat every 32 cells (> the image at every size)


def _regular(n: int, radius: float, start_deg: float = 90.0) -> list[tuple[float, float]]:
    return [
        (radius * math.cos(math.radians(start_deg + 360.0 * k / n)),
         radius * math.sin(math.radians(start_deg + 360.0 * k / n)))
        for k in range(n)
    ]  # fmt: skip


def _star(outer: float, inner: float) -> list[tuple[float, float]]:
    pts = []
    for k in range(10):
        r = outer if k % 2 == 0 else inner
        a = math.radians(90.0 + 36.0 * k)
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _rect(x0: float, x1: float, y0: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _square_at(cx: float, cy: float, half: float) -> list[tuple[float, float]]:
    return _rect(cx - half, cx + half, cy - half, cy + half)


# Each shape is a union of polygons (vertices in shape-radius units, y up); the circle is handled apart.
SHAPE_POLYGONS: dict[str, list[list[tuple[float, float]]]] = {
    "triangle": [[(0.0, 0.95), (0.95, -0.7), (-0.95, -0.7)]],
    "square": [_rect(-0.72, 0.72, -0.72, 0.72)],
    "plus": [_rect(-0.3, 0.3, -0.95, 0.95), _rect(-0.95, 0.95, -0.3, 0.3)],
    "tee": [_rect(-0.95, 0.95, 0.4, 0.95), _rect(-0.3, 0.3, -0.95, 0.4)],
    "rhombus": [[(0.0, 1.0), (0.6, 0.0), (0.0, -1.0), (-0.6, 0.0)]],
    "pentagon": [_regular(5, 0.95)],
    "star": [_star(1.0, 0.42)],
    "fivesquare": [
        _square_at(cx, cy, 0.24)
        for cx, cy in ((0, 0), (0.62, 0.62), (-0.62, 0.62), (0.62, -0.62), (-0.62, -0.62))
    ],  # fmt: skip
    "trapezoid": [[(-0.95, -0.55), (0.95, -0.55), (0.5, 0.55), (-0.5, 0.55)]],
}
CIRCLE_RADIUS = 0.85


def _inside_polygon(u: np.ndarray, v: np.ndarray, vertices: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd rule: True where (u, v) lies inside the polygon (works for non-convex polygons)."""
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        if y1 == y2:
            continue
        crosses = (y1 > v) != (y2 > v)
        x_cross = x1 + (v - y1) * ((x2 - x1) / (y2 - y1))
        inside ^= crosses & (u < x_cross)
    return inside


def _rotate(x: np.ndarray, y: np.ndarray, angle_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in a frame rotated by ``angle_deg`` (counter-clockwise on screen), y pointing up."""
    a = np.radians(angle_deg).astype(np.float32)[:, None, None]
    cos, sin = np.cos(a), np.sin(a)
    up = -y
    return cos * x + sin * up, -sin * x + cos * up


def shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of shape ``name`` in shape coordinates (u right, v up, radius units)."""
    if name == "circle":
        return u * u + v * v <= CIRCLE_RADIUS**2
    mask = np.zeros(u.shape, dtype=bool)
    for polygon in SHAPE_POLYGONS[name]:
        mask |= _inside_polygon(u, v, polygon)
    return mask


def shape_masks(shape: np.ndarray, x: np.ndarray, y: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
    """Masks (B, H, W) in {0, 1}: image b shows ``SHAPE_NAMES[shape[b]]`` rotated by ``angle_deg[b]``."""
    u, v = _rotate(x, y, angle_deg)
    out = np.zeros(u.shape, dtype=np.float32)
    for index in np.unique(shape):
        rows = np.nonzero(shape == index)[0]
        out[rows] = shape_mask(SHAPE_NAMES[index], u[rows], v[rows])
    return out


def _hex_lines(s: np.ndarray, t: np.ndarray, width: float) -> np.ndarray:
    """Edges of a honeycomb with cell inner radius 0.5 (the usual two-lattice hexagon trick)."""
    ry = math.sqrt(3.0)
    ax, ay = np.mod(s, 1.0) - 0.5, np.mod(t, ry) - ry / 2
    bx, by = np.mod(s - 0.5, 1.0) - 0.5, np.mod(t - ry / 2, ry) - ry / 2
    use_a = ax * ax + ay * ay < bx * bx + by * by
    gx, gy = np.abs(np.where(use_a, ax, bx)), np.abs(np.where(use_a, ay, by))
    dist = np.maximum(gx * 0.5 + gy * (ry / 2), gx)
    return dist > 0.5 - width


def _noise(s: np.ndarray, t: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Blocky binary noise: cells of 1/3 period, each on with probability 0.7, from a per-image table."""
    cells = NOISE_CELLS_PER_PERIOD
    i = np.floor(s * cells).astype(np.int64) % NOISE_TABLE
    j = np.floor(t * cells).astype(np.int64) % NOISE_TABLE
    tables = np.stack(
        [np.random.default_rng(int(sd)).random((NOISE_TABLE, NOISE_TABLE)) < 0.7 for sd in seeds]
    )
    return tables[np.arange(len(seeds))[:, None, None], i, j]


def texture(name: str, s: np.ndarray, t: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Texture ``name`` in [0, 1] at texture coordinates (s, t), in periods."""
    fs, ft = np.mod(s, 1.0), np.mod(t, 1.0)
    if name == "solid":
        return np.ones(s.shape, dtype=bool)
    if name == "stripes":
        return fs < 0.5
    if name == "grid":
        return (fs < 0.25) | (ft < 0.25)
    if name == "hexgrid":
        return _hex_lines(s, t, 0.08)
    if name == "dots":
        return (fs - 0.5) ** 2 + (ft - 0.5) ** 2 < 0.25**2
    if name == "noise":
        return _noise(s, t, seeds)
    if name == "triangles":
        return (ft > 0.1) & (ft < 0.9) & (np.abs(fs - 0.5) < 0.4 * (0.9 - ft) / 0.8)
    if name == "zigzags":
        wave = np.abs(np.mod(s * 2.0, 2.0) - 1.0)  # triangle wave in [0, 1], period 1
        return np.mod(t - 0.5 * wave, 1.0) < 0.4
    if name == "rain":
        shifted = np.mod(s + 0.5 * np.floor(t), 1.0)  # staggered rows of slanted dashes
        return (np.abs(shifted - 0.5 + 0.3 * (ft - 0.5)) < 0.09) & (ft > 0.15) & (ft < 0.85)
    if name == "pluses":
        return ((np.abs(fs - 0.5) < 0.1) & (np.abs(ft - 0.5) < 0.35)) | (
            (np.abs(ft - 0.5) < 0.1) & (np.abs(fs - 0.5) < 0.35)
        )
    raise KeyError(f"unknown texture '{name}'; valid textures: {', '.join(TEXTURE_NAMES)}")


def texture_values(
    kind: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    angle_deg: np.ndarray,
    phase: np.ndarray,
    seeds: np.ndarray,
) -> np.ndarray:
    """Textures (B, H, W) in [0, 1]: image b gets ``TEXTURE_NAMES[kind[b]]`` rotated by ``angle_deg[b]``
    and shifted by ``phase[b]`` periods. ``x``, ``y`` are in periods."""
    s, t = _rotate(x, y, angle_deg)
    s = s + phase[:, 0, None, None].astype(np.float32)
    t = t + phase[:, 1, None, None].astype(np.float32)
    out = np.zeros(s.shape, dtype=np.float32)
    for index in np.unique(kind):
        rows = np.nonzero(kind == index)[0]
        out[rows] = texture(TEXTURE_NAMES[index], s[rows], t[rows], seeds[rows])
    return out
