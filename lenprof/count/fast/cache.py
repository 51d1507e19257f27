"""The piece cache: counts of pieces already met, looked up by fingerprint in sorted arrays."""

from __future__ import annotations

import numpy as np

from lenprof.count.fast.cuts import Pieces
from lenprof.hashing import SPREAD, FingerprintMap, unique

# Pieces a cache holds at most: ~100 MB, and ~4 times that while its sorted arrays merge; a full
# cache starts afresh (time, never results). A smaller --memory-budget lowers it (plan.py).
MAX_CACHED_CHUNKS = 8_000_000
HOT_BITS = 18  # a piece cache's hot table: 2**18 slots, 3 MB for one counter
HOT = 1 << HOT_BITS


class PieceCache:
    """A cut's distinct pieces -> their tokens, specials left out: a column for each counter
    whose cuts are alike (see ``share_caches``), so one lookup a batch serves them all.

    Every piece counted is kept in a ``FingerprintMap``. In front of it, a table of ``HOT``
    slots holds the pieces met last at each slot (picked by the fingerprint's top bits): most
    of a batch's pieces are common ones found there in one gather, and only the rest are
    sorted and looked up in the map.

    Words are kept as written, or lower-cased when every counter sharing them lower-cases
    (fewer distinct words); a lower-casing counter lower-cases the words it counts itself."""

    def __init__(self, width: int = 1, lowercase: bool = False, most: int = MAX_CACHED_CHUNKS):
        self.width, self.lowercase, self.most = width, lowercase, most
        self.map = FingerprintMap(width)
        self._hot: tuple[np.ndarray, np.ndarray] | None = None  # by slot: a fingerprint, a row of counts
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # see ``settle``

    def __len__(self) -> int:
        return len(self.map)

    def _slots(self, prints: np.ndarray) -> np.ndarray:
        if self._hot is None:
            self._hot = (
                np.zeros(HOT, np.uint64),
                np.full((HOT, self.width), FingerprintMap.UNKNOWN, np.uint32),
            )
        with np.errstate(over="ignore"):
            return ((prints * SPREAD) >> np.uint64(64 - HOT_BITS)).astype(np.intp)

    def lookup(self, cut: Pieces, column: int) -> np.ndarray:
        """Each piece's count in ``column`` as the hot table held it when the first counter
        asked, ``UNKNOWN`` where it held another piece or none: read once a batch for every
        column (one gather of rows), so all the counters miss the same pieces (and share
        ``distinct``)."""

        def hot() -> np.ndarray:
            slots = self._slots(cut.prints)
            prints, counts = self._hot  # type: ignore[misc]
            found = counts.take(slots, axis=0)
            found[prints.take(slots) != cut.prints] = FingerprintMap.UNKNOWN
            return found

        return cut.memo.once(("hot", id(self)), hot)[:, column]

    def distinct(self, cut: Pieces, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The distinct fingerprints of the cut's pieces at ``at`` (sorted), a position of each,
        where each piece's is among them, and what the map holds for them (each counter fills
        in its column where it holds ``UNKNOWN``): made once for every counter that misses the
        same pieces."""

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            if len(self.map) > self.most:
                self.map = FingerprintMap(self.width)
            prints, first, inverse = unique(cut.prints[at])
            found = self.map.get(prints)
            self._pending.append((prints, found, (found == FingerprintMap.UNKNOWN).any(axis=1)))
            return prints, at[first], inverse.reshape(-1), found

        return cut.memo.once(("distinct", id(self), at.tobytes()), make)

    def settle(self) -> None:
        """Once every counter has counted a part: the pieces they missed go into the hot table
        (each at its slot; the last one wins a shared slot), and those they counted into the
        map, every column in one write."""
        for prints, found, counted in self._pending:
            self.map.set(prints[counted], found[counted])
            slots = self._slots(prints)
            self._hot[0][slots], self._hot[1][slots] = prints, found  # type: ignore[index]
        self._pending.clear()
