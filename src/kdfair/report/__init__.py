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
from kdfair.report.figures import TOP_K_CLASSES, build_figures
from kdfair.report.html import render_page
from kdfair.report.load import AUDIT_JSON, AuditData, load_audit
from kdfair.report.tables_bird import build_tables
from kdfair.report.tabular import Table, to_csv, to_latex, to_markdown

__all__ = ["build_report", "load_audit", "resolve_audit_dir", "write_tables"]


def resolve_audit_dir(audit_or_runs_dir: str | Path) -> Path:
    """The audit folder to report: the folder itself when it holds ``audit.json``; for a runs folder (run
    folders with ``run.json`` below it) run the audit first into ``<runs_dir>/audit`` and return that."""
    root = Path(audit_or_runs_dir)
    if (root / AUDIT_JSON).is_file():
        return root
    if not root.is_dir():
        raise KdfairError(f"{root}: no such folder")
    if not any(root.rglob("run.json")):
        raise KdfairError(
            f"{root}: neither an audit folder (no {AUDIT_JSON}) nor a runs folder (no run.json)"
        )
    try:
        from kdfair.audit.engine import audit_runs, write_audit
    except ImportError as exc:  # the audit engine is a separate module
        raise KdfairError(
            f"{root}: a runs folder needs the audit engine (kdfair.audit.engine): {exc}"
        ) from exc
    audit_dir = root / "audit"
    write_audit(audit_runs(root), audit_dir)
    return audit_dir


def write_tables(tables: list[Table], out_dir: Path, omitted: list[str]) -> None:
    """Write each table as ``tables/<name>.md|.tex|.csv`` and all of them into ``tables.md``."""
    for table in tables:
        write_text_atomic(out_dir / "tables" / f"{table.name}.md", to_markdown(table))
        write_text_atomic(out_dir / "tables" / f"{table.name}.tex", to_latex(table))
        write_text_atomic(out_dir / "tables" / f"{table.name}.csv", to_csv(table))
    parts = ["# kdfair report: tables", ""] + [to_markdown(t) for t in tables]
    parts += ["## Omitted", ""] + [f"- {note}" for note in omitted] if omitted else []
    write_text_atomic(out_dir / "tables.md", "\n".join(parts) + "\n")


def build_report(
    audit_or_runs_dir: str | Path, out_dir: str | Path, *, top_k: int = TOP_K_CLASSES, figures: bool = True
) -> Path:
    """Render the report of an audit folder (or of a runs folder, audited first) into ``out_dir``.

    Writes tables (Markdown, LaTeX, CSV), figures (PNG, SVG) and ``index.html``; returns the path of
    ``index.html``. ``top_k``: how many classes the class-wise figure shows when there are more (SPEC §8).
    ``figures=False`` skips the figures (tables and page only, fast).
    """
    audit: AuditData = load_audit(resolve_audit_dir(audit_or_runs_dir))
    out = Path(out_dir)
    tables, omitted_tables = build_tables(audit)
    write_tables(tables, out, omitted_tables)
    rendered, omitted_figures = build_figures(audit, out / "figures", top_k=top_k) if figures else ([], [])
    index = out / "index.html"
    write_text_atomic(index, render_page(audit, tables, rendered, omitted_tables + omitted_figures))
    return index
