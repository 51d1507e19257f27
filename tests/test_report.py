"""The HTML report: self-contained, complete, and rendered by a real browser (Debian's chromium)."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from lenprof.checks import DROP_REASONS, REPAIR_REASONS, WARNING_REASONS
from lenprof.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(
        main, ["scan", str(EXAMPLES), "--report", str(path), "--format", "args"], catch_exceptions=False
    )
    assert result.exit_code == 0 and f"lenprof: report written to {path}\n" in result.stderr
    return path


def test_report_is_self_contained(report):
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched from anywhere
    assert "<script" not in html and "@font-face" not in html and "url(" not in html
    assert html.count('<img alt="') == 4  # query, pos, neg, passage
    assert html.count('src="data:image/svg+xml;base64,') == 4


def test_report_says_what_was_found_and_how(report):
    html = report.read_text(encoding="utf-8")
    assert "<code>--query_max_len 40 --passage_max_len 152</code>" in html
    for reason in DROP_REASONS + REPAIR_REASONS + WARNING_REASONS:
        assert f"<code>{reason}</code>" in html
    assert "<code>examples/dirty.jsonl:12</code> invalid byte 0xe9 at byte 15" in html.replace(
        str(EXAMPLES), "examples"
    )
    assert "sentence-transformers/all-MiniLM-L6-v2" in html and "&quot;multiple_of&quot;" not in html
    assert '"min_neg": 1' in html.replace("&quot;", '"')


@pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("CI"), reason="chromium is not installed (CI installs it)"
)
def test_report_renders_in_chromium(report, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "CI must install chromium (.ci/run does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: errors.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto(report.as_uri())
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        shot = page.screenshot(full_page=True)
        browser.close()
    assert errors == []
    assert len(images) == 4 and all(ok and w > 500 and h > 100 for ok, w, h in images)
    assert len(shot) > 50_000
