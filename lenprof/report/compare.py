"""Rendering a :class:`~lenprof.stats.comparison.Comparison`: tokenizers side by side, in the terminal and
in the HTML report. Rendering only: every number was computed by the scan."""

from __future__ import annotations

from lenprof.report.text import _grid, _pct, sample_lines
from lenprof.stats.comparison import Comparison
from lenprof.stats.profile import Profile
from lenprof.stats.profile_json import ProfileError
from lenprof.stats.recommend import TARGETS
from lenprof.stats.scan_stats import FIELDS

PERCENTILES = ("50", "90", "95", "99", "99.9")
ONE_TOKENIZER_FORMATS = ("args", "yaml", "env", "st", "markdown")  # they print one tokenizer's lengths


def check_format(fmt: str, names: list[str], for_tokenizer: str | None) -> None:
    """Refuse, naming the flags, a format that prints one tokenizer's lengths when several are
    compared and none is named, and a name that is not among them (:class:`ProfileError`)."""
    if for_tokenizer is not None and for_tokenizer not in names:
        raise ProfileError(f"--for-tokenizer {for_tokenizer}: not one of the tokenizers ({', '.join(names)})")
    if len(names) > 1 and fmt in ONE_TOKENIZER_FORMATS and for_tokenizer is None:
        raise ProfileError(
            f"--format {fmt} prints one tokenizer's lengths, and {len(names)} are compared "
            f"({', '.join(names)}): name one with --for-tokenizer NAME, or use --format table or json"
        )


def render_comparison(fmt: str, comparison: Comparison, for_tokenizer: str | None) -> str:
    """``--format`` for a comparison: the side-by-side table, the comparison JSON, or one
    tokenizer's lengths in the other formats."""
    from lenprof.report import FORMATS

    check_format(fmt, comparison.names, for_tokenizer)
    if fmt in ONE_TOKENIZER_FORMATS:
        return FORMATS[fmt](comparison.profile(for_tokenizer))  # type: ignore[arg-type]
    return comparison.json() if fmt == "json" else render_comparison_table(comparison)


def _per_char(profile: Profile, field: str) -> str:
    ratio = profile.tokens_per_char(field)
    return "-" if ratio is None else f"{ratio:.3f}"


def field_rows(comparison: Comparison) -> list[list[str]]:
    """Header, then per field one row per tokenizer: its percentiles and tokens per character."""
    rows = [
        [
            "field",
            "tokenizer",
            "texts",
            "min",
            "mean",
            "p50",
            "p90",
            "p95",
            "p99",
            "p99.9",
            "max",
            "tokens/char",
        ]
    ]
    for f in FIELDS:
        for k, p in enumerate(comparison.profiles):
            st = p.field_stats(f)
            label = f if k == 0 else ""
            if not st["count"]:
                rows.append([label, p.tokenizer.name, "0"] + ["-"] * 9)
                continue
            rows.append(
                [label, p.tokenizer.name, str(st["count"]), str(st["min"]), f"{st['mean']:.1f}"]
                + [str(st["percentiles"][q]) for q in PERCENTILES]
                + [str(st["max"]), _per_char(p, f)]
            )
    return rows


def recommendation_rows(comparison: Comparison) -> list[list[str]]:
    """Per tokenizer: its cap, and for each target the recommended length and what it truncates."""
    rows = [
        ["tokenizer", "cap", "query_max_len", "truncates", "passage_max_len", "truncates", "over the cap"]
    ]
    for p in comparison.profiles:
        rec = p.recommendation
        row = [p.tokenizer.name, str(p.tokenizer.cap or "-")]
        for t in TARGETS:
            if rec.query_max_len is None:
                row += ["-", "-"]
                continue
            c, n = rec.chosen(t), p.histograms[t].count
            row += [
                f"{c.max_len}{'*' if rec.cap_binds[t] else ''}",
                f"{c.truncated} of {n} ({_pct(c.truncated, n)})",
            ]
        over = p.samples.warnings.get("over_model_limit", 0)
        row.append(f"{over} rows" if p.tokenizer.cap else "not run")
        rows.append(row)
    return rows


def render_comparison_table(comparison: Comparison) -> str:
    first = comparison.profiles[0]
    n = len(first.inputs)
    lines = [
        f"lenprof: {n} input{'s' * (n != 1)}, {len(comparison.profiles)} tokenizers compared in one pass",
        "",
        *sample_lines(first),
        "",
    ]
    lines += _grid(field_rows(comparison), right=set(range(2, 12)))
    lines.append("")
    rec = first.recommendation
    lines.append(
        f"recommended (p{rec.coverage:g} rounded up to a multiple of {rec.multiple_of}, at most each cap)"
    )
    lines += _grid(recommendation_rows(comparison), right={1, 2, 3, 4, 5, 6}, indent="  ")
    if any(p.recommendation.cap_binds[t] for p in comparison.profiles for t in TARGETS):
        lines.append("* lowered to the model's cap")
    return "\n".join(lines) + "\n"


def _html_table(rows: list[list[str]], cls: str) -> str:
    from lenprof.report.html import _e

    head = "".join(f"<th>{_e(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table class={cls}><tr>{head}</tr>{body}</table>"


def render_comparison_html(comparison: Comparison) -> str:
    """The tokenizers side by side, then each one's own report, folded."""
    from lenprof.report.html import CSS, _e, render_html

    first = comparison.profiles[0]
    s = first.samples
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>lenprof comparison</title><style>{CSS}</style></head><body>",
        "<h1>lenprof: tokenizers compared</h1>",
        f"<p>{len(comparison.profiles)} tokenizers on the same {s.read} rows ({s.kept} kept, {first.dropped} dropped), "
        "read and checked once.</p>",
        "<h2>Recommended lengths</h2>",
        _html_table(recommendation_rows(comparison), "compare-rec"),
        "<h2>Lengths per field</h2>",
        "<p class=muted>Tokens per character: how finely each tokenizer cuts the same texts.</p>",
        _html_table(field_rows(comparison), "compare-fields"),
    ]
    for p in comparison.profiles:
        body = render_html(p).split("<body>", 1)[1].rsplit("</body>", 1)[0]
        parts.append(
            f"<details><summary><b>{_e(p.tokenizer.name)}</b>: its own report</summary>{body}</details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
