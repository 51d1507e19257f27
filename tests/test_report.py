"""The HTML report: self-contained, complete, and rendered by a real browser (Debian's chromium)."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, write_lines

from lenprof.cli import main
from lenprof.rows.reasons import DROP_REASONS, REPAIR_REASONS, WARNING_REASONS

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
    assert "<code>--query_max_len 56 --passage_max_len 152</code>" in html
    for reason in DROP_REASONS + REPAIR_REASONS + WARNING_REASONS:
        assert f"<code>{reason}</code>" in html
    assert "<code>examples/dirty.jsonl:12</code> invalid byte 0xe9 at byte 15" in html.replace(
        str(EXAMPLES), "examples"
    )
    assert "sentence-transformers/all-MiniLM-L6-v2" in html and "&quot;multiple_of&quot;" not in html
    assert '"min_neg": 1' in html.replace("&quot;", '"')


needs_chromium = pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("CI"), reason="chromium is not installed (CI installs it)"
)


def _render(path, screenshot=None):
    """Open a report in Debian's chromium as a user would: errors, each image's state and
    drawn size, each figure's data, and a full-page screenshot (PNG bytes)."""
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
        page.goto(path.as_uri())
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.clientWidth])"
        )
        figures = page.evaluate(
            "Array.from(document.querySelectorAll('figure[data-figure]')).map(f => JSON.parse(f.dataset.figure))"
        )
        shot = page.screenshot(full_page=True, path=screenshot)
        browser.close()
    return errors, images, figures, shot


@needs_chromium
def test_report_renders_in_chromium(report):
    errors, images, _, shot = _render(report)
    assert errors == []
    assert len(images) == 4 and all(ok and w > 500 and h > 100 for ok, w, h, _ in images)
    assert len(shot) > 50_000


@needs_chromium
def test_long_tail_report_renders_in_chromium(outlier):
    """The report of the long-tailed corpus, as a browser draws it; LENPROF_SCREENSHOT=FILE keeps
    the screenshot (docs/report.png is made this way)."""
    report, profile = outlier
    errors, images, figures, shot = _render(report, os.environ.get("LENPROF_SCREENSHOT"))
    assert errors == []
    assert len(images) == 4 and all(ok and w > 500 and h > 100 and shown > 500 for ok, w, h, shown in images)
    assert all(shown == w for _, w, _, shown in images)  # drawn at its own size: 12 px of text are 12 px
    assert [f["field"] for f in figures] == ["query", "pos", "neg", "passage"]
    for f in figures:  # what the browser holds is what the profile says, and the bulk fills the axis
        assert f["longest"] == profile["fields"][f["field"]]["max"]
        assert f["percentiles"]["99"] / f["axis_end"] > 0.7
    assert len(shot) > 50_000


# --- a corpus with a long tail ------------------------------------------------------------------

WORDS = "the cat sat on a mat and dog ran far away from home".split()  # one token each


