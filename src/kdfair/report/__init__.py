"""``kdfair report``: an audit folder -> Markdown/LaTeX/CSV tables, PNG/SVG figures and one HTML page.

Public entry point: :func:`build_report`. Layout of the output folder (docs/report.md):

    index.html          the self-contained page (figures embedded as base64 PNG)
    tables.md           every table in Markdown, in report order
    tables/<name>.md|.tex|.csv
    figures/<name>.png|.svg
"""

from __future__ import annotations

from pathlib import Path

from kdfair.errors import KdfairError
from kdfair.io import write_text_atomic
from kdfair.report.all_tables import build_tables
from kdfair.report.figures import TOP_K_CLASSES, build_figures
from kdfair.report.html import render_page
from kdfair.report.load import AuditData, load_audit
from kdfair.report.source import Log, resolve_audit_dir
from kdfair.report.tabular import Table, to_csv, to_latex, to_markdown

__all__ = ["build_report", "load_audit", "resolve_audit_dir", "write_tables"]


def write_tables(tables: list[Table], out_dir: Path, omitted: list[str]) -> None:
    """Write each table as ``tables/<name>.md|.tex|.csv`` and all of them into ``tables.md``."""
    for table in tables:
        write_text_atomic(out_dir / "tables" / f"{table.name}.md", to_markdown(table))
        write_text_atomic(out_dir / "tables" / f"{table.name}.tex", to_latex(table))
        write_text_atomic(out_dir / "tables" / f"{table.name}.csv", to_csv(table))
    parts = ["# kdfair report: tables", ""] + [to_markdown(t) for t in tables]
    parts += ["## Omitted", ""] + [f"- {note}" for note in omitted] if omitted else []
    write_text_atomic(out_dir / "tables.md", "\n".join(parts) + "\n")


def check_output_folder(out: Path) -> None:
    """Raise :class:`KdfairError` when ``out``, or the nearest of its parents that exists, is not a folder
    (the report could not be written there), before any work is done."""
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        what = "exists and is a file" if existing == out else f"{existing} is a file"
        raise KdfairError(f"--out {out}: {what}, not a folder; give a new or an existing folder")


def build_report(
    audit_or_runs_dir: str | Path,
    out_dir: str | Path,
    *,
    top_k: int = TOP_K_CLASSES,
    figures: bool = True,
    log: Log | None = None,
    skip_incomplete: bool = False,
) -> Path:
    """Render the report of an audit folder, or of a runs folder, into ``out_dir``.

    A runs folder's ``<runs_dir>/audit`` is reused when up to date, else (re)written first
    (:mod:`kdfair.report.source`); ``log`` gets one line saying which (default: stderr).
    ``skip_incomplete``: skip the runs folder's incomplete run folders by name instead of failing. Writes
    tables (Markdown, LaTeX, CSV), figures (PNG, SVG) and ``index.html``; returns the path of ``index.html``.
    ``top_k``: how many classes the class-wise figure shows when there are more (SPEC §8).
    ``figures=False`` skips the figures (tables and page only, fast). Raises :class:`KdfairError` when
    ``out_dir`` (or a folder above it) exists and is not a folder, or when ``top_k`` < 1.
    """
    out = Path(out_dir)
    check_output_folder(out)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise KdfairError(f"--top-k must be an integer >= 1, got {top_k!r}")
    audit: AuditData = load_audit(resolve_audit_dir(audit_or_runs_dir, log, skip_incomplete=skip_incomplete))
    tables, omitted_tables = build_tables(audit)
    write_tables(tables, out, omitted_tables)
    rendered, omitted_figures = build_figures(audit, out / "figures", top_k=top_k) if figures else ([], [])
    index = out / "index.html"
    write_text_atomic(index, render_page(audit, tables, rendered, omitted_tables + omitted_figures))
    return index
