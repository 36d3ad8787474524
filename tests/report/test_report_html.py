"""The HTML page: valid HTML5 (html5lib, strict), every figure embedded, nothing external, settings and
warnings shown; rendered by headless Chromium (Debian's ``chromium``, when installed), the screenshot shows
the figures."""

from __future__ import annotations

import re
from pathlib import Path

import chromium
import html5lib
import pytest


def parse(text: str):
    """Parse ``text`` as HTML5 with html5lib in strict mode: any parse error raises ``ParseError``."""
    return html5lib.HTMLParser(
        strict=True, tree=html5lib.getTreeBuilder("etree"), namespaceHTMLElements=False
    ).parse(text)


def ids_and_refs(text: str) -> tuple[list[str], list[str]]:
    """Every id, and every src/href value, of the parsed page."""
    elements = list(parse(text).iter())
    ids = [e.get("id") for e in elements if e.get("id") is not None]
    refs = [e.get(k) for e in elements for k in ("src", "href") if e.get(k) is not None]
    return ids, refs


def test_html_is_valid_html5(small):
    _, index = small
    text = index.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>\n")
    root = parse(text)  # strict: a parse error fails the test
    assert [e.tag for e in root] == ["head", "body"]
    assert [len(root.findall(f".//{tag}")) for tag in ("title", "main", "header")] == [1, 1, 1]
    ids, _ = ids_and_refs(text)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "broken",
    [
        "<!DOCTYPE html><html><head><title>t</title></head><body><div>x</body></html>",  # unclosed div
        "<!DOCTYPE html><html><head><title>t</title></head><body><p>x</span></p></body></html>",  # stray end
        "<html><head><title>t</title></head><body>x</body></html>",  # no doctype
    ],
)
def test_strict_parser_rejects_broken_pages(broken):
    with pytest.raises(html5lib.html5parser.ParseError):
        parse(broken)


def test_every_figure_embedded_and_nothing_external(small):
    _, index = small
    text = index.read_text(encoding="utf-8")
    pngs = sorted((index.parent / "figures").glob("*.png"))
    svgs = sorted((index.parent / "figures").glob("*.svg"))
    assert len(pngs) == len(svgs) == 6
    assert text.count('src="data:image/png;base64,') == len(pngs)
    ids, refs = ids_and_refs(text)
    assert [r for r in refs if not (r.startswith("data:") or r.startswith("#"))] == []
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", text)
    assert "<link" not in text and "<script" not in text and "url(" not in text
    assert all(r[1:] in ids for r in refs if r.startswith("#"))


def test_settings_warnings_and_captions(small):
    _, index = small
    text = index.read_text(encoding="utf-8")
    assert "resnet56" in text and "cifar10" in text and "ds_kd_T4_a0.8" in text
    assert "class 7: Welch test undefined (zero variance in both groups)" in text
    assert "group &lt;b&gt;: no positives &amp; left out" in text  # escaped, not markup
    assert text.count("<figcaption>") == 6 and "72.00 ± 2.00" in text


FIGURE_ONLY = ["#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#440154", "#FDE725"]  # never in the page's CSS


@pytest.mark.skipif(chromium.CHROMIUM is None, reason="chromium is not installed")
def test_chromium_renders_the_figures(small, tmp_path: Path):
    """The screenshot shows the figures: many pixels in the figures' palette (Okabe-Ito bars and lines,
    viridis heat maps), which the same page with its images blanked out does not have."""
    _, index = small
    text = index.read_text(encoding="utf-8")
    blank = tmp_path / "blank.html"
    blank.write_text(re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', text), encoding="utf-8")
    shots = {}
    for name, page in (("page", index), ("blank", blank)):
        rgb = chromium.pixels(chromium.screenshot(page, tmp_path / f"{name}.png", 1200, 6000))
        assert rgb.shape == (6000, 1200, 3)
        shots[name] = chromium.colour_counts(rgb)
    page, blank = shots["page"], shots["blank"]
    assert sum(page[c] for c in FIGURE_ONLY) > 50_000  # about 90,000 with the six figures
    assert sum(blank[c] for c in FIGURE_ONLY) < 500
    assert all(page[c] > 1_000 for c in ("#56B4E9", "#D55E00", "#440154"))  # histogram, bars, heat map
    assert page["#0072B2"] > 5 * blank["#0072B2"]  # the figures' blue lines, beyond the headings' rules
