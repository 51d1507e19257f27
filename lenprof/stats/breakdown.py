"""A profile per input, for a scan of several: a folder of tasks whose lengths differ widely
deserves more than one number.

Each input keeps exact histograms of its kept texts (three per input: 8 bytes per length up to
its longest text), so its percentiles and the lengths it alone would need are exact, and re-derive
with the profile's settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from lenprof.stats.histogram import LengthHistogram
from lenprof.stats.recommend import Recommendation
from lenprof.stats.scan_stats import FIELDS, TEXT_FIELDS, InputStats


@dataclass(frozen=True)
class InputBreakdown:
    """One input's rows, drops by reason, lengths and the max lengths it alone would need."""

    path: str
    read: int
    dropped: dict[str, int]
    histograms: dict[str, LengthHistogram]  # query, pos, neg and passage
    recommendation: Recommendation

    @classmethod
    def of(
        cls,
        path: str,
        read: int,
        dropped: dict[str, int],
        hists: dict[str, LengthHistogram],
        coverage: float,
        multiple_of: int,
        cap: int | None,
    ) -> InputBreakdown:
        hists = {f: hists[f] for f in TEXT_FIELDS}
        hists["passage"] = hists["pos"] + hists["neg"]
        return cls(path, read, dropped, hists, Recommendation.of(hists, coverage, multiple_of, cap))

    @classmethod
    def of_stats(
        cls, path: str, stats: InputStats, reasons: tuple[str, ...], rec: Recommendation
    ) -> InputBreakdown:
        dropped = {r: stats.dropped[r] for r in reasons if stats.dropped[r]}
        return cls.of(path, stats.read, dropped, stats.hists, rec.coverage, rec.multiple_of, rec.cap)

    @property
    def kept(self) -> int:
        return self.read - sum(self.dropped.values())

    def recommend(self, coverage: float, multiple_of: int, cap: int | None) -> InputBreakdown:
        return InputBreakdown.of(
            self.path, self.read, self.dropped, self.histograms, coverage, multiple_of, cap
        )

    def to_dict(self) -> dict:
        rec = self.recommendation
        return {
            "path": self.path,
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "query_max_len": rec.query_max_len,
            "passage_max_len": rec.passage_max_len,
            "fields": {
                f: {
                    **self.histograms[f].summary(),
                    **({"histogram": self.histograms[f].to_sparse()} if f in TEXT_FIELDS else {}),
                }
                for f in FIELDS
            },
        }
