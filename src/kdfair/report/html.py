"""One self-contained HTML5 page: settings, warnings, tables and figures (PNG as base64 data URIs).

The page references nothing outside itself: no external CSS, JS, fonts or images; links are in-page anchors.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime, timezone
from typing import Any

from kdfair.report.figstyle import Figure
from kdfair.report.health import health_html
from kdfair.report.load import AuditData
from kdfair.report.tables import model_names
from kdfair.report.tabular import Table, cell_text

CSS = """
:root { --fg: #1d1d1f; --muted: #5b5b66; --line: #d8d8de; --accent: #0072B2; --bg-alt: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: var(--fg); background: #fff; }
header { padding: 1.4rem 2rem; background: var(--bg-alt); border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 .3rem; font-size: 1.6rem; }
header p { margin: 0; color: var(--muted); }
nav { padding: .6rem 2rem; border-bottom: 1px solid var(--line); font-size: .9rem; }
nav a { color: var(--accent); margin-right: 1rem; text-decoration: none; }
main { max-width: 1400px; margin: 0 auto; padding: 1rem 2rem 3rem; }
h2 { border-bottom: 2px solid var(--accent); padding-bottom: .2rem; margin-top: 2.2rem; }
section.table, figure { margin: 1.4rem 0 2rem; }
.caption { color: var(--muted); margin: .2rem 0 .6rem; }
.scroll { overflow-x: auto; }
table.data { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: .88rem; }
table.data th, table.data td { padding: .3rem .7rem; border-bottom: 1px solid var(--line);
white-space: nowrap; }
table.data thead th { border-bottom: 2px solid var(--fg); text-align: left; }
table.data td.num, table.data th.num { text-align: right; }
table.data tr.break td { border-top: 1.5px solid var(--fg); }
table.data tbody tr:nth-child(even) { background: var(--bg-alt); }
table.kv th { text-align: left; padding-right: 1.2rem; color: var(--muted); font-weight: 600;
vertical-align: top; }
table.kv td { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
.note { font-size: .85rem; color: var(--muted); margin: .2rem 0; }
.warnings { background: #fff6e5; border-left: 4px solid #E69F00; padding: .6rem 1rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); max-width: 1000px; }
figcaption strong { color: var(--fg); }
details pre { max-height: 20rem; overflow: auto; background: var(--bg-alt); padding: .5rem; }
summary { cursor: pointer; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _value_html(value: Any) -> str:
    """A setting's value; long nested values are folded into a <details> element."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= 160:
        return _e(text)
    pretty = json.dumps(value, indent=2, default=str) if not isinstance(value, str) else value
    return f"<details><summary>{_e(text[:80])} &hellip;</summary><pre>{_e(pretty)}</pre></details>"


FIRST_SETTINGS = ("epochs", "device")  # shown first among the settings shared by every run
SETTINGS_KEYS = ("dataset", "models", "common", "by_condition")  # audit.json "settings" (kdfair audit)


def models_text(audit: AuditData, models: dict[str, Any]) -> str:
    """Which model each role used, e.g. ``resnet20 (Teacher); lenet5 (NDS, 10 DS conditions)``."""
    by_model: dict[str, list[str]] = {}
    for cond in audit.conditions:
        if models.get(cond.id):
            by_model.setdefault(str(models[cond.id]), []).append(cond.role)
    parts = []
    for model, roles in by_model.items():
        n_ds = roles.count("ds")
        who = [{"teacher": "Teacher", "nds": "NDS"}.get(r, r) for r in dict.fromkeys(roles) if r != "ds"]
        who += [f"{n_ds} DS condition{'s' if n_ds > 1 else ''}"] if n_ds else []
        parts.append(f"{model} ({', '.join(who)})")
    return "; ".join(parts)


def _varying_html(audit: AuditData, by_condition: dict[str, Any], keys: list[str]) -> str:
    """The run settings that differ between conditions, one row per condition, folded."""
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    rows = "".join(
        f"<tr><td>{_e(c.label)}</td>"
        + "".join(f"<td>{_value_html((by_condition.get(c.id) or {}).get(k, '-'))}</td>" for k in keys)
        + "</tr>"
        for c in audit.conditions
    )
    return (
        f'<details><summary>{_e(", ".join(keys))}</summary><div class="scroll"><table class="data">'
        f"<thead><tr><th>condition</th>{head}</tr></thead><tbody>{rows}</tbody></table></div></details>"
    )


def run_settings(audit: AuditData) -> list[tuple[str, str]]:
    """(name, value HTML) rows of audit.json ``settings`` in the shape ``kdfair audit`` writes: ``dataset``,
    ``models`` by condition id, ``common`` run settings, ``by_condition`` run settings; other keys as is."""
    settings = audit.meta.get("settings") or {}
    rows: list[tuple[str, str]] = []
    if settings.get("dataset") is not None:
        rows.append(("data set", _value_html(settings["dataset"])))
    if isinstance(settings.get("models"), dict) and settings["models"]:
        rows.append(("models", _e(models_text(audit, settings["models"]))))
    common = settings.get("common") if isinstance(settings.get("common"), dict) else {}
    order = [k for k in FIRST_SETTINGS if k in common] + [k for k in common if k not in FIRST_SETTINGS]
    rows += [(k, _value_html(common[k])) for k in order]
    by_condition = settings.get("by_condition") if isinstance(settings.get("by_condition"), dict) else {}
    varying = list(dict.fromkeys(k for s in by_condition.values() for k in s if k not in common))
    if varying:
        rows.append(("settings per condition", _varying_html(audit, by_condition, varying)))
    rows += [(k, _value_html(v)) for k, v in settings.items() if k not in SETTINGS_KEYS]
    return rows


def subtitle(audit: AuditData) -> str:
    """The page's one-line summary: data set, teacher -> student, epochs, device."""
    settings = audit.meta.get("settings") or {}
    common = settings.get("common") if isinstance(settings.get("common"), dict) else {}
    teacher, student = model_names(audit)
    parts = [str(settings["dataset"])] if isinstance(settings.get("dataset"), str) else []
    if isinstance(settings.get("models"), dict) and settings["models"]:
        models = [m for m, role in ((teacher, "teacher"), (student, "")) if role == "" or audit.by_role(role)]
        parts.append(" → ".join(models))
    parts += [f"{common['epochs']} epochs"] if "epochs" in common else []
    parts += [str(common["device"])] if "device" in common else []
    return " · ".join(parts)


def settings_html(audit: AuditData) -> str:
    """The run settings (data, models, epochs, device, ...), the audit's own settings and the conditions."""
    meta = audit.meta
    overview = {
        "audit folder": str(audit.root),
        "runs folder": meta.get("runs_dir", ""),
        "runs": meta.get("n_runs", ""),
        "classes": audit.n_classes,
        "protected attributes": ", ".join(
            f"{k} ({', '.join(map(str, v))})" for k, v in (meta.get("attributes") or {}).items()
        )
        or "none",
        "significance level": audit.level,
        "individual fairness": meta.get("individual_fairness", {}),
        "kdfair version": meta.get("kdfair_version", ""),
    }
    items = run_settings(audit) + [(k, _value_html(v)) for k, v in overview.items()]
    rows = [f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in items]
    conds = "".join(
        f"<tr><td>{_e(c.label)}</td><td>{_e(c.id)}</td><td>{_e(c.method)}</td>"
        f'<td class="num">{_e(f"{c.temperature:g}" if c.temperature is not None else "-")}</td>'
        f'<td class="num">{_e(f"{c.alpha:g}" if c.alpha is not None else "-")}</td>'
        f"<td>{_e(', '.join(str(s) for s in c.seeds))}</td></tr>"
        for c in audit.conditions
    )
    return (
        '<table class="kv">' + "".join(rows) + "</table>\n<h3>Conditions</h3>\n"
        '<div class="scroll"><table class="data"><thead><tr><th>label</th><th>id</th><th>method</th>'
        '<th class="num">T</th><th class="num">α</th><th>seeds</th></tr></thead><tbody>'
        + conds
        + "</tbody></table></div>"
    )


def table_html(table: Table) -> str:
    """One table with its caption and notes."""

    def cls(i: int) -> str:
        return "" if i < table.n_label_columns else ' class="num"'

    head = "".join(f"<th{cls(i)}>{_e(c)}</th>" for i, c in enumerate(table.columns))
    body = []
    for r, row in enumerate(table.rows):
        tr = '<tr class="break">' if r in table.breaks else "<tr>"
        body.append(tr + "".join(f"<td{cls(i)}>{_e(cell_text(c))}</td>" for i, c in enumerate(row)) + "</tr>")
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in table.notes)
    return (
        f'<section class="table" id="{_e(table.name)}"><h3>{_e(table.title)}</h3>'
        f'<p class="caption">{_e(table.caption)}</p><div class="scroll"><table class="data"><thead><tr>{head}'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>{notes}</section>"
    )


def figure_html(figure: Figure) -> str:
    """One figure as an embedded PNG data URI with a caption."""
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    return (
        f'<figure id="{_e(figure.name)}"><img src="data:image/png;base64,{data}" alt="{_e(figure.title)}">'
        f"<figcaption><strong>{_e(figure.title)}.</strong> {_e(figure.caption)}</figcaption></figure>"
    )


def render_page(audit: AuditData, tables: list[Table], figures: list[Figure], omitted: list[str]) -> str:
    """The whole page as a string (valid HTML5, no external references)."""
    warnings = audit.warnings
    warn_html = (
        '<div class="warnings"><ul>' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul></div>"
        if warnings
        else "<p>The audit raised no warnings.</p>"
    )
    omitted_html = (
        "<h3>Left out of this report</h3><ul>" + "".join(f"<li>{_e(o)}</li>" for o in omitted) + "</ul>"
        if omitted
        else ""
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [subtitle(audit), f"{audit.meta.get('n_runs', '?')} runs", f"generated {stamp}"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kdfair report</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>kdfair report: what distillation did to class-wise bias and fairness</h1>
<p>{" &middot; ".join(_e(p) for p in header if p)}</p></header>
<nav><a href="#settings">Settings</a><a href="#warnings">Warnings</a><a
href="#figures">Figures</a><a href="#tables">Tables</a></nav>
<main>
<section id="settings"><h2>Run settings</h2>
{settings_html(audit)}
</section>
<section id="warnings"><h2>Warnings</h2>
{health_html(audit)}
<p class="caption">Quantities the audit could not define (e.g. rates with an empty denominator,
Welch tests with zero
variance in both groups) and left out.</p>
{warn_html}
{omitted_html}
</section>
<section id="figures"><h2>Figures</h2>
{"".join(figure_html(f) for f in figures)}
</section>
<section id="tables"><h2>Tables</h2>
{"".join(table_html(t) for t in tables)}
</section>
</main>
</body>
</html>
"""
