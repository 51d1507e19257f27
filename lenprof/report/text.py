"""Render a :class:`~lenprof.stats.profile.Profile` as text: JSON, the one-line trainer arguments,
YAML, shell variables, a sentence-transformers line, Markdown and the terminal table.

Rendering only: every number here was computed by the scan.
"""

from __future__ import annotations

import json

from lenprof.io.readers.splits import summary
from lenprof.stats.profile import Profile
from lenprof.stats.recommend import TARGETS
from lenprof.stats.scan_stats import FIELDS


def render_json(profile: Profile) -> str:
    return json.dumps(profile.to_dict(), ensure_ascii=False, indent=2) + "\n"


def render_args(profile: Profile) -> str:
    """One line for a FlagEmbedding ``torchrun`` command."""
    q, p = _lengths(profile)
    return f"--query_max_len {q} --passage_max_len {p}\n"


def _lengths(profile: Profile) -> tuple[int, int]:
    return profile.recommendation.lengths()


def _how(profile: Profile) -> str:
    rec = profile.recommendation
    cap = f", cap {rec.cap}" if rec.cap else ""
    return f"p{rec.coverage:g} of token lengths, multiple of {rec.multiple_of}{cap}, tokenizer {profile.tokenizer.name}"


def render_yaml(profile: Profile) -> str:
    """FlagEmbedding's data arguments, for a YAML training config."""
    q, p = _lengths(profile)
    return f"# lenprof: {_how(profile)}\nquery_max_len: {q}\npassage_max_len: {p}\n"


def render_env(profile: Profile) -> str:
    """Shell assignments (``source <(lenprof scan ... --format env)``)."""
    q, p = _lengths(profile)
    return f"QUERY_MAX_LEN={q}\nPASSAGE_MAX_LEN={p}\n"


def render_st(profile: Profile) -> str:
    """sentence-transformers has one ``max_seq_length`` for queries and passages alike."""
    q, p = _lengths(profile)
    line = (
        f"model.max_seq_length = {max(q, p)}  # sentence-transformers: one limit serves queries and "
        f"passages alike (query_max_len {q}, passage_max_len {p}; {_how(profile)})\n"
    )
    configured = profile.tokenizer.st_max_seq_length
    if configured is not None and max(q, p) > configured:
        # not capped: the recommendation is what the data needs, and the model takes up to its cap;
        # but the model was set up (and often trained) for less, which the user should weigh
        line += (
            f"# above the model's own max_seq_length {configured} (sentence_bert_config.json), which "
            f"this line raises; with {configured}, {_truncated_share(profile, configured)} of passages "
            f"would be cut\n"
        )
    return line


def _truncated_share(profile: Profile, limit: int) -> str:
    """The share of passages longer than ``limit`` tokens, as a percentage."""
    passages = profile.histograms["passage"]
    return f"{100 * passages.cut_cost(limit)['truncated'] / max(passages.count, 1):.1f}%"


