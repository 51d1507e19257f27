"""What one partition of fingerprints decides, out of core (``external.py``): pure functions of
its records, run by the workers (``ShardWork.decide``) so that the sorts are spread over them
as the shards are, and the driver only reads partitions from its spill and writes what comes
back.

Every record of a fingerprint is in the partition that decides it, so each decision is local:

- :func:`duplicates`: sorted by (fingerprint, shard, position), a row whose key came before is
  a duplicate; its place, and the first ones with the shard that held the key first;
- :func:`owners`: a shard counts a distinct text when it is the first shard that holds it;
- :func:`joined`: every counted text's lengths, onto each shard that holds the text;
- :func:`unique_fields`: the fields each text was kept in, added up by combination.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from lenprof.engine.decisions import unique_counts
from lenprof.stats.scan_stats import EXAMPLES_PER_REASON

KEYS = np.dtype([("fp", "<u8"), ("shard", "<u4"), ("pos", "<u4")])  # a row's key and its place
TEXTS = np.dtype([("fp", "<u8"), ("shard", "<u4")])  # a distinct text of a shard
FIELDS = np.dtype([("fp", "<u8"), ("bits", "u1")])  # the fields a text was kept in
PLACE = np.dtype([("shard", "<u4"), ("pos", "<u4")])  # a duplicate row
OWNED = np.dtype([("shard", "<u4"), ("owned", "?")])  # a shard's text: does the shard count it

First = tuple[int, int, int, int]  # a first duplicate: (shard, position, key, earlier shard)


@dataclass
class Decided:
    """What a worker sends back for one group of a partition, the ``index``-th sent."""

    index: int
    value: Any


def records(dtype: np.dtype, **columns: Any) -> np.ndarray:
    n = len(next(iter(columns.values())))
    out = np.empty(n, dtype)
    for name, values in columns.items():
        out[name] = values
    return out


def first_of_each(fp: np.ndarray) -> np.ndarray:
    """For sorted fingerprints: True at the first of each run of equal ones."""
    first = np.ones(len(fp), bool)
    first[1:] = fp[1:] != fp[:-1]
    return first


def duplicates(r: np.ndarray) -> tuple[np.ndarray, list[First]]:
    """For ``KEYS`` records holding every record of their keys: the duplicate rows' places,
    sorted by (shard, position), and the first of them in corpus order (as many as a report
    shows) with the shard that held their key first."""
    r = r[np.lexsort((r["pos"], r["shard"], r["fp"]))]
    first = first_of_each(r["fp"])
    earlier = r["shard"][np.maximum.accumulate(np.where(first, np.arange(len(r)), 0))][~first]
    d = r[~first]
    order = np.lexsort((d["pos"], d["shard"]))
    d, earlier = d[order], earlier[order]
    head = slice(0, EXAMPLES_PER_REASON)
    found = zip(
        d["shard"][head].tolist(),
        d["pos"][head].tolist(),
        d["fp"][head].tolist(),
        earlier[head].tolist(),
        strict=True,
    )
    return records(PLACE, shard=d["shard"], pos=d["pos"]), list(found)


def owners(t: np.ndarray) -> np.ndarray:
    """For ``TEXTS`` records holding every record of their texts: sorted by (shard, text), does
    the shard count the text (no earlier shard holds it)."""
    t = t[np.lexsort((t["shard"], t["fp"]))]
    order = np.lexsort((t["fp"], t["shard"]))
    return records(OWNED, shard=t["shard"][order], owned=first_of_each(t["fp"])[order])


def joined(t: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Sorted by (shard, text), each ``TEXTS`` record's lengths from ``counted`` (a fingerprint
    and its lengths, once per text of ``t``)."""
    counted = counted[np.argsort(counted["fp"])]
    at = np.searchsorted(counted["fp"], t["fp"])
    assert (counted["fp"][np.minimum(at, len(counted) - 1)] == t["fp"]).all(), "every text was counted"
    order = np.lexsort((t["fp"], t["shard"]))
    out = np.dtype([("shard", "<u4"), ("len", "<u4", counted.dtype["len"].shape)])
    return records(out, shard=t["shard"][order], len=counted["len"][at[order]])


def unique_fields(f: np.ndarray) -> Counter[str]:
    """For ``FIELDS`` records holding every record of their texts: how many texts were kept in
    each combination of fields."""
    f = f[np.argsort(f["fp"], kind="stable")]
    return Counter(unique_counts(np.bitwise_or.reduceat(f["bits"], np.flatnonzero(first_of_each(f["fp"])))))


STEPS = {"duplicates": duplicates, "owners": owners, "joined": joined, "unique_fields": unique_fields}