def _text(rng, n: int) -> str:
    return " ".join(rng.choice(WORDS, n))


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    """400 rows whose positives are longer than their negatives, and one negative of 19,000
    words: the scan's report and its JSON profile."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(400):
        neg = [_text(rng, int(rng.integers(10, 120))) for _ in range(3)]
        if i == 200:
            neg[1] = _text(rng, 19_000)
        row = {
            "query": f"q{i} " + _text(rng, int(rng.integers(3, 20))),
            "pos": [_text(rng, int(rng.integers(80, 300)))],
            "neg": neg,
        }
        rows.append(json.dumps(row).encode())
    folder = tmp_path_factory.mktemp("outlier")
    corpus = write_lines(folder / "tail.jsonl", rows)
    report, profile = folder / "report.html", folder / "profile.json"
    result = CliRunner().invoke(
        main,
        ["scan", str(corpus), "--report", str(report), "--out", str(profile), "-q"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return report, json.loads(profile.read_text())


class _Page(HTMLParser):
    """The figures' data and the cut tables' rows of a report."""

    def __init__(self):
        super().__init__()
        self.figures: dict[str, dict] = {}
        self.cuts: dict[str, dict[str, dict]] = {}
        self._table = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and "data-figure" in a:
            data = json.loads(a["data-figure"])
            self.figures[data["field"]] = data
        elif tag == "table" and a.get("class") == "cuts":
            self._table = self.cuts.setdefault(a["data-field"], {})
        elif tag == "tr" and "data-cut" in a and self._table is not None:
            self._table[a["data-cut"]] = {
                "max_len": int(a["data-max-len"]),
                "truncated": int(a["data-truncated"]),
            }

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


def _lengths(field: dict) -> np.ndarray:
    h = field["histogram"]
    return np.repeat(h["lengths"], h["counts"])


def test_every_figure_and_table_shows_its_own_fields_numbers(outlier):
    report, profile = outlier
    page = _Page()
    page.feed(report.read_text(encoding="utf-8"))
    cap = profile["recommendation"]["cap"]
    fields = profile["fields"]
    assert set(page.figures) == set(page.cuts) == {"query", "pos", "neg", "passage"}
    assert (
        fields["pos"]["percentiles"]["95"] != fields["passage"]["percentiles"]["95"]
    )  # the test can tell them apart
    for name, figure in page.figures.items():
        lengths = _lengths(fields[name])
        pcts = {p: int(np.percentile(lengths, float(p), method="inverted_cdf")) for p in ("90", "95", "99")}
        assert figure["percentiles"] == pcts == {p: fields[name]["percentiles"][p] for p in pcts}
        assert figure["longest"] == fields[name]["max"] == lengths.max()
        assert sum(n for _, n in figure["bars"]) + figure["overflow"] == fields[name]["count"] == len(lengths)
        assert figure["overflow"] == (lengths > figure["axis_max"]).sum()
        chosen = profile["recommendation"]["query_max_len" if name == "query" else "passage_max_len"]
        expected = {
            **{f"p{p}": min(v, cap) for p, v in pcts.items()},
            "max": min(lengths.max(), cap),
            "cap": cap,
            "recommended": chosen,
        }
        assert figure["cuts"] == expected
        table = page.cuts[name]
        assert {c: r["max_len"] for c, r in table.items()} == expected
        assert {c: r["truncated"] for c, r in table.items()} == {
            c: int((lengths > v).sum()) for c, v in expected.items()
        }


def test_figures_of_a_long_tail_spend_their_width_on_the_bulk(outlier):
    report, profile = outlier
    page = _Page()
    page.feed(report.read_text(encoding="utf-8"))
    for name in ("neg", "passage"):  # the 19,000-word negative is in both
        figure = page.figures[name]
        assert figure["longest"] > 19_000 and figure["overflow"] == 1
        assert figure["percentiles"]["99"] / figure["axis_end"] > 0.7  # p99 of the texts: most of the width
        assert figure["axis_end"] < 0.05 * figure["longest"]
    caption = (
        f"The axis runs to {figure['axis_max']} tokens (p99 of passage, or the recommended cut when near, and the "
        "texts within a quarter past it); the 1 longer "
        f"text is counted in the overflow bar at the right (the longest has {figure['longest']} tokens)."
    )
    assert f"<figcaption class=muted>{caption}</figcaption>" in report.read_text(encoding="utf-8")
    assert page.figures["query"]["overflow"] == 0  # no tail: the axis runs to the longest query


def _check_row(html: str, reason: str) -> str:
    return re.search(rf"<tr><td><code>{reason}</code></td>.*?</tr>", html).group(0)


def _not_run_line(html: str) -> str:
    return re.search(r"<p data-checks-not-run=\d+>.*?</p>", html).group(0)


def test_checks_say_exactly_what_happened(report, outlier):
    html = report.read_text(encoding="utf-8").replace(str(EXAMPLES), "examples")
    assert "<code>few_negatives</code> (needs --train-group-size)" in _not_run_line(html)
    assert "<tr><td><code>few_negatives</code>" not in html  # a check that did not run is no 0 in the table
    assert "examples/dirty.jsonl:8</code> same query and positives as line 1, which was kept" in html
    assert "examples/dirty.jsonl:2</code> 1 removed: &#x27;neg&#x27;[0] &quot;&quot;" in _check_row(
        html, "empty_neg"
    )
    tail, profile = outlier
    longest = profile["fields"]["neg"]["max"]
    over = _check_row(tail.read_text(encoding="utf-8"), "over_model_limit")
    assert (
        f"tail.jsonl:201</code> &#x27;neg&#x27;[1] has {longest:,} tokens; the model reads 512, the rest is cut"
        in over
    )
    assert "<td>1</td>" in over


def test_a_check_that_ran_shows_its_count(tmp_path):
    clean = tmp_path / "clean.jsonl"
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        [
            "scan",
            str(EXAMPLES),
            "--train-group-size",
            "4",
            "--clean-out",
            str(clean),
            "--report",
            str(out),
            "-q",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    few = [row for row in map(json.loads, clean.read_text().splitlines()) if len(row["neg"]) < 3]
    assert len(few) > 0
    assert f"<td>warning</td><td>{len(few)}</td>" in _check_row(
        out.read_text(encoding="utf-8"), "few_negatives"
    )


def test_st_format_says_when_it_raises_the_models_own_limit():
    # sentence-transformers models carry their own max_seq_length (all-MiniLM-L6-v2: 256, below
    # its 512 positions); a recommendation above it is printed, not capped, with what the
    # model's own limit would cut (issue 22)
    import dataclasses

    from lenprof import scan
    from lenprof.report import FORMATS

    profile = scan(str(EXAMPLES))
    assert profile.tokenizer.st_max_seq_length == 256 and "above the model" not in FORMATS["st"](profile)
    tight = dataclasses.replace(
        profile, tokenizer=dataclasses.replace(profile.tokenizer, st_max_seq_length=128)
    )
    first, note = FORMATS["st"](tight).splitlines()
    assert first.startswith("model.max_seq_length = 152  #")
    sparse = profile.histograms["passage"].to_sparse()
    over = sum(c for length, c in zip(sparse["lengths"], sparse["counts"], strict=True) if length > 128)
    share = 100 * over / sum(sparse["counts"])
    assert note == (
        "# above the model's own max_seq_length 128 (sentence_bert_config.json), which this line raises; "
        f"with 128, {share:.1f}% of passages would be cut"
    )


# --- what the figures and the checks say to a reader (issue 22, point 9) -------------------------


def _svg_texts(report) -> dict[str, list[tuple[str, float]]]:
    """Each field's figure as its reader sees it: the text of its SVG, with each text's font size."""
    page = report.read_text(encoding="utf-8")
    found = {}
    for field, drawn in re.findall(
        r'<img alt="(\w+) length histogram and coverage" src="data:image/svg\+xml;base64,([^"]+)"', page
    ):
        svg = base64.b64decode(drawn).decode()
        found[field] = [
            (html.unescape(t), float(size))
            for size, t in re.findall(r'<text [^>]*font-size="([\d.]+)"[^>]*>([^<]*)</text>', svg)
        ]
    return found


def test_the_overflow_bar_has_a_readable_label(outlier):
    """The overflow bar's words are text of the report's own size, not 7-point print in the plot."""
    report, profile = outlier
    page = _Page()
    page.feed(report.read_text(encoding="utf-8"))
    for name in ("neg", "passage"):
        f = page.figures[name]
        label = f"orange bar: 1 text over {f['axis_max']:,} tokens (longest {f['longest']:,})"
        assert [size for t, size in _svg_texts(report)[name] if t == label] == [12.0]
    assert not any(t.startswith("orange bar") for t, _ in _svg_texts(report)["query"])  # no overflow there


def test_the_legend_states_the_true_max_and_the_cap_apart(outlier):
    """A field whose longest text has 19,000 tokens: its legend says so, and that the cap cuts at 512,
    never "max 512"."""
    report, profile = outlier
    longest, cap = profile["fields"]["neg"]["max"], profile["recommendation"]["cap"]
    texts = [t for t, _ in _svg_texts(report)["neg"]]
    assert f"max {longest:,}, capped to {cap} (beyond the axis)" in texts
    assert f"max {cap}" not in texts and f"cap {cap} (beyond the axis)" in texts
    query = profile["fields"]["query"]  # nothing capped: the plain value
    assert f"max {query['max']}" in [t for t, _ in _svg_texts(report)["query"]]


def test_the_check_table_shows_what_fired_and_one_line_for_the_rest(outlier):
    report, profile = outlier
    html_text = report.read_text(encoding="utf-8")
    checks = html_text.split("<h2>Checks</h2>")[1].split("<h2>")[0]
    counts = {
        **profile["samples"]["dropped"],
        **profile["samples"]["repaired"],
        **profile["samples"]["warnings"],
    }
    fired = [r for r, n in counts.items() if n]
    assert fired == ["over_model_limit"]
    assert re.findall(r"<tr><td><code>(\w+)</code>", checks) == fired
    not_run = ["few_negatives", "eval_leak", "eval_query_leak", "eval_pos_leak"]
    assert all(f"<code>{r}</code>" in _not_run_line(checks) for r in not_run)
    passed = [r for r in DROP_REASONS + REPAIR_REASONS + WARNING_REASONS if r not in fired + not_run]
    line = re.search(r"<p data-checks-passed=(\d+)>(.*?)</p>", checks)
    assert int(line.group(1)) == len(passed) > 15
    assert line.group(2).startswith(
        f"The other {len(passed)} checks passed (no row or text had the problem): "
    )
    assert re.findall(r"<code>(\w+)</code>", line.group(2)) == passed
