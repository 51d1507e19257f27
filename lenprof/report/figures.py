"""What a field's figure shows, as data: the axis, the bars, the overflow bar, the cuts.

One outlier must not decide the axis. A corpus with p99 = 298 tokens and one text of 19,476
drawn on a linear axis to 19,476 puts 99% of the texts into one bar; so the axis ends at the
*bulk end* (the field's own p99, or the recommended cut when that lies within a quarter past it),
or at the longest text within a quarter past that; every longer text is counted in one overflow
bar to its right, and cuts past the axis are named in the legend. Without such texts the axis
simply runs to the longest text and there is no overflow bar. :func:`figure_data` decides this from the
histogram alone; ``html.py`` draws it, and writes the same data into the page so that a test
(or a reader) can check what the figure shows.

    >>> from lenprof.stats.histogram import LengthHistogram
    >>> from lenprof.stats.recommend import candidates
    >>> h = LengthHistogram.from_lengths(list(range(1, 101)) * 10 + [20_000])
    >>> d = figure_data("pos", h, candidates(h, 104, 512), 104)
    >>> d.axis_max, d.overflow, d.longest, round(d.bulk_share, 2)  # p99 = 100 spans 89% of the axis
    (104, 1, 20000, 0.89)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lenprof.stats.histogram import LengthHistogram
from lenprof.stats.recommend import Candidate

MAX_BARS = 100
OVERFLOW_SLACK = 1.25  # the axis runs to the longest text when it is at most this far past the bulk


@dataclass(frozen=True)
class FigureData:
    """A field's histogram on an axis from 0 to ``axis_max`` tokens, in bars ``bin_width`` wide,
    and ``overflow`` texts longer than ``axis_max`` in one bar beyond it (drawn at
    ``overflow_at``); ``axis_end`` is where the plot's x axis ends."""

    field: str
    count: int
    axis_max: int
    bin_width: int
    bars: list[tuple[int, int]]  # (first length of the bar, texts in it)
    overflow: int
    longest: int
    cuts: dict[str, int]  # name -> max_len, as the table lists them
    percentiles: dict[str, int]  # the field's own p90/p95/p99 (what the cuts are made of)

    @property
    def overflow_at(self) -> int:
        return self.axis_max + 2 * self.bin_width

    @property
    def axis_end(self) -> int:
        return self.axis_max + (4 * self.bin_width if self.overflow else self.bin_width)

    @property
    def bulk_share(self) -> float:
        """The share of the axis that p99 of the texts spans: near 1 whatever the tail."""
        return self.percentiles["99"] / self.axis_end if self.axis_end else 0.0

    def caption(self) -> str:
        if not self.overflow:
            return f"The axis covers every text (the longest has {self.longest} tokens)."
        texts = "1 longer text is" if self.overflow == 1 else f"{self.overflow} longer texts are"
        return (
            f"The axis runs to {self.axis_max} tokens (p99 of {self.field}, or the recommended cut when near, "
            "and the texts within a quarter past it); "
            f"the {texts} counted in the overflow bar at the right (the longest has {self.longest} tokens)."
        )

    def cut_label(self, name: str, max_len: int) -> str:
        """The legend's words for a cut: the field's own value first, then the cut when the model's
        cap lowered it. A field whose longest text has 3,961 tokens reads "max 3,961, capped to 512",
        never "max 512"; a cut past the axis says so (it is drawn at the axis' end).

            >>> d = figure_data("neg", LengthHistogram.from_lengths([10] * 99 + [3961]), [], 16)
            >>> d.cut_label("max", 512), d.cut_label("p90", 10)
            ('max 3,961, capped to 512 (beyond the axis)', 'p90 10')
        """
        own = {"max": self.longest, **{f"p{p}": v for p, v in self.percentiles.items()}}.get(name, max_len)
        label = f"{name} {own:,}" if own == max_len else f"{name} {own:,}, capped to {max_len:,}"
        return label + (" (beyond the axis)" if max_len > self.axis_max else "")

    def overflow_label(self) -> str:
        """What the overflow bar holds, in words under the histogram's title."""
        texts = "1 text" if self.overflow == 1 else f"{self.overflow:,} texts"
        return f"orange bar: {texts} over {self.axis_max:,} tokens (longest {self.longest:,})"

    def to_dict(self) -> dict:
        return {
            "field": self.field,
            "count": self.count,
            "axis_max": self.axis_max,
            "axis_end": self.axis_end,
            "bin_width": self.bin_width,
            "bars": [list(b) for b in self.bars],
            "overflow": self.overflow,
            "longest": self.longest,
            "cuts": self.cuts,
            "percentiles": self.percentiles,
            "bulk_share": round(self.bulk_share, 4),
            "legend": [self.cut_label(name, max_len) for name, max_len in self.cuts.items()],
        }


def figure_data(field: str, hist: LengthHistogram, cuts: list[Candidate], chosen: int) -> FigureData:
    """The figure of one field (its histogram has at least one text)."""
    longest = hist.max or 0
    p99 = hist.percentile(99) or 0
    bulk_end = max(p99, chosen) if chosen <= OVERFLOW_SLACK * p99 else max(p99, 1)
    near = np.flatnonzero(hist.counts[: int(OVERFLOW_SLACK * bulk_end) + 1])
    axis_max = max(bulk_end, int(near[-1]) if len(near) else 0)  # the longest text near the bulk
    width = max(1, -(-(axis_max + 1) // MAX_BARS))
    counts = hist.counts[: axis_max + 1]
    starts = np.arange(0, len(counts), width)
    binned = np.add.reduceat(counts, starts) if len(counts) else np.zeros(0, dtype=np.int64)
    return FigureData(
        field=field,
        count=hist.count,
        axis_max=axis_max,
        bin_width=width,
        bars=[(int(s), int(n)) for s, n in zip(starts, binned, strict=True) if n],
        overflow=int(hist.counts[axis_max + 1 :].sum()),
        longest=longest,
        cuts={c.name: c.max_len for c in cuts},
        percentiles={p: hist.percentile(p) for p in ("90", "95", "99")},  # type: ignore[misc]
    )
