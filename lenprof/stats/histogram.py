"""Exact token-length histograms: integer counts per length that merge with ``+``.

A histogram never samples: ``counts[L]`` is how many texts have exactly ``L`` tokens, so every
statistic below (percentiles, truncation at a cut) is exact, and two histograms built over two
halves of a corpus add up to the histogram of the whole (that is what lets workers merge).

    >>> h = LengthHistogram.from_lengths([3, 5, 5, 9])
    >>> h.percentile(50), h.percentile(95), h.max
    (5, 9, 9)
    >>> (h + LengthHistogram.from_lengths([1])).count
    5
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

PERCENTILES: tuple[str, ...] = ("50", "90", "95", "99", "99.9")


@dataclass
class LengthHistogram:
    """``counts[L]`` = number of texts of exactly ``L`` tokens (int64, grown on demand)."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def from_lengths(cls, lengths: Iterable[int] | np.ndarray) -> LengthHistogram:
        h = cls()
        h.add(np.asarray(lengths, dtype=np.int64))
        return h

    @classmethod
    def from_sparse(cls, lengths: list[int], counts: list[int]) -> LengthHistogram:
        """Inverse of :meth:`to_sparse` (the form the JSON profile stores)."""
        dense = np.zeros(max(lengths, default=-1) + 1, dtype=np.int64)
        dense[np.asarray(lengths, dtype=np.int64)] = np.asarray(counts, dtype=np.int64)
        return cls(dense)

    def add(self, lengths: np.ndarray) -> None:
        """Count a batch of lengths in place."""
        if len(lengths) == 0:
            return
        binned = np.bincount(lengths)
        if len(binned) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(binned) - len(self.counts)))
        self.counts[: len(binned)] += binned

    def __add__(self, other: LengthHistogram) -> LengthHistogram:
        n = max(len(self.counts), len(other.counts))
        return LengthHistogram(
            np.pad(self.counts, (0, n - len(self.counts))) + np.pad(other.counts, (0, n - len(other.counts)))
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LengthHistogram):
            return NotImplemented
        return self.to_sparse() == other.to_sparse()

    # --- statistics ---------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    @property
    def tokens(self) -> int:
        """Total tokens over all texts (exact: a Python int)."""
        return int((self.counts * np.arange(len(self.counts), dtype=np.int64)).sum())

    @property
    def min(self) -> int | None:
        nz = np.flatnonzero(self.counts)
        return int(nz[0]) if len(nz) else None

    @property
    def max(self) -> int | None:
        nz = np.flatnonzero(self.counts)
        return int(nz[-1]) if len(nz) else None

    @property
    def mean(self) -> float | None:
        n = self.count
        return self.tokens / n if n else None

    def percentile(self, p: float | str) -> int | None:
        """Smallest length L such that at least p% of texts have at most L tokens.

        Same as ``numpy.percentile(lengths, p, method="inverted_cdf")`` computed exactly. ``p`` is
        read as the decimal it is written as (a float as its shortest repr), so 99.9 means
        999/1000 and not a float near it, and 1e-13 or 97.33333333333333 are exact too.
        """
        n = self.count
        if n == 0:
            return None
        q = Fraction(str(p)) / 100
        if not 0 <= q <= 1:
            raise ValueError(f"percentile must be within 0..100, got {p}")
        if q == 0:
            return self.min
        # cumulative[L] / n >= q  <=>  cumulative[L] >= ceil(q * n), as cumulative[L] is whole.
        # The bound is a Python int (q's denominator may be 10^300), at most n: it fits int64.
        need = -(-q.numerator * n // q.denominator)
        return int(np.searchsorted(np.cumsum(self.counts), need))

    def cut_cost(self, max_len: int) -> dict[str, int]:
        """What truncating every text at ``max_len`` tokens costs: texts cut and tokens lost."""
        over = self.counts[max_len + 1 :]
        lengths = np.arange(max_len + 1, len(self.counts), dtype=np.int64)
        return {
            "truncated": int(over.sum()),
            "tokens_lost": int((over * (lengths - max_len)).sum()),
        }

    def squared_lengths(self, max_len: int | None = None) -> int:
        """Σ min(L, max_len)² over all texts, exact (a Python int): what attention costs, which
        grows with the square of a sequence's length, when each text is cut at ``max_len``.

            >>> LengthHistogram.from_lengths([3, 5, 9]).squared_lengths(4)
            41
        """
        nz = np.flatnonzero(self.counts)
        cut = nz if max_len is None else np.minimum(nz, max_len)
        return int((self.counts[nz].astype(object) * cut.astype(object) ** 2).sum())

    # --- serialisation ------------------------------------------------------------------------

    def to_sparse(self) -> dict[str, list[int]]:
        nz = np.flatnonzero(self.counts)
        return {"lengths": nz.tolist(), "counts": self.counts[nz].tolist()}

    def summary(self) -> dict:
        """count, min, max, mean and the standard percentiles (``unique`` is added by the scan)."""
        mean = self.mean
        return {
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": None if mean is None else round(mean, 4),
            "tokens": self.tokens,
            "percentiles": {p: self.percentile(p) for p in PERCENTILES},
        }
