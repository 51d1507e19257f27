"""From a length histogram and the model's limit to ``query_max_len`` / ``passage_max_len``.

The recommendation is the ``coverage`` percentile rounded up to a multiple of ``multiple_of``
(tensor-core friendly; FlagEmbedding pads to a multiple of 8), never above the model's cap.
Each candidate cut comes with its cost: how many texts it truncates and how many tokens are lost,
and what it costs a training step: padded tokens (``count × max_len``: memory and feed-forward
work grow with them) and the sum of squared lengths (``Σ min(L, max_len)²``: attention grows with
the square of a sequence's length, so doubling a cut can quadruple that part).

    >>> from lenprof.stats.histogram import LengthHistogram
    >>> h = LengthHistogram.from_lengths([10] * 95 + [40] * 5)
    >>> recommend_length(h, coverage=95, multiple_of=8, cap=512)
    16
"""

from __future__ import annotations

from dataclasses import dataclass

from lenprof.stats.histogram import LengthHistogram

CANDIDATES = ("p90", "p95", "p99", "max")
TARGETS = ("query", "passage")


class NothingToRecommend(ValueError):
    """No row was kept, so there is no length to recommend."""


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def recommend_length(hist: LengthHistogram, coverage: float, multiple_of: int, cap: int | None) -> int | None:
    p = hist.percentile(coverage)
    if p is None:
        return None
    wanted = round_up(p, multiple_of)
    return min(wanted, cap) if cap else wanted


@dataclass(frozen=True)
class Candidate:
    """What cutting a field's texts at ``max_len`` costs."""

    name: str
    max_len: int
    truncated: int
    tokens_lost: int
    count: int
    tokens: int
    capped: bool  # the cut was lowered to the model's cap
    squares: int = 0  # Σ min(L, max_len)² over the texts: the attention cost, exact

    @property
    def padded_tokens(self) -> int:
        """Tokens when every text is padded to the cut: the memory and feed-forward cost."""
        return self.count * self.max_len

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "max_len": self.max_len,
            "capped": self.capped,
            "truncated": self.truncated,
            "truncated_share": round(self.truncated / self.count, 6) if self.count else 0.0,
            "tokens_lost": self.tokens_lost,
            "tokens_lost_share": round(self.tokens_lost / self.tokens, 6) if self.tokens else 0.0,
            "padded_tokens": self.padded_tokens,
            "squared_lengths": self.squares,
        }


def candidates(hist: LengthHistogram, recommended: int | None, cap: int | None) -> list[Candidate]:
    """The cost of the usual cuts: p90, p95, p99, max, the cap, and the recommendation."""
    if hist.count == 0:
        return []
    cuts: list[tuple[str, int]] = [
        (name, hist.percentile(name[1:]) if name != "max" else hist.max) for name in CANDIDATES
    ]  # type: ignore[misc]
    if cap:
        cuts.append(("cap", cap))
    if recommended is not None:
        cuts.append(("recommended", recommended))
    return [
        cost_at(hist, name, min(value, cap) if cap else value, bool(cap and value > cap))
        for name, value in cuts
    ]


def cost_at(hist: LengthHistogram, name: str, max_len: int, capped: bool = False) -> Candidate:
    """What cutting ``hist``'s texts at ``max_len`` costs."""
    cost = hist.cut_cost(max_len)
    return Candidate(
        name,
        max_len,
        cost["truncated"],
        cost["tokens_lost"],
        hist.count,
        hist.tokens,
        capped,
        hist.squared_lengths(max_len),
    )


@dataclass(frozen=True)
class Recommendation:
    """``query_max_len`` and ``passage_max_len`` with how they were chosen and what each cut costs."""

    coverage: float
    multiple_of: int
    cap: int | None
    query_max_len: int | None
    passage_max_len: int | None
    cap_binds: dict[str, bool]
    candidates: dict[str, list[Candidate]]

    @classmethod
    def of(
        cls, hists: dict[str, LengthHistogram], coverage: float, multiple_of: int, cap: int | None
    ) -> Recommendation:
        chosen, binds, cands = {}, {}, {}
        for target in TARGETS:
            hist = hists[target]
            chosen[target] = recommend_length(hist, coverage, multiple_of, cap)
            p = hist.percentile(coverage)
            binds[target] = bool(cap and p is not None and round_up(p, multiple_of) > cap)
            cands[target] = candidates(hist, chosen[target], cap)
        return cls(coverage, multiple_of, cap, chosen["query"], chosen["passage"], binds, cands)

    def lengths(self) -> tuple[int, int]:
        """(query_max_len, passage_max_len); raises :class:`NothingToRecommend` without rows."""
        if self.query_max_len is None or self.passage_max_len is None:
            raise NothingToRecommend("no rows were kept, so there are no lengths to recommend")
        return self.query_max_len, self.passage_max_len

    def chosen(self, target: str) -> Candidate:
        return next(c for c in self.candidates[target] if c.name == "recommended")

    def to_dict(self) -> dict:
        return {
            "coverage": self.coverage,
            "multiple_of": self.multiple_of,
            "cap": self.cap,
            "query_max_len": self.query_max_len,
            "passage_max_len": self.passage_max_len,
            "cap_binds": dict(self.cap_binds),
            "candidates": {t: [c.to_dict() for c in self.candidates[t]] for t in TARGETS},
        }
