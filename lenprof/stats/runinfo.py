"""How a scan ran (``Profile.run``): the engine, its workers and shards, timings, how the texts
were counted. None of it is a result: two scans of the same data give the same profile whatever
these say.

A field is None when the profile was written before lenprof recorded it (``run`` of an early
profile holds only workers and timings): ``to_dict`` leaves it out, so a profile read back is
written back as it was. The JSON keys, in their order:

>>> RunInfo(engine="local", workers=1, shards=2, seconds=0.2, tokenize_s=0.1, filled={},
...         not_written=(), texts_tokenized=283,
...         counting=Counting("chunks:bert-wordpiece", 1.0, 283)).to_dict()  # doctest: +NORMALIZE_WHITESPACE
{'engine': 'local', 'workers': 1, 'shards': 2, 'seconds': 0.2, 'tokenize_s': 0.1, 'filled': {},
 'not_written': [], 'texts_tokenized': 283,
 'counting': {'path': 'chunks:bert-wordpiece', 'fast_share': 1.0, 'self_checked': 283}}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Counting:
    """How the texts were counted (see ``count/fast/``)."""

    path: str  # "tokenizer", or "chunks:<family>" when the piece caches counted
    fast_share: float  # share of the texts counted through the piece caches, to 4 places
    self_checked: int  # texts the fast count checked against the tokenizer
    fast_path_failed: str | None = None  # why every text was counted again by the tokenizer

    def to_dict(self) -> dict:
        d: dict = {"path": self.path, "fast_share": self.fast_share, "self_checked": self.self_checked}
        if self.fast_path_failed:
            d["fast_path_failed"] = self.fast_path_failed
        return d


@dataclass(frozen=True)
class Against:
    """``--against``: the evaluation files compared with, their rows, and whether leaks were dropped."""

    files: tuple[str, ...]
    rows: int
    drop_leaks: bool

    def to_dict(self) -> dict:
        return {"files": list(self.files), "rows": self.rows, "drop_leaks": self.drop_leaks}


@dataclass(frozen=True)
class RunInfo:
    """The run record of one scan, in the order of its JSON keys."""

    engine: str | None = None  # "local" or "ray"
    workers: int | None = None  # worker processes used (``--workers`` may be lowered)
    shards: int | None = None
    seconds: float | None = None  # wall time of the scan
    tokenize_s: float | None = None  # time spent in the tokenizer, summed over workers
    against: Against | None = None  # only with --against
    filled: dict[str, dict[str, int]] | None = None  # cleaned file -> key -> rows it was filled on
    not_written: tuple[str, ...] | None = None  # cleaned files left out: no row of their input kept
    prompted: int | None = (
        None  # kept rows with their own prompt: measured with it (see ScanOptions.query_text)
    )
    texts_tokenized: int | None = None
    counting: Counting | None = None
    out_of_core: bool | None = None  # True: decided over sorted runs on disk (--memory-budget)
    texts_embedded: int | None = None  # scan --model: distinct texts embedded by the base model,
    embeddings_cached: int | None = None  # of them, those found in the disk cache of earlier scans

    def to_dict(self) -> dict:
        d = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, (Against, Counting)):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):  # filled: a copy, as the profile's own stays frozen
                value = {k: dict(v) for k, v in value.items()}
            d[f.name] = value
        return d
