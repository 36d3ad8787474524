"""Headless Chromium screenshots of a report page, and what they show (for the HTML test and for
``docs/img/report_screenshot.png``).

``python tests/report/chromium.py PAGE.html OUT.png [--width 1280]`` writes a full-page screenshot: the page
is shot in a tall window and the empty background below it is cropped off.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = shutil.which("chromium")
# The figures' palette (kdfair.report.figstyle.OKABE_ITO, without black) and viridis' ends: the page's own CSS
# uses only #0072B2 (headings, links) and #E69F00 (the warnings' border) of these, in thin lines.
FIGURE_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#440154", "#FDE725"]
TOLERANCE = 24  # per channel, 0-255: antialiasing and the PNG's colour rounding


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 1600) -> Path:
    """Render ``page`` in headless Chromium into ``png`` (``width`` x ``height`` CSS pixels)."""
    with tempfile.TemporaryDirectory(prefix="kdfair-chromium-") as profile:
        cmd = [
            CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
            f"--window-size={width},{height}", page.resolve().as_uri(),
        ]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    return png


def pixels(png: Path) -> np.ndarray:
    """The screenshot as an (H, W, 3) uint8 array."""
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"))


def colour_counts(rgb: np.ndarray, colours: list[str] = FIGURE_COLOURS) -> dict[str, int]:
    """How many pixels lie within ``TOLERANCE`` of each colour."""
    flat = rgb.reshape(-1, 3).astype(np.int16)
    counts = {}
    for colour in colours:
        target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
        counts[colour] = int((np.abs(flat - target).max(axis=1) <= TOLERANCE).sum())
    return counts


def content_height(rgb: np.ndarray, background: int = 250) -> int:
    """The number of rows down to the last one that is not all background (white)."""
    busy = np.flatnonzero((rgb < background).any(axis=(1, 2)))
    return int(busy[-1]) + 1 if len(busy) else 0


def full_page(page: Path, png: Path, width: int = 1280, max_height: int = 16000) -> Path:
    """A full-page screenshot: shot ``max_height`` tall, cropped below the content (8 px margin), saved as an
    adaptive 256-colour PNG to stay small."""
    screenshot(page, png, width, max_height)
    rgb = pixels(png)
    height = min(len(rgb), content_height(rgb) + 8)
    image = Image.fromarray(rgb[:height]).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=0)
    image.save(png, optimize=True)
    return png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    png = full_page(args.page, args.out, args.width)
    print(f"{png}: {pixels(png).shape[1]} x {pixels(png).shape[0]} px, {png.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
