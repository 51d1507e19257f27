"""What a scan counts, in a form that merges: per-shard stats add up to the stats of the whole.

``ScanStats`` holds counters, exact histograms, fingerprint sets for unique counts and the first
examples of each reason; ``a.merge(b)`` folds ``b`` (a later part of the corpus) into ``a``, which
is how the distributed engine combines its workers exactly. ``Profile`` is the finished result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import __version__
from .checks import DROP_REASONS, REPAIR_REASONS, WARNING_REASONS
from .hashset import FingerprintSet
from .profile import LengthHistogram

FIELDS = ("query", "pos", "neg", "passage")
SCHEMA = "lenprof.profile/1"
EXAMPLES_PER_REASON = 5


def _zeros(reasons: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(reasons, 0)


@dataclass
class ScanStats:
    read: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: _zeros(DROP_REASONS))
    repaired: dict[str, int] = field(default_factory=lambda: _zeros(REPAIR_REASONS))  # texts removed
    repaired_rows: dict[str, int] = field(default_factory=lambda: _zeros(REPAIR_REASONS))
    warnings: dict[str, int] = field(default_factory=lambda: _zeros(WARNING_REASONS))
    hists: dict[str, LengthHistogram] = field(default_factory=lambda: {f: LengthHistogram() for f in FIELDS})
    # passage = pos | neg: its unique count is a union taken at the end, not a third set.
    unique: dict[str, FingerprintSet] = field(
        default_factory=lambda: {f: FingerprintSet() for f in FIELDS[:3]}
    )
    examples: dict[str, list[dict]] = field(default_factory=dict)
    inputs: list[dict] = field(default_factory=list)  # path, format, rows, blank

    def example(self, reason: str, source: str, line: int, detail: str) -> None:
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append({"source": source, "line": line, "detail": detail})

    def merge(self, later: ScanStats, continues: bool = False) -> None:
        """Fold in the stats of a later part of the corpus (order matters only for examples).

        ``continues``: ``later`` starts inside the last input counted here (the next shard of
        the same file), so its first input entry adds to that one.
        """
        self.read += later.read
        for mine, theirs in (
            (self.dropped, later.dropped),
            (self.repaired, later.repaired),
            (self.repaired_rows, later.repaired_rows),
            (self.warnings, later.warnings),
        ):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        for f in FIELDS:
            self.hists[f] = self.hists[f] + later.hists[f]
        for f, s in later.unique.items():
            self.unique[f].update(s.members())
        for reason, examples in later.examples.items():
            for e in examples:
                self.example(reason, e["source"], e["line"], e["detail"])
        entries = [dict(i) for i in later.inputs]
        if continues and entries and self.inputs:
            first = entries.pop(0)
            self.inputs[-1]["rows"] += first["rows"]
            self.inputs[-1]["blank"] += first["blank"]
        self.inputs.extend(entries)

    def samples(self) -> dict:
        return {
            "read": self.read,
            "blank": sum(i["blank"] for i in self.inputs),
            "kept": self.read - sum(self.dropped.values()),
            "dropped": {k: v for k, v in self.dropped.items() if v},
            "repaired": {k: v for k, v in self.repaired.items() if v},
            "repaired_rows": {k: v for k, v in self.repaired_rows.items() if v},
            "warnings": {k: v for k, v in self.warnings.items() if v},
        }

    def unique_counts(self) -> dict[str, int]:
        return {
            **{f: len(s) for f, s in self.unique.items()},
            "passage": self.unique["pos"].union_size(self.unique["neg"]),
        }


@dataclass
class Profile:
    """What a scan found; ``to_dict()`` is the versioned JSON (``lenprof.profile/1``)."""

    tokenizer: dict
    settings: dict
    inputs: list[dict]
    samples: dict
    histograms: dict[str, LengthHistogram]
    unique: dict[str, int]
    recommendation: dict
    examples: dict[str, list[dict]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    run: dict = field(default_factory=dict)  # how the scan ran (engine, timings): not results
    split: dict = field(default_factory=dict)  # --split-by-length: file -> bucket, rows, batch size

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        """Read back ``to_dict()`` (a saved ``--out`` JSON): the histograms are exact."""
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a lenprof profile (schema {d.get('schema')!r}, expected {SCHEMA!r})")
        fields = d["fields"]
        return cls(
            tokenizer=d["tokenizer"],
            settings=d["settings"],
            inputs=d["inputs"],
            samples=d["samples"],
            histograms={f: LengthHistogram.from_sparse(**fields[f]["histogram"]) for f in FIELDS},
            unique={f: fields[f]["unique"] for f in FIELDS},
            recommendation=d["recommendation"],
            examples=d.get("examples", {}),
            outputs=d.get("outputs", {}),
            run=d.get("run", {}),
            split=d.get("split", {}),
        )

    @property
    def dropped(self) -> int:
        return sum(self.samples["dropped"].values())

    def field_stats(self, name: str) -> dict:
        stats = self.histograms[name].summary()
        stats["unique"] = self.unique[name]
        return stats

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "lenprof_version": __version__,
            "tokenizer": self.tokenizer,
            "settings": self.settings,
            "inputs": self.inputs,
            "samples": self.samples,
            "fields": {
                f: {**self.field_stats(f), "histogram": self.histograms[f].to_sparse()} for f in FIELDS
            },
            "recommendation": self.recommendation,
            "examples": self.examples,
            "outputs": self.outputs,
            **({"split": self.split} if self.split else {}),
            "run": self.run,
        }