def render_markdown(profile: Profile) -> str:
    """The summary table, for a README or a model card."""
    rows = [
        "| field | texts | unique | min | mean | p50 | p90 | p95 | p99 | p99.9 | max |",
        "|---" * 11 + "|",
    ]
    for f in FIELDS:
        st = profile.field_stats(f)
        if not st["count"]:
            rows.append(f"| {f} | 0 |" + " - |" * 9)
            continue
        pcts = " | ".join(str(st["percentiles"][p]) for p in ("50", "90", "95", "99", "99.9"))
        rows.append(
            f"| {f} | {st['count']} | {st['unique']} | {st['min']} | {st['mean']:.1f} | {pcts} | {st['max']} |"
        )
    s = profile.samples
    lines = [
        f"Token lengths measured by lenprof with {profile.tokenizer.name}: {s.kept} of {s.read} rows kept.",
        "",
        *rows,
    ]
    if profile.recommendation.query_max_len is not None:
        q, p = _lengths(profile)
        lines += ["", f"Recommended: `query_max_len` {q}, `passage_max_len` {p} ({_how(profile)})."]
    return "\n".join(lines) + "\n"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _grid(rows: list[list[str]], right: set[int], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        (
            indent
            + "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        ).rstrip()
        for r in rows
    ]


def join_counts(counts: dict[str, int], unit: str = "") -> str:
    return ", ".join(f"{k} {v}{unit}" for k, v in counts.items()) or "none"


def sample_lines(profile: Profile, splits: str = "") -> list[str]:
    """What happened to the rows: read, kept and dropped, the splits found, drops and repairs."""
    s = profile.samples
    return [
        f"rows      read {s.read}, kept {s.kept}, dropped {profile.dropped}, blank lines {s.blank}",
        *([f"splits    {splits}"] if splits else []),
        f"dropped   {join_counts(s.dropped)}",
        f"repaired  {join_counts(s.repaired)}" + (" (texts removed, rows kept)" if s.repaired else ""),
    ]


def scoring_lines(profile: Profile) -> list[str]:
    """``scan --model``: the model, the first steps' forecast and what to do about it."""
    sc = profile.scoring
    if not sc:
        return []
    lines = [f"model     {sc['model']} ({sc['pooling']} pooling, temperature {sc['temperature']:g})"]
    if sc.get("texts_truncated"):
        n = sc["texts_truncated"]
        lines.append(
            f"          {n} {'text' if n == 1 else 'texts'} over the model's limit {'was' if n == 1 else 'were'} "
            "scored truncated"
        )
    f = sc.get("forecast")
    if f is not None and f["batches"]:
        loss = f["loss"]
        lines.append(
            f"forecast  {f['batches']} batches of {sc['batch_size']} x {sc['train_group_size']}: step loss "
            f"p10 {loss['p10']:.4f}, median {loss['p50']:.4f}, p90 {loss['p90']:.4f}; "
            f"{100 * f['zero_share']:.0f}% would log 0.0"
        )
    elif f is not None:
        lines.append(f"forecast  fewer kept rows than one batch of {sc['batch_size']}: nothing to forecast")
    lines += [f"advice    {a}" for a in (f or {}).get("advice", [])]
    return lines


def render_table(profile: Profile) -> str:
    s, tok, rec = profile.samples, profile.tokenizer, profile.recommendation
    cap = f"cap {tok.cap}" if tok.cap else "no known cap"
    n_inputs = len(profile.inputs)
    splits = summary([(i.path, i.split) for i in profile.inputs])  # train/test files in one folder
    lines = [
        f"lenprof: {n_inputs} input{'s' * (n_inputs != 1)}, tokenizer {tok.name} ({cap})",
        "",
        *sample_lines(profile, splits),
    ]
    if s.warnings:
        lines.append(f"warnings  {join_counts(s.warnings, ' rows')}")
    lines += scoring_lines(profile)
    lines.append("")
    header = ["field", "texts", "unique", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"]
    rows = [header]
    for f in FIELDS:
        st = profile.field_stats(f)
        if not st["count"]:
            rows.append([f, "0"] + ["-"] * (len(header) - 2))
            continue
        pcts = [str(st["percentiles"][p]) for p in ("50", "90", "95", "99", "99.9")]
        rows.append(
            [
                f,
                str(st["count"]),
                str(st["unique"]),
                str(st["min"]),
                f"{st['mean']:.1f}",
                *pcts,
                str(st["max"]),
            ]
        )
    lines += _grid(rows, right=set(range(1, len(header))))
    lines.append("")
    if rec.query_max_len is None:
        lines.append("no rows kept: nothing to recommend")
        return "\n".join(lines) + "\n"
    lines.append(
        f"recommended (p{rec.coverage:g} rounded up to a multiple of {rec.multiple_of}"
        + (f", at most {rec.cap})" if rec.cap else ")")
    )
    for f in TARGETS:
        chosen = rec.chosen(f)
        binds = "  (the model's cap binds)" if rec.cap_binds[f] else ""
        h = profile.histograms[f]
        lines.append(
            f"  {'--' + f + '_max_len ' + str(chosen.max_len):<24} truncates {chosen.truncated} of "
            f"{h.count} texts ({_pct(chosen.truncated, h.count)}), "
            f"loses {_pct(chosen.tokens_lost, h.tokens)} of tokens{binds}"
        )
    lines.append("")
    rows = [
        ["cut", "query_max_len", "truncated", "tokens lost", "passage_max_len", "truncated", "tokens lost"]
    ]
    by_name = {f: {c.name: c for c in rec.candidates[f]} for f in TARGETS}
    for name in by_name["query"]:
        row = [name]
        for f in TARGETS:
            c = by_name[f][name]
            h = profile.histograms[f]
            row += [
                f"{c.max_len}{'*' if c.capped else ''}",
                f"{c.truncated} ({_pct(c.truncated, h.count)})",
                f"{c.tokens_lost} ({_pct(c.tokens_lost, h.tokens)})",
            ]
        rows.append(row)
    lines += _grid(rows, right=set(range(1, 7)))
    if any(c.capped for f in by_name for c in by_name[f].values()):
        lines.append("* lowered to the model's cap")
    return "\n".join(lines) + "\n"
