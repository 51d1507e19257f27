"""A scan's result: the typed :class:`Profile`, and its versioned JSON (``lenprof.profile/1``).

Everything in it is exact: the histograms are integer counts, so ``Profile.from_dict(p.to_dict())``
gives the same profile back and :meth:`Profile.recommend` re-derives lengths for other settings
without re-scanning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lenprof.count.tokenizer import TokenizerInfo
from lenprof.rows.options import ScanOptions
from lenprof.rows.reasons import DROP_REASONS, REASONS, REPAIR_REASONS, WARNING_REASONS
from lenprof.stats.breakdown import InputBreakdown
from lenprof.stats.histogram import LengthHistogram
from lenprof.stats.profile_json import (
    ProfileError,
    _breakdown,
    _count,
    _describe,
    _histogram,
    _list,
    _long_text,
    _mapping,
    _maybe,
    _options,
    _run,
    _text,
    _tokenizer,
    load_json,
)
from lenprof.stats.recommend import Recommendation
from lenprof.stats.runinfo import RunInfo
from lenprof.stats.scan_stats import FIELDS, TEXT_FIELDS, Example, LongText, ScanStats, longest
from lenprof.version import __version__

SCHEMA = "lenprof.profile/1"


@dataclass(frozen=True)
class InputSummary:
    path: str
    format: str  # "jsonl", "jsonl+gzip", "json", "csv", "tsv", "parquet", "datasets"...
    rows: int
    blank: int
    layout: str | None = None  # when not FlagEmbedding's: the layout recognised, or "as --fields"
    fields: str | None = None  # then: the columns read, as --fields takes them
    split: str | None = None  # a dataset's split, or train/test... for files found together

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Samples:
    """Row counts; each reason's count, zeros left out, in the order the checks run."""

    read: int
    blank: int
    kept: int
    dropped: dict[str, int]
    repaired: dict[str, int]  # texts removed
    repaired_rows: dict[str, int]
    warnings: dict[str, int]

    @classmethod
    def of(cls, stats: ScanStats) -> Samples:
        def counts(counter, reasons):
            return {r: counter[r] for r in reasons if counter[r]}

        return cls(
            read=stats.read,
            blank=sum(c.blank for c in stats.inputs.values()),
            kept=stats.kept,
            dropped=counts(stats.dropped, DROP_REASONS),
            repaired=counts(stats.repaired, REPAIR_REASONS),
            repaired_rows=counts(stats.repaired_rows, REPAIR_REASONS),
            warnings=counts(stats.warnings, WARNING_REASONS),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Profile:
    """What a scan found; ``to_dict()`` is the versioned JSON."""

    tokenizer: TokenizerInfo
    options: ScanOptions  # written as "settings"
    inputs: list[InputSummary]
    samples: Samples
    histograms: dict[str, LengthHistogram]
    unique: dict[str, int]
    recommendation: Recommendation
    examples: dict[str, list[Example]] = field(default_factory=dict)  # in the order of REASONS
    outputs: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, dict] = field(default_factory=dict)  # --split-by-length: file -> bucket, rows...
    run: RunInfo = field(default_factory=RunInfo)  # how the scan ran (engine, timings): not results
    longest: dict[str, list[LongText]] = field(default_factory=dict)  # per field, longest first
    per_input: list[InputBreakdown] = field(default_factory=list)  # with two inputs or more
    chars: dict[str, int] = field(default_factory=dict)  # characters of the texts counted, per field
    scoring: dict = field(default_factory=dict)  # scan --model: the model, its flags' settings, the forecast

    def tokens_per_char(self, name: str) -> float | None:
        """Tokens per character of a field's texts: how finely this tokenizer cuts them."""
        chars = self.chars.get(name, 0)
        return self.histograms[name].tokens / chars if chars else None

    @classmethod
    def of(
        cls,
        stats: ScanStats,
        tokenizer: TokenizerInfo,
        options: ScanOptions,
        inputs: list[tuple],
        outputs: dict[str, str] | None = None,
    ) -> Profile:
        """The profile of a finished scan: ``inputs`` are (path, format[, layout, fields, split])
        in scan order."""
        counts = stats.inputs
        rec = Recommendation.of(stats.hists, options.coverage, options.multiple_of, tokenizer.cap)
        longest_texts = {f: stats.longest.get(f, []) for f in TEXT_FIELDS}
        longest_texts["passage"] = longest(longest_texts["pos"], longest_texts["neg"])
        return cls(
            tokenizer=tokenizer,
            options=options,
            inputs=[
                InputSummary(
                    path,
                    fmt,
                    counts[i].rows if i in counts else 0,
                    counts[i].blank if i in counts else 0,
                    *layout,
                )
                for i, (path, fmt, *layout) in enumerate(inputs)
            ],
            samples=Samples.of(stats),
            histograms=dict(stats.hists),
            unique=stats.unique_counts(),
            recommendation=rec,
            examples={r: list(stats.examples[r]) for r in REASONS if stats.examples.get(r)},
            outputs=dict(outputs or {}),
            longest=longest_texts,
            chars={
                **{f: stats.chars[f] for f in TEXT_FIELDS},
                "passage": stats.chars["pos"] + stats.chars["neg"],
            },
            per_input=[
                InputBreakdown.of_stats(path, part, DROP_REASONS, rec)
                for path, part in stats.by_input.items()
            ]
            if len(stats.by_input) > 1
            else [],
        )

    @property
    def dropped(self) -> int:
        return sum(self.samples.dropped.values())

    def field_stats(self, name: str) -> dict:
        stats = self.histograms[name].summary()
        stats["unique"] = self.unique[name]
        return stats

    def recommend(
        self, coverage: float | None = None, multiple_of: int | None = None, cap: int | None | bool = True
    ) -> Profile:
        """The same profile with lengths re-derived: ``cap=True`` keeps the tokenizer's cap,
        ``None`` (or 0) removes it, an int replaces it."""
        rec = self.recommendation
        chosen_cap = self.tokenizer.cap if cap is True else (cap or None)
        coverage = rec.coverage if coverage is None else coverage
        multiple_of = rec.multiple_of if multiple_of is None else multiple_of
        return dataclasses.replace(
            self,
            recommendation=Recommendation.of(self.histograms, coverage, multiple_of, chosen_cap),  # type: ignore[arg-type]
            per_input=[b.recommend(coverage, multiple_of, chosen_cap) for b in self.per_input],  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "lenprof_version": __version__,
            "tokenizer": self.tokenizer.to_dict(),
            "settings": self.options.describe(),
            "inputs": [i.to_dict() for i in self.inputs],
            "samples": self.samples.to_dict(),
            "fields": {
                f: {
                    **self.field_stats(f),
                    "chars": self.chars.get(f, 0),
                    "histogram": self.histograms[f].to_sparse(),
                }
                for f in FIELDS
            },
            "recommendation": self.recommendation.to_dict(),
            "examples": {r: [e.to_dict() for e in ex] for r, ex in self.examples.items()},
            "longest": {f: [t.to_dict() for t in texts] for f, texts in self.longest.items()},
            **({"per_input": [b.to_dict() for b in self.per_input]} if self.per_input else {}),
            "outputs": self.outputs,
            **({"split": self.buckets} if self.buckets else {}),
            **({"scoring": self.scoring} if self.scoring else {}),
            "run": self.run.to_dict(),
        }

    @classmethod
    def read(cls, path: str) -> Profile:
        """A saved profile (``scan --out``); :class:`ProfileError` names the file and the problem."""
        d = load_json(path)
        try:
            return cls.from_dict(d)
        except ProfileError as exc:
            raise ProfileError(f"{path}: {exc}; write a profile with lenprof scan --out") from exc

    @classmethod
    def from_dict(cls, d: object, where: str = "profile") -> Profile:
        """Read back ``to_dict()`` (a saved ``--out`` JSON); :class:`ProfileError` names what is wrong."""
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise ProfileError(f"not a lenprof profile (schema {got!r}, expected {SCHEMA!r})")
        try:
            return _from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            raise ProfileError(f"damaged {where}: {_describe(exc)}") from exc


