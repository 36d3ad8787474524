"""Shared figure style: Agg backend, a colour-blind-safe palette (Okabe-Ito) with distinct markers and line
styles so lines stay apart in greyscale, temperature axes, and saving PNG + SVG atomically."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure as MplFigure  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from kdfair.io import write_bytes_atomic  # noqa: E402

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
TEACHER_STYLE = {"color": "#000000", "linestyle": ":", "marker": "s"}
NDS_STYLE = {"color": "#D55E00", "linestyle": "--", "marker": "D"}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
LINESTYLES = ["-", "--", "-.", ":"]
HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "++", "--"]
PNG_DPI = 110
RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass
class Figure:
    """A rendered figure: files, a title and a plain-language caption; ``meta`` records what it shows."""

    name: str
    title: str
    caption: str
    png: Path
    svg: Path
    meta: dict[str, Any] = field(default_factory=dict)


def new_figure(
    ncols: int = 1, nrows: int = 1, width: float = 10.0, height: float = 4.0
) -> tuple[MplFigure, Any]:
    """A figure with the report's style applied."""
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def series_style(index: int, n: int) -> dict[str, Any]:
    """Colour, marker and line style of the ``index``-th of ``n`` series (viridis when n > 8)."""
    color = (
        OKABE_ITO[index % len(OKABE_ITO)]
        if n <= len(OKABE_ITO)
        else plt.get_cmap("viridis")(index / max(n - 1, 1))
    )
    return {
        "color": color,
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
    }


def temperature_axis(ax: Any, temperatures: list[float]) -> None:
    """A temperature x axis with a tick at each temperature; logarithmic when they span a factor >= 20."""
    temps = sorted(set(temperatures))
    if temps and temps[0] > 0 and temps[-1] / temps[0] >= 20:
        ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(temps))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in temps])
    ax.set_xlabel("distillation temperature T")


def save_figure(fig: MplFigure, out_dir: Path, name: str) -> tuple[Path, Path]:
    """Save ``fig`` as ``name.png`` (110 dpi) and ``name.svg`` in ``out_dir`` atomically; close it."""
    paths = (out_dir / f"{name}.png", out_dir / f"{name}.svg")
    for path, fmt in zip(paths, ("png", "svg"), strict=True):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata={"Date": None} if fmt == "svg" else None)
        write_bytes_atomic(path, buffer.getvalue())
        fig.set_layout_engine("none")  # the layout is fixed after the first save; don't solve it again
    plt.close(fig)
    return paths
