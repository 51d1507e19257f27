from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenprof.hashing import FingerprintMap
from lenprof.stats.histogram import PERCENTILES, LengthHistogram
from lenprof.stats.recommend import Recommendation, candidates, recommend_length

lengths = st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=400)


@given(lengths, st.sampled_from([0, 1, 50, 90, 95, 99, 99.9, 100, 33.3]))
def test_percentile_matches_numpy_inverted_cdf(values, p):
    expected = int(np.percentile(np.array(values), p, method="inverted_cdf"))
    assert LengthHistogram.from_lengths(values).percentile(p) == expected


@given(lengths, lengths)
def test_histograms_merge_like_concatenated_data(a, b):
    assert LengthHistogram.from_lengths(a) + LengthHistogram.from_lengths(b) == LengthHistogram.from_lengths(
        a + b
    )


@given(lengths)
def test_summary_and_sparse_round_trip(values):
    h = LengthHistogram.from_lengths(values)
    s = h.summary()
    assert (s["count"], s["min"], s["max"], s["tokens"]) == (
        len(values),
        min(values),
        max(values),
        sum(values),
    )
    assert s["mean"] == pytest.approx(np.mean(values), abs=1e-4)
    assert set(s["percentiles"]) == set(PERCENTILES)
    assert LengthHistogram.from_sparse(**h.to_sparse()) == h


@given(lengths, st.integers(min_value=0, max_value=3100))
def test_cut_cost_counts_truncated_texts_and_lost_tokens(values, cut):
    cost = LengthHistogram.from_lengths(values).cut_cost(cut)
    assert cost == {
        "truncated": sum(v > cut for v in values),
        "tokens_lost": sum(max(0, v - cut) for v in values),
    }
    assert LengthHistogram.from_lengths(values).squared_lengths(cut) == sum(min(v, cut) ** 2 for v in values)


def test_empty_histogram_has_no_statistics():
    h = LengthHistogram()
    assert (h.count, h.min, h.max, h.mean, h.percentile(95)) == (0, None, None, None, None)
    assert recommend_length(h, 95, 8, 512) is None and candidates(h, None, 512) == []


def test_recommendation_rounds_up_and_caps():
    h = LengthHistogram.from_lengths(list(range(1, 1001)))  # p95 = 950
    assert recommend_length(h, 95, 8, None) == 952
    assert recommend_length(h, 95, 8, 512) == 512
    assert recommend_length(h, 50, 64, 512) == 512  # p50 = 500 -> 512
    rec = Recommendation.of({"query": h, "passage": LengthHistogram.from_lengths([3, 4])}, 95, 8, 512)
    assert rec.query_max_len == 512 and rec.passage_max_len == 8
    assert rec.cap_binds == {"query": True, "passage": False}
    by_name = {c.name: c.to_dict() for c in rec.candidates["query"]}
    assert by_name["p95"] == {
        "name": "p95", "max_len": 512, "capped": True, "truncated": 488,
        "truncated_share": 0.488, "tokens_lost": sum(range(1, 489)), "tokens_lost_share": round(sum(range(1, 489)) / 500500, 6),
        "padded_tokens": 1000 * 512, "squared_lengths": sum(min(n, 512) ** 2 for n in range(1, 1001)),
    }  # fmt: skip
    assert by_name["p90"]["max_len"] == 512 and by_name["max"]["capped"]


@given(st.lists(st.lists(st.integers(0, 50), max_size=30), max_size=8))
def test_fingerprint_map_claims_and_numbers_like_a_python_dict(batches):
    claimed, numbered, first, numbers = FingerprintMap(), FingerprintMap(), {}, {}
    for b, batch in enumerate(batches):
        expected = []
        for k in batch:
            expected.append(k not in first)
            first.setdefault(k, b)
        assert claimed.claim(np.array(batch, dtype=np.uint64), b).tolist() == expected
        keys = sorted(set(batch))
        new = [k not in numbers for k in keys]
        for k in keys:
            numbers.setdefault(k, len(numbers))
        got_new, got = numbered.number(np.array(keys, dtype=np.uint64))
        assert got_new.tolist() == new and got.tolist() == [numbers[k] for k in keys]
    keys = np.arange(52, dtype=np.uint64)
    assert claimed.get(keys).tolist() == [first.get(k, FingerprintMap.UNKNOWN) for k in range(52)]
    assert len(claimed) == len(first) and len(numbered) == len(numbers)
