"""The HTML page: structurally valid HTML5, every figure embedded, nothing external, settings and
warnings shown;
optionally rendered by a headless chromium when one is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class StructureChecker(HTMLParser):
    """Records doctype, tag balance errors, ids and every src/href value."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype, self.stack, self.errors, self.ids, self.refs, self.counts = None, [], [], [], [], {}

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.append(attributes["id"])
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
        else:
            self.stack.pop()


def check(text: str) -> StructureChecker:
    checker = StructureChecker()
    checker.feed(text)
    checker.close()
    return checker


def test_html_is_valid_structure(small):
    _, index = small
    text = index.read_text(encoding="utf-8")
    checker = check(text)
    assert text.startswith("<!DOCTYPE html>") and checker.doctype.lower() == "doctype html"
    assert checker.errors == [] and checker.stack == []
    assert (
        checker.counts["html"]
        == checker.counts["head"]
        == checker.counts["body"]
        == checker.counts["title"]
        == 1
    )
    assert len(checker.ids) == len(set(checker.ids))


def test_checker_catches_unbalanced_tags():
    assert check("<!DOCTYPE html><html><body><div><p>x</div></body></html>").errors


def test_every_figure_embedded_and_nothing_external(small):
    _, index = small
    text = index.read_text(encoding="utf-8")
    pngs = sorted((index.parent / "figures").glob("*.png"))
    svgs = sorted((index.parent / "figures").glob("*.svg"))
    assert len(pngs) == len(svgs) == 6
    assert text.count('src="data:image/png;base64,') == len(pngs)
    refs = check(text).refs
    assert [r for r in refs if not (r.startswith("data:") or r.startswith("#"))] == []
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", text)
    assert "<link" not in text and "<script" not in text and "url(" not in text
    ids = set(check(text).ids)
    assert all(r[1:] in ids for r in refs if r.startswith("#"))


def test_settings_warnings_and_captions(small):
    _, index = small
    text = index.read_text(encoding="utf-8")
    assert "resnet56" in text and "cifar10" in text and "ds_kd_T4_a0.8" in text
    assert "class 7: Welch test undefined (zero variance in both groups)" in text
    assert "group &lt;b&gt;: no positives &amp; left out" in text  # escaped, not markup
    assert text.count("<figcaption>") == 6 and "72.00 ± 2.00" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_chromium_renders_the_page(small, tmp_path: Path):
    _, index = small
    shot = tmp_path / "shot.png"
    cmd = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
        index.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
