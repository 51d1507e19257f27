"""The HTML report: one self-contained file (figures inlined as SVG data, no scripts, no fonts).

Rendering only: every number comes from the :class:`~lenprof.stats.profile.Profile`.
"""

from __future__ import annotations

import base64
import html
import json

from lenprof.report.chart import field_svg
from lenprof.report.figures import FigureData, figure_data
from lenprof.rows.reasons import DROP_REASONS, EXPLANATIONS, REPAIR_REASONS, WARNING_REASONS
from lenprof.stats.histogram import LengthHistogram
from lenprof.stats.profile import Profile
from lenprof.stats.recommend import Candidate, candidates
from lenprof.stats.scan_stats import FIELDS
from lenprof.version import __version__

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{padding:.25rem .7rem;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f8}td:first-child,th:first-child{text-align:left}
.rec{background:#eef6ee;border:1px solid #bcdcbc;border-radius:8px;padding:.8rem 1.2rem;display:inline-block}
.rec code{font-size:1.1rem}.muted{color:#666}.chosen td{font-weight:600;background:#f3faf3}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
code{background:#f3f3f5;padding:.05rem .3rem;border-radius:4px}
td.head{text-align:left;font-family:ui-monospace,monospace;font-size:.8rem;max-width:40rem;overflow-wrap:anywhere}
summary{cursor:pointer;color:#444;margin:.4rem 0}
.compare-fields td:nth-child(2),.compare-fields th:nth-child(2){text-align:left}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _figure(data: FigureData, hist: LengthHistogram, chosen: int) -> str:
    """Histogram and cumulative share of one field with its cuts, as an <img> of inline SVG; the
    figure's data rides along in ``data-figure`` so that what it shows can be checked."""
    drawn = base64.b64encode(field_svg(data, hist.counts, chosen).encode()).decode()
    return (
        f"<figure data-figure='{_e(json.dumps(data.to_dict()))}'>"
        f'<img alt="{_e(data.field)} length histogram and coverage" src="data:image/svg+xml;base64,{drawn}">'
        f"<figcaption class=muted>{_e(data.caption())}</figcaption></figure>"
    )


def _times(value: int, base: int) -> str:
    return f"{value / base:.2f}×" if base else "-"


def _candidates(field: str, hist: LengthHistogram, cuts: list[Candidate], target: str) -> str:
    """The cost of each cut for this field's own texts, against the recommended cut."""
    rec = next(c for c in cuts if c.name == "recommended")
    rows = []
    for c in cuts:
        cls = ' class="chosen"' if c.name == "recommended" else ""
        rows.append(
            f'<tr{cls} data-cut="{_e(c.name)}" data-max-len="{c.max_len}" data-truncated="{c.truncated}">'
            f"<td>{_e(c.name)}</td><td>{c.max_len}{'*' if c.capped else ''}</td>"
            f"<td>{c.truncated} ({_pct(c.truncated, hist.count)})</td>"
            f"<td>{c.tokens_lost} ({_pct(c.tokens_lost, hist.tokens)})</td>"
            f"<td>{_times(c.padded_tokens, rec.padded_tokens)}</td>"
            f"<td>{_times(c.squares, rec.squares)}</td>"
            f"<td>{_times(c.max_len * c.max_len, rec.max_len * rec.max_len)}</td></tr>"
        )
    return (
        f'<table class=cuts data-field="{_e(field)}"><tr><th>cut</th><th>{target}_max_len</th>'
        "<th>texts truncated</th><th>tokens lost</th><th>padded tokens<br>(memory, feed-forward)</th>"
        "<th>attention, texts as they are<br>(Σ min(L, cut)²)</th><th>attention, padded to the cut<br>(cut²)</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _not_run(profile: Profile) -> dict[str, str]:
    """Checks that this scan's settings switched off: shown as such, never as 0."""
    why = {}
    if profile.options.train_group_size is None:
        why["few_negatives"] = "needs --train-group-size"
    if profile.tokenizer.cap is None:
        why["over_model_limit"] = "the tokenizer declares no length limit"
    against = profile.run.against
    if against is None:
        why |= dict.fromkeys(("eval_leak", "eval_query_leak", "eval_pos_leak"), "needs --against")
    elif against.drop_leaks:
        why |= dict.fromkeys(("eval_query_leak", "eval_pos_leak"), "--drop-leaks drops them: eval_leak")
    else:
        why["eval_leak"] = "needs --drop-leaks"
    return why


def _checks(profile: Profile) -> str:
    """The checks that found something, one row each; then one line naming the checks that
    passed and one naming those this scan's settings switched off, so twenty rows of zeros do
    not bury the few that matter."""
    s = profile.samples
    groups = (
        ("dropped", DROP_REASONS, s.dropped),
        ("repaired", REPAIR_REASONS, s.repaired),
        ("warning", WARNING_REASONS, s.warnings),
    )
    not_run = _not_run(profile)
    rows, passed = [], []
    for fate, reasons, counts in groups:
        for reason in reasons:
            if reason in not_run:
                continue
            if not counts.get(reason, 0):
                passed.append(reason)
                continue
            examples = "<br>".join(
                f"<code>{_e(e.source)}:{e.line}</code> {_e(e.detail)}"
                for e in profile.examples.get(reason, [])
            )
            rows.append(
                f"<tr><td><code>{reason}</code></td><td>{fate}</td><td>{counts[reason]}</td>"
                f'<td style="text-align:left">{_e(EXPLANATIONS[reason])}</td><td style="text-align:left">{examples}</td></tr>'
            )
    parts = []
    if rows:
        parts.append(
            "<table class=checks><tr><th>check</th><th>fate</th><th>rows / texts</th><th>what it means</th>"
            "<th>first examples</th></tr>" + "".join(rows) + "</table>"
        )
    if passed:
        which = "The other" if rows else "All"
        parts.append(
            f"<p data-checks-passed={len(passed)}>{which} {len(passed)} checks passed (no row or text "
            "had the problem): " + ", ".join(f"<code>{r}</code>" for r in passed) + ".</p>"
        )
    if not_run:
        parts.append(
            f"<p data-checks-not-run={len(not_run)}>Not run with this scan's settings: "
            + ", ".join(f"<code>{r}</code> ({_e(why)})" for r, why in not_run.items())
            + ".</p>"
        )
    return "\n".join(parts)


def _field_section(profile: Profile, field: str) -> list[str]:
    """A field's numbers, figure and cuts, every one of them from this field's own histogram."""
    rec, hist = profile.recommendation, profile.histograms[field]
    parts = [f"<h2>{field}</h2>"]
    if not hist.count:
        return parts + ["<p>no texts</p>"]
    st = profile.field_stats(field)
    pcts = " · ".join(f"p{p} {v}" for p, v in st["percentiles"].items())
    parts.append(
        f'<p data-field-stats="{field}">{st["count"]} texts, {st["unique"]} unique; min {st["min"]}, '
        f"mean {st['mean']:.1f}, {pcts}, max {st['max']}</p>"
    )
    target = "query" if field == "query" else "passage"
    chosen = rec.query_max_len if target == "query" else rec.passage_max_len
    if chosen is None:
        return parts
    # pos and neg are cut at passage_max_len, but their percentiles are their own
    cuts = rec.candidates[field] if field in rec.candidates else candidates(hist, chosen, rec.cap)
    parts.append(_figure(figure_data(field, hist, cuts, chosen), hist, chosen))
    parts.append(_candidates(field, hist, cuts, target))
    parts.append(_longest(profile, field))
    return parts


def _longest(profile: Profile, field: str) -> str:
    """The field's longest distinct texts: where users find HTML dumps, base64 and joined documents."""
    texts = profile.longest.get(field, [])
    if not texts:
        return ""
    rows = "".join(
        f'<tr data-tokens="{t.tokens}"><td><code>{_e(t.source)}:{t.line}</code>'
        f"{'' if t.item is None else f' [{t.item}]'}</td><td>{t.tokens}</td><td>{t.chars}</td>"
        f"<td class=head>{_e(t.head)}{'…' if t.chars > len(t.head) else ''}</td></tr>"
        for t in texts
    )
    return (
        f"<details open><summary>longest {field} texts</summary>"
        f'<table class=longest data-field="{_e(field)}"><tr><th>where</th><th>tokens</th><th>characters</th>'
        f"<th>how it starts</th></tr>{rows}</table></details>"
    )


def _per_input(profile: Profile) -> list[str]:
    """One row per input: a folder of tasks with different lengths gets a number per task."""
    if not profile.per_input:
        return []
    head = "".join(f"<th>{f} p95</th>" for f in FIELDS)
    rows = []
    for b in profile.per_input:
        p95 = "".join(f"<td>{_e(b.histograms[f].percentile(95) or '-')}</td>" for f in FIELDS)
        drops = ", ".join(f"{r} {n}" for r, n in b.dropped.items()) or "none"
        rec = b.recommendation
        lengths = f"{rec.query_max_len} / {rec.passage_max_len}" if rec.query_max_len is not None else "-"
        rows.append(
            f"<tr><td><code>{_e(b.path)}</code></td><td>{b.read}</td><td>{b.kept}</td>"
            f'<td style="text-align:left">{_e(drops)}</td>{p95}<td>{lengths}</td></tr>'
        )
    return [
        "<h2>Per input</h2>",
        f"<p class=muted>What each input alone would need (p{profile.recommendation.coverage:g}, "
        "same rounding and cap); a corpus mixing them gets the recommendation at the top.</p>",
        f"<table class=inputs><tr><th>input</th><th>rows</th><th>kept</th><th>dropped</th>{head}"
        f"<th>query / passage max_len</th></tr>" + "".join(rows) + "</table>",
    ]


def _counting(profile: Profile) -> str:
    """How the texts were counted (``run.counting``), and whether the fast count's self-check
    failed, forcing every text to be counted again by the tokenizer."""
    counting = profile.run.counting
    if counting is None:
        return ""  # a profile written before the run record held it
    path = counting.path
    how = (
        "by the tokenizer"
        if path == "tokenizer"
        else f"through piece caches (<code>{_e(path)}</code>), self-checked against the tokenizer"
    )
    text = f'<p data-counting="{_e(path)}">Token counts: {how}.</p>'
    failed = counting.fast_path_failed
    if failed:
        text += (
            f"<p data-fast-path-failed><b>The piece-cache count disagreed with the tokenizer</b> "
            f"({_e(failed)}); every text was counted again by the tokenizer.</p>"
        )
    return text


def _through_the_model(profile: Profile) -> list[str]:
    """``scan --model``: the forecast and the advice (the flags are among the checks)."""
    if not profile.scoring:
        return []
    from lenprof.report.text import scoring_lines

    return ["<h2>Through the model</h2>", f"<pre>{_e(chr(10).join(scoring_lines(profile)))}</pre>"]


def render_html(profile: Profile) -> str:
    s, tok, rec = profile.samples, profile.tokenizer, profile.recommendation
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>lenprof report</title><style>{CSS}</style></head><body>",
        "<h1>lenprof report</h1>",
        f"<p class=muted>tokenizer <code>{_e(tok.name)}</code> · cap {_e(tok.cap)} · "
        f"{len(profile.inputs)} input(s) · lenprof {__version__}</p>",
        f"<p>{s.read} rows read, <b>{s.kept} kept</b>, {profile.dropped} dropped, {s.blank} blank lines.</p>",
    ]
    if rec.query_max_len is not None:
        parts.append(
            f"<div class=rec>Recommended (p{rec.coverage:g}, multiple of {rec.multiple_of}, cap {_e(rec.cap)}):<br>"
            f"<code>--query_max_len {rec.query_max_len} --passage_max_len {rec.passage_max_len}</code></div>"
        )
    for field in FIELDS:
        parts += _field_section(profile, field)
    parts += [
        "<p class=muted>* lowered to the model's cap. The recommended cut of pos and neg is passage_max_len. "
        "Padded tokens: every text padded to the cut, what memory and the feed-forward layers pay for "
        "(FlagEmbedding pads each batch to its longest text, so a batch of short texts pays less). "
        "Attention grows with the square of a sequence's length: Σ min(L, cut)² is its cost for the texts "
        "as they are, cut² for texts padded to the cut. Each is given relative to the recommended cut.</p>",
        *_per_input(profile),
        "<h2>Checks</h2>",
        _checks(profile),
        *_through_the_model(profile),
        "<h2>How this report was made</h2>",
        "<table>"
        + "".join(
            f"<tr><td>{_e(i.path)}</td><td>{_e(i.format)}</td><td>{i.rows} rows</td><td>{i.blank} blank</td></tr>"
            for i in profile.inputs
        )
        + "</table>",
        _counting(profile),
        f"<pre>{_e(json.dumps({'tokenizer': tok.to_dict(), 'settings': profile.options.describe()}, indent=2, ensure_ascii=False))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)
