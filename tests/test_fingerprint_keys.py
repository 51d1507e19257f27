"""Fingerprints are keyed per run: an input cannot be built to make two pieces share one.

The words cut fingerprints a word of up to 8 bytes by its bytes (no collision can exist), and a
longer one as two polynomials modulo primes, in bases derived from the run's secret (``RunKey``). Whoever knows the bases can build a collision (here, by lattice
reduction, as an attacker would); a run draws its own, so the same words do not collide there,
and the scan counts each word as the tokenizer does.
"""

from __future__ import annotations

import json

from conftest import write_lines
from hypothesis import given, settings
from hypothesis import strategies as st

from lenprof import scan
from lenprof.count.fast.cuts import _LONG_WORD, Words
from lenprof.count.hashing import PRIMES, RunKey
from lenprof.engine.plan import WorkerSetup
from lenprof.engine.pool import worker_env

FIXED = RunKey(b"a fixed test key")


def fingerprint(word: str, key: RunKey) -> int:
    """The oracle: a word of 8 bytes or fewer is its bytes; a longer one, sum(byte_i * base**i)
    mod p for each prime, as two 32-bit halves, with the top bit set."""
    if len(word) <= 8:
        return int.from_bytes(word.encode(), "little")
    halves = [
        sum(b * pow(base, i, p) for i, b in enumerate(word.encode())) % p
        for base, p in zip(key.bases, PRIMES, strict=True)
    ]
    return 1 << 63 | halves[0] << 32 | halves[1]


def colliding_words(key: RunKey, length: int = 20) -> tuple[str, str]:
    """Two different lower-case words with the same fingerprint under ``key``: a short vector d
    with sum(d_i * base**i) = 0 modulo both primes, found by LLL, spelt as two words whose
    letters differ by d."""
    from sympy import ZZ
    from sympy.polys.matrices import DomainMatrix

    (b1, b2), (p1, p2), weight = key.bases, PRIMES, 1 << 50
    rows = [
        [int(i == j) for j in range(length)] + [weight * pow(b1, i, p1), weight * pow(b2, i, p2)]
        for i in range(length)
    ]
    rows += [[0] * length + [weight * p1, 0], [0] * length + [0, weight * p2]]
    reduced = DomainMatrix([[ZZ(x) for x in r] for r in rows], (length + 2, length + 2), ZZ).lll()
    for row in reduced.to_list():
        d = [int(x) for x in row[:length]]
        if row[length:] == [0, 0] and any(d) and max(map(abs, d)) <= 25:
            first = "".join(chr(ord("a") + max(0, x)) for x in d)
            second = "".join(chr(ord("a") + max(0, -x)) for x in d)
            return first, second
    raise AssertionError("no short vector found")


def prints_of(words: list[str], key: RunKey) -> list[int]:
    return Words(words, None, key).pieces.prints.tolist()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet="abcxyzABC019", min_size=1, max_size=_LONG_WORD), min_size=1, max_size=30),
    st.binary(min_size=16, max_size=16),
)
def test_a_words_fingerprint_is_its_keyed_polynomial(words, secret):
    key = RunKey(secret)
    assert prints_of(words, key) == [fingerprint(w, key) for w in words]


def test_a_collision_built_for_one_key_is_no_collision_in_a_run(tmp_path, tok, oracle):
    first, second = colliding_words(FIXED)
    assert first != second and len(first) == len(second) == 20
    # the attack works against a known key: the cut gives both words one fingerprint there
    assert prints_of([first, second], FIXED)[0] == prints_of([first, second], FIXED)[1]
    # each run draws its own key: the same words have two fingerprints
    run = RunKey()
    assert len(set(prints_of([first, second], run))) == 2
    # and a scan counts each as the tokenizer does, whichever comes first
    exact = oracle([f"{first} is it", f"{second} is it"])
    assert exact[0] != exact[1]  # a shared fingerprint would give one word the other's count
    rows = [
        {"query": f"{w} is it {i}", "pos": [f"{v} is it"], "neg": ["no"]}
        for i in range(3)
        for w, v in [(first, second), (second, first)]
    ]
    lines = [json.dumps(r).encode() for r in rows]
    profile = scan([str(write_lines(tmp_path / "c.jsonl", lines))], tokenizer=tok)
    assert profile.samples.kept == 6, profile.samples
    assert profile.histograms["pos"].to_sparse() == {"lengths": sorted(exact), "counts": [3, 3]}


def test_each_run_has_its_own_key_and_its_workers_share_its_hash_seed():
    a, b = WorkerSetup.__dataclass_fields__["key"].default_factory(), RunKey()  # type: ignore[misc]
    assert a != b and a.bases != b.bases and a.hash_seed != b.hash_seed
    assert 0 <= int(a.hash_seed) < 1 << 32
    assert "secret" not in repr(a) and a.secret.hex() not in repr(a)
    setup = WorkerSetup.__new__(WorkerSetup)
    object.__setattr__(setup, "key", a)
    assert worker_env(setup)["PYTHONHASHSEED"] == a.hash_seed
