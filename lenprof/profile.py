"""A scan's result: the typed :class:`Profile`, and its versioned JSON (``lenprof.profile/1``).

Everything in it is exact: the histograms are integer counts, so ``Profile.from_dict(p.to_dict())``
gives the same profile back and :meth:`Profile.recommend` re-derives lengths for other settings
without re-scanning.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from . import __version__
from .checks import DROP_REASONS, REASONS, REPAIR_REASONS, WARNING_REASONS
from .histogram import LengthHistogram
from .options import ScanOptions
from .recommend import Recommendation
from .schema import Fields
from .stats import FIELDS, Example, ScanStats
from .tokenize import TokenizerInfo

SCHEMA = "lenprof.profile/1"


class ProfileError(ValueError):
    """A file that is not a lenprof profile, or a damaged one. Exit code 2."""


@dataclass(frozen=True)
class InputSummary:
    path: str
    format: str  # "jsonl", "jsonl+gzip", "jsonl+zstd" or "parquet"
    rows: int
    blank: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    run: dict = field(default_factory=dict)  # how the scan ran (engine, timings): not results

    @classmethod
    def of(
        cls,
        stats: ScanStats,
        tokenizer: TokenizerInfo,
        options: ScanOptions,
        inputs: list[tuple[str, str]],
        outputs: dict[str, str] | None = None,
    ) -> Profile:
        """The profile of a finished scan: ``inputs`` are (path, format) in scan order."""
        counts = stats.inputs
        return cls(
            tokenizer=tokenizer,
            options=options,
            inputs=[
                InputSummary(
                    path, fmt, counts[i].rows if i in counts else 0, counts[i].blank if i in counts else 0
                )
                for i, (path, fmt) in enumerate(inputs)
            ],
            samples=Samples.of(stats),
            histograms=dict(stats.hists),
            unique=stats.unique_counts(),
            recommendation=Recommendation.of(
                stats.hists, options.coverage, options.multiple_of, tokenizer.cap
            ),
            examples={r: list(stats.examples[r]) for r in REASONS if stats.examples.get(r)},
            outputs=dict(outputs or {}),
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
        return dataclasses.replace(
            self,
            recommendation=Recommendation.of(
                self.histograms,
                rec.coverage if coverage is None else coverage,
                rec.multiple_of if multiple_of is None else multiple_of,
                chosen_cap,  # type: ignore[arg-type]
            ),
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
                f: {**self.field_stats(f), "histogram": self.histograms[f].to_sparse()} for f in FIELDS
            },
            "recommendation": self.recommendation.to_dict(),
            "examples": {r: [e.to_dict() for e in ex] for r, ex in self.examples.items()},
            "outputs": self.outputs,
            **({"split": self.buckets} if self.buckets else {}),
            "run": self.run,
        }

    @classmethod
    def read(cls, path: str) -> Profile:
        """A saved profile (``scan --out``); :class:`ProfileError` names the file and the problem."""
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: cannot be read ({exc})") from exc
        except ValueError as exc:
            raise ProfileError(f"{path}: not JSON ({exc}); write a profile with lenprof scan --out") from exc
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


def _describe(exc: Exception) -> str:
    return f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)


def _count(value: object, what: str, limit: int = 1 << 62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{what} must be a whole number from 0 to {limit}, got {value!r}")
    return value


def _histogram(h: dict, name: str) -> LengthHistogram:
    lengths, counts = h["lengths"], h["counts"]
    if not isinstance(lengths, list) or not isinstance(counts, list) or len(lengths) != len(counts):
        raise ValueError(f"fields.{name}.histogram needs two lists of one length")
    for v in lengths:
        _count(v, f"fields.{name}.histogram lengths", 1 << 24)  # no tokenizer input is 16M tokens
    for v in counts:
        _count(v, f"fields.{name}.histogram counts")
    if lengths != sorted(set(lengths)):
        raise ValueError(f"fields.{name}.histogram lengths must be distinct and ascending")
    return LengthHistogram.from_sparse(lengths, counts)


def _from_dict(d: dict) -> Profile:
    settings, rec = d["settings"], d["recommendation"]
    names = settings["fields"]
    defaults = Fields()
    fields = Fields(
        names["query"],
        names["pos"],
        names["neg"],
        frozenset(v for k, v in names.items() if v != getattr(defaults, k)),
    )
    options = ScanOptions(
        fields=fields,
        query_instruction=settings.get("query_instruction"),
        query_instruction_format=settings.get("query_instruction_format", "{}{}"),
        passage_instruction=settings.get("passage_instruction"),
        passage_instruction_format=settings.get("passage_instruction_format", "{}{}"),
        coverage=float(rec["coverage"]),
        multiple_of=_count(rec["multiple_of"], "recommendation.multiple_of", 1 << 20) or 1,
        min_neg=settings.get("min_neg", 1),
        train_group_size=settings.get("train_group_size"),
        raw_limit=settings.get("raw_limit", 4096),
        **({"max_line_bytes": settings["max_line_bytes"]} if "max_line_bytes" in settings else {}),
    )
    tokenizer = TokenizerInfo.from_dict(d["tokenizer"])
    cap = rec["cap"]
    if cap is not None:
        _count(cap, "recommendation.cap", 1 << 24)
    hists = {f: _histogram(d["fields"][f]["histogram"], f) for f in FIELDS}
    s = d["samples"]
    samples = Samples(
        **{k: _count(s[k], f"samples.{k}") for k in ("read", "blank", "kept")},
        **{
            k: {r: _count(v, f"samples.{k}.{r}") for r, v in s.get(k, {}).items()}
            for k in ("dropped", "repaired", "repaired_rows", "warnings")
        },
    )
    return Profile(
        tokenizer=tokenizer,
        options=options,
        inputs=[InputSummary(i["path"], i["format"], i["rows"], i["blank"]) for i in d["inputs"]],
        samples=samples,
        histograms=hists,
        unique={f: _count(d["fields"][f]["unique"], f"fields.{f}.unique") for f in FIELDS},
        recommendation=Recommendation.of(hists, options.coverage, options.multiple_of, cap),
        examples={
            r: [Example(e["source"], e["line"], e["detail"]) for e in ex]
            for r, ex in d.get("examples", {}).items()
        },
        outputs=dict(d.get("outputs", {})),
        buckets=dict(d.get("split", {})),
        run=dict(d.get("run", {})),
    )
