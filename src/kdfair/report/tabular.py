"""A small table model and its Markdown, LaTeX (booktabs) and CSV renderings.

Cell formatting (docs/report.md, "Number formatting"):
  - ``Stat(mean, std)``: ``"71.23 ± 0.45"`` (``decimals`` places, default 2); ``"71.23"`` when the std is
    undefined (one seed); ``"n/a"`` when the mean is undefined. LaTeX writes ``71.23 $\\pm$ 0.45``.
  - ``None``: ``"-"`` (the quantity does not apply, e.g. #SC of the teacher).
  - ``int`` and ``str``: as they are.
The CSV rendering is machine-readable: a column holding ``Stat`` cells becomes two numeric columns
``"<name> mean"`` and ``"<name> std"`` at full precision, in the same units as the displayed numbers; a
column with a marked ``Stat`` (``mark``, e.g. ``†`` for a degenerate condition's fairness number, appended
to the text after a space) also gets ``"<name> mark"``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

MISSING = "-"
UNDEFINED = "n/a"


@dataclass(frozen=True)
class Stat:
    """A mean ± std over seeds, already in display units (e.g. percent)."""

    mean: float
    std: float
    decimals: int = 2
    mark: str = ""  # e.g. "†": a degenerate condition's fairness number (kdfair.report.health)

    def text(self, pm: str = "±") -> str:
        suffix = f" {self.mark}" if self.mark else ""
        if not math.isfinite(self.mean):
            return UNDEFINED + suffix
        if not math.isfinite(self.std):
            return f"{self.mean:.{self.decimals}f}{suffix}"
        return f"{self.mean:.{self.decimals}f} {pm} {self.std:.{self.decimals}f}{suffix}"


Cell = Stat | int | str | None


@dataclass
class Table:
    """One report table: ``name`` is the file stem; ``breaks`` are row indices preceded by a rule."""

    name: str
    title: str
    caption: str
    columns: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    breaks: list[int] = field(default_factory=list)
    n_label_columns: int = 1


def cell_text(cell: Cell, pm: str = "±") -> str:
    """The displayed text of one cell (module docstring)."""
    if cell is None:
        return MISSING
    if isinstance(cell, Stat):
        return cell.text(pm)
    return str(cell)


def signed(value: float, decimals: int = 2) -> str:
    """A change with an explicit sign, e.g. ``"+1.23"``; ``"n/a"`` when undefined."""
    return f"{value:+.{decimals}f}" if math.isfinite(value) else UNDEFINED


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table with a bold title, the caption and the notes."""
    align = ["---" if i < table.n_label_columns else "---:" for i in range(len(table.columns))]
    lines = [f"**{table.title}.** {table.caption}", ""]
    lines.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
    lines.append("| " + " | ".join(align) + " |")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_escape(cell_text(c)) for c in row) + " |")
    lines.append("")
    lines.extend(f"_Note:_ {note}  " for note in table.notes)
    return "\n".join(lines).rstrip() + "\n"


_LATEX_CHARS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "α": r"$\alpha$",
    "Δ": r"$\Delta$",
    "→": r"$\rightarrow$",
    "≤": r"$\leq$",
    "†": r"$^\dagger$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (and the few Unicode symbols the report uses)."""
    return "".join(_LATEX_CHARS.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment (``\\toprule``, ``\\midrule``, ``\\bottomrule``); needs "
    "``booktabs``."""
    spec = "".join("l" if i < table.n_label_columns else "r" for i in range(len(table.columns)))
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{\textbf{{{latex_escape(table.title)}.}} {latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.name}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    for index, row in enumerate(table.rows):
        if index in table.breaks and index > 0:
            lines.append(r"\midrule")
        lines.append(" & ".join(latex_escape(cell_text(c)) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\smallskip{\footnotesize " + latex_escape(" ".join(table.notes)) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Machine-readable CSV: Stat columns split into ``<name> mean`` and ``<name> std`` (module docstring)."""
    stat_columns = {i for row in table.rows for i, cell in enumerate(row) if isinstance(cell, Stat)}
    marked = {i for row in table.rows for i, cell in enumerate(row) if isinstance(cell, Stat) and cell.mark}
    header: list[str] = []
    for i, name in enumerate(table.columns):
        header += [f"{name} mean", f"{name} std"] if i in stat_columns else [name]
        header += [f"{name} mark"] if i in marked else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        out: list[object] = []
        for i, cell in enumerate(row):
            if i in stat_columns:
                out += [repr(cell.mean), repr(cell.std)] if isinstance(cell, Stat) else ["", ""]
            else:
                out.append("" if cell is None else cell)
            if i in marked:
                out.append(cell.mark if isinstance(cell, Stat) else "")
        writer.writerow(out)
    return buffer.getvalue()
