"""What a scan counts, in a form that adds: the stats of two parts of a corpus, added in corpus
order with ``+``, are the stats of the whole. That is how shards scanned by different workers,
or by different machines, combine into exactly one result.

    >>> a, b = ScanStats(read=2), ScanStats(read=3)
    >>> a.dropped["empty_query"] = 1; b.dropped["empty_query"] = 2
    >>> (a + b).read, (a + b).dropped["empty_query"]
    (5, 3)
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field

from lenprof.stats.histogram import LengthHistogram

FIELDS = ("query", "pos", "neg", "passage")
TEXT_FIELDS = FIELDS[:3]  # passage = pos | neg, derived
EXAMPLES_PER_REASON = 5
LONGEST_PER_FIELD = 5
HEAD_CHARS = 80


@dataclass(frozen=True)
class Example:
    """Where a check fired: the input, its 1-based line (or Parquet row) and what was found."""

    source: str
    line: int
    detail: str

    def to_dict(self) -> dict:
        return {"source": self.source, "line": self.line, "detail": self.detail}


@dataclass(frozen=True)
class LongText:
    """One of a field's longest distinct texts: where it is, its length and how it starts."""

    tokens: int
    input: int  # position of its input: with ``line``, its place in the corpus
    source: str
    line: int
    item: int | None  # its index in the row's pos or neg list (None for a query)
    chars: int
    head: str  # its first HEAD_CHARS characters
    key: int = 0  # fingerprint of the text as the trainer sees it: the same text is listed once

    def to_dict(self) -> dict:
        return {
            "tokens": self.tokens,
            "source": self.source,
            "line": self.line,
            "item": self.item,
            "chars": self.chars,
            "head": self.head,
        }


def longest(*lists: list[LongText]) -> list[LongText]:
    """The longest distinct texts of lists given in corpus order: ties and repeats go to the
    earliest, so any split of a corpus gives the same list."""
    seen: set[int] = set()
    out = []
    for t in sorted((t for texts in lists for t in texts), key=lambda t: (-t.tokens, t.input, t.line)):
        if t.key not in seen:
            seen.add(t.key)
            out.append(t)
    return out[:LONGEST_PER_FIELD]


@dataclass
class InputStats:
    """What a breakdown per input needs: rows read, drops by reason, length histograms."""

    read: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    hists: dict[str, LengthHistogram] = field(
        default_factory=lambda: {f: LengthHistogram() for f in TEXT_FIELDS}
    )

    def __iadd__(self, later: InputStats) -> InputStats:
        self.read += later.read
        self.dropped.update(later.dropped)
        for f in TEXT_FIELDS:
            self.hists[f] = self.hists[f] + later.hists[f]
        return self


@dataclass
class InputCount:
    rows: int = 0  # non-blank lines (or Parquet rows) read
    blank: int = 0


@dataclass
class KeyPresence:
    """Of one input's kept rows: how many carry each optional key that FlagEmbedding reads
    (``prompt``, ``pos_scores``, ``neg_scores``), and the first lines that lack it."""

    rows: int = 0
    have: Counter[str] = field(default_factory=Counter)
    lacking: dict[str, list[int]] = field(default_factory=dict)

    def __iadd__(self, later: KeyPresence) -> KeyPresence:
        self.rows += later.rows
        self.have.update(later.have)
        for key, lines in later.lacking.items():
            mine = self.lacking.setdefault(key, [])
            mine.extend(lines[: EXAMPLES_PER_REASON - len(mine)])
        return self


@dataclass
class ScanStats:
    read: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)  # texts removed
    repaired_rows: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    hists: dict[str, LengthHistogram] = field(default_factory=lambda: {f: LengthHistogram() for f in FIELDS})
    # distinct texts of kept rows per field, and passage (pos or neg): known only for the whole
    # corpus, from the driver's table of texts (see engine/driver.py), never merged
    unique: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Example]] = field(default_factory=dict)  # the first few, in corpus order
    inputs: dict[int, InputCount] = field(default_factory=dict)  # by position among the inputs
    longest: dict[str, list[LongText]] = field(default_factory=dict)  # per text field
    by_input: dict[str, InputStats] = field(default_factory=dict)  # by the input's path
    chars: Counter[str] = field(default_factory=Counter)  # characters of the counted texts, per text field
    presence: dict[int, KeyPresence] = field(default_factory=dict)  # by input, of kept rows

    def example(self, reason: str, source: str, line: int, detail: str) -> None:
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(Example(source, line, detail))

    def __iadd__(self, later: ScanStats) -> ScanStats:
        """Add the stats of a later part of the corpus (order matters only for examples)."""
        self.read += later.read
        self.dropped.update(later.dropped)
        self.repaired.update(later.repaired)
        self.repaired_rows.update(later.repaired_rows)
        self.warnings.update(later.warnings)
        self.chars.update(later.chars)
        for f in FIELDS:
            self.hists[f] = self.hists[f] + later.hists[f]
        for reason, examples in later.examples.items():
            for e in examples:
                self.example(reason, e.source, e.line, e.detail)
        for i, count in later.inputs.items():
            mine = self.inputs.setdefault(i, InputCount())
            mine.rows += count.rows
            mine.blank += count.blank
        for f, texts in later.longest.items():
            self.longest[f] = longest(self.longest.get(f, []), texts)
        for path, part in later.by_input.items():
            mine_of_path = self.by_input.setdefault(path, InputStats())
            mine_of_path += part
        for i, presence in later.presence.items():
            self.presence.setdefault(i, KeyPresence()).__iadd__(presence)
        return self

    def __add__(self, later: ScanStats) -> ScanStats:
        out = copy.deepcopy(self)
        out += later
        return out

    @property
    def kept(self) -> int:
        return self.read - sum(self.dropped.values())

    def unique_counts(self) -> dict[str, int]:
        return {f: self.unique.get(f, 0) for f in (*TEXT_FIELDS, "passage")}