def _from_dict(d: dict) -> Profile:
    rec = _mapping(d["recommendation"], "recommendation")
    options = _options(d["settings"], rec)
    cap = _maybe(rec["cap"], "recommendation.cap", 1 << 24)
    fields = _mapping(d["fields"], "fields")
    hists = {f: _histogram(_mapping(fields[f], f"fields.{f}")["histogram"], f) for f in FIELDS}
    s = _mapping(d["samples"], "samples")
    samples = Samples(
        **{k: _count(s[k], f"samples.{k}") for k in ("read", "blank", "kept")},
        **{
            k: {
                _text(r, f"samples.{k} reason"): _count(v, f"samples.{k}.{r}")
                for r, v in _mapping(s.get(k, {}), f"samples.{k}").items()
            }
            for k in ("dropped", "repaired", "repaired_rows", "warnings")
        },
    )
    inputs = [_mapping(i, "inputs[]") for i in _list(d["inputs"], "inputs")]
    examples = _mapping(d.get("examples", {}), "examples")
    return Profile(
        tokenizer=_tokenizer(d["tokenizer"]),
        options=options,
        inputs=[
            InputSummary(
                _text(i["path"], "inputs[].path"),
                _text(i["format"], "inputs[].format"),
                _count(i["rows"], "inputs[].rows"),
                _count(i["blank"], "inputs[].blank"),
                i.get("layout"),
                i.get("fields"),
                _text(i.get("split"), "inputs[].split", True),
            )
            for i in inputs
        ],  # fmt: skip
        samples=samples,
        histograms=hists,
        unique={f: _count(fields[f]["unique"], f"fields.{f}.unique") for f in FIELDS},
        recommendation=Recommendation.of(hists, options.coverage, options.multiple_of, cap),
        examples={
            _text(r, "examples reason"): [
                Example(
                    _text(e["source"], "examples[].source"),
                    _count(e["line"], "examples[].line"),
                    _text(e["detail"], "examples[].detail"),
                )
                for e in map(lambda e: _mapping(e, "examples[]"), _list(ex, f"examples.{r}"))
            ]
            for r, ex in examples.items()
        },
        outputs={k: _text(v, f"outputs.{k}") for k, v in _mapping(d.get("outputs", {}), "outputs").items()},
        longest={
            _text(f, "longest field"): [_long_text(t) for t in _list(texts, f"longest.{f}")]
            for f, texts in _mapping(d.get("longest", {}), "longest").items()
        },
        per_input=[_breakdown(b, options, cap) for b in _list(d.get("per_input", []), "per_input")],
        chars={f: _count(fields[f].get("chars", 0), f"fields.{f}.chars") for f in FIELDS},
        buckets=dict(_mapping(d.get("split", {}), "split")),
        scoring=dict(_mapping(d.get("scoring", {}), "scoring")),
        run=_run(d.get("run", {})),
    )
