"""The HTML report: one self-contained file (figures inlined as SVG data, no scripts, no fonts).

Rendering only: every number comes from the :class:`~lenprof.profile.Profile`.
"""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np

from ..checks import DROP_REASONS, EXPLANATIONS, REPAIR_REASONS, WARNING_REASONS
from ..profile import Profile
from ..recommend import Candidate, cost_at
from ..stats import FIELDS
from ..version import __version__

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{padding:.25rem .7rem;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f8}td:first-child,th:first-child{text-align:left}
.rec{background:#eef6ee;border:1px solid #bcdcbc;border-radius:8px;padding:.8rem 1.2rem;display:inline-block}
.rec code{font-size:1.1rem}.muted{color:#666}.chosen td{font-weight:600;background:#f3faf3}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
code{background:#f3f3f5;padding:.05rem .3rem;border-radius:4px}
"""
CUT_COLORS = {"p90": "#9ecae1", "p95": "#4292c6", "p99": "#08519c", "max": "#6a51a3", "cap": "#cb181d"}


def _e(value: object) -> str:
    return html.escape(str(value))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _figure(profile: Profile, field: str, cuts: list[Candidate], chosen: int) -> str:
    """Histogram and cumulative share of one field with the candidate cuts, as an <img> tag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = profile.histograms[field]
    lengths = np.arange(len(hist.counts))
    fig, (ax, cum) = plt.subplots(1, 2, figsize=(11, 3.2), constrained_layout=True)
    width = max(1, -(-len(lengths) // 120))  # at most ~120 bars
    binned = np.add.reduceat(hist.counts, np.arange(0, len(lengths), width))
    ax.bar(np.arange(0, len(lengths), width), binned, width=width, align="edge", color="#7f8c9d")
    ax.set(
        xlabel="tokens",
        ylabel="texts",
        title=f"{field}: texts per length" + (f" (bins of {width})" if width > 1 else ""),
    )
    share = np.cumsum(hist.counts) / max(hist.count, 1)
    cum.plot(lengths, 100 * share, color="#333")
    cum.set(
        xlabel="max_len (tokens)",
        ylabel="% of texts untruncated",
        title=f"{field}: coverage by cut",
        ylim=(0, 101),
    )
    shown = min(int(lengths[-1]) if len(lengths) else 0, max(c.max_len for c in cuts)) if cuts else None
    for c in cuts:
        if c.name == "recommended" or (shown is not None and c.max_len > shown * 1.05 and c.name == "cap"):
            continue
        for a in (ax, cum):
            a.axvline(
                c.max_len,
                color=CUT_COLORS.get(c.name, "#999"),
                lw=1,
                ls="--",
                label=f"{c.name} {c.max_len}",
            )
    for a in (ax, cum):
        a.axvline(chosen, color="#238b45", lw=2.5, label=f"recommended {chosen}")
    cum.legend(loc="lower right", fontsize=8)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue().encode()).decode()
    return f'<figure><img alt="{_e(field)} length histogram and coverage" src="data:image/svg+xml;base64,{data}"></figure>'


def _candidates(profile: Profile, field: str, cuts: list[Candidate], chosen: int) -> str:
    hist = profile.histograms[field]
    rows = []
    for c in cuts:
        kept = hist.tokens - c.tokens_lost
        padding = c.max_len * hist.count - kept  # pad tokens if every text were padded to max_len
        cls = ' class="chosen"' if c.name == "recommended" else ""
        rows.append(
            f"<tr{cls}><td>{_e(c.name)}</td><td>{c.max_len}{'*' if c.capped else ''}</td>"
            f"<td>{c.truncated} ({_pct(c.truncated, hist.count)})</td>"
            f"<td>{c.tokens_lost} ({_pct(c.tokens_lost, hist.tokens)})</td>"
            f"<td>{_pct(padding, c.max_len * hist.count)}</td><td>{c.max_len / chosen:.2f}×</td></tr>"
        )
    return (
        "<table><tr><th>cut</th><th>max_len</th><th>texts truncated</th><th>tokens lost</th>"
        "<th>padding at max_len</th><th>cost vs recommended</th></tr>" + "".join(rows) + "</table>"
    )


def _checks(profile: Profile) -> str:
    s = profile.samples
    groups = (
        ("dropped", DROP_REASONS, s.dropped),
        ("repaired", REPAIR_REASONS, s.repaired),
        ("warning", WARNING_REASONS, s.warnings),
    )
    rows = []
    for fate, reasons, counts in groups:
        for reason in reasons:
            n = counts.get(reason, 0)
            examples = "<br>".join(
                f"<code>{_e(e.source)}:{e.line}</code> {_e(e.detail)}"
                for e in profile.examples.get(reason, [])
            )
            rows.append(
                f"<tr><td><code>{reason}</code></td><td>{fate}</td><td>{n}</td>"
                f'<td style="text-align:left">{_e(EXPLANATIONS[reason])}</td><td style="text-align:left">{examples}</td></tr>'
            )
    return (
        "<table><tr><th>check</th><th>fate</th><th>rows / texts</th><th>what it means</th><th>first examples</th></tr>"
        + "".join(rows)
        + "</table>"
    )


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
        hist = profile.histograms[field]
        parts.append(f"<h2>{field}</h2>")
        if not hist.count:
            parts.append("<p>no texts</p>")
            continue
        st = profile.field_stats(field)
        pcts = " · ".join(f"p{p} {v}" for p, v in st["percentiles"].items())
        parts.append(
            f"<p>{st['count']} texts, {st['unique']} unique; min {st['min']}, mean {st['mean']:.1f}, {pcts}, max {st['max']}</p>"
        )
        target = "query" if field == "query" else "passage"
        chosen = rec.query_max_len if target == "query" else rec.passage_max_len
        if chosen is None:
            continue
        if field in ("query", "passage"):
            cuts = rec.candidates[target]
        else:  # pos or neg alone, at the passage recommendation's cuts
            hist = profile.histograms[field]
            cuts = [cost_at(hist, c.name, c.max_len, c.capped) for c in rec.candidates["passage"]]
        parts.append(_figure(profile, field, cuts, chosen))
        parts.append(_candidates(profile, field, cuts, chosen))
    parts += [
        "<p class=muted>* lowered to the model's cap. Padding at max_len: share of pad tokens if every text were padded to the cut "
        "(FlagEmbedding pads each batch to its longest text, so real padding is lower). Cost: sequence length relative to the recommendation.</p>",
        "<h2>Checks</h2>",
        _checks(profile),
        "<h2>How this report was made</h2>",
        "<table>"
        + "".join(
            f"<tr><td>{_e(i.path)}</td><td>{_e(i.format)}</td><td>{i.rows} rows</td><td>{i.blank} blank</td></tr>"
            for i in profile.inputs
        )
        + "</table>",
        f"<pre>{_e(json.dumps({'tokenizer': tok.to_dict(), 'settings': profile.options.describe()}, indent=2, ensure_ascii=False))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)
