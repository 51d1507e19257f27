"""Fingerprints are keyed per run: an input cannot be built to make two pieces share one.

The words cut fingerprints a word of up to 8 bytes by its bytes (no collision can exist), and a
longer one as two polynomials modulo primes, in bases derived from the run's secret (``RunKey``). Whoever knows the bases can build a collision (here, by lattice
reduction, as an attacker would); a run draws its own, so the same words do not collide there,
and the scan counts each word as the tokenizer does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import write_lines
from hypothesis import given, settings
from hypothesis import strategies as st

from lenprof import scan
from lenprof.count.fast.cuts import _LONG_WORD, Words
from lenprof.engine.plan import WorkerSetup
from lenprof.hashing import PRIMES, RunKey, fingerprints, row_fingerprints

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
    return Words(words, None, key).view(False).prints.tolist()


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


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 as its paper defines it (Aumasson and Bernstein, 2012), in plain Python: the
    oracle the keyed fingerprints are held against."""
    mask = (1 << 64) - 1

    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & mask

    def rounds(v: list[int], n: int) -> None:
        for _ in range(n):
            v[0] = (v[0] + v[1]) & mask
            v[1] = rotl(v[1], 13) ^ v[0]
            v[0] = rotl(v[0], 32)  # noqa: E702
            v[2] = (v[2] + v[3]) & mask
            v[3] = rotl(v[3], 16) ^ v[2]  # noqa: E702
            v[0] = (v[0] + v[3]) & mask
            v[3] = rotl(v[3], 21) ^ v[0]  # noqa: E702
            v[2] = (v[2] + v[1]) & mask
            v[1] = rotl(v[1], 17) ^ v[2]
            v[2] = rotl(v[2], 32)  # noqa: E702

    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]
    tail = len(data) % 8
    blocks = [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data) - tail, 8)]
    blocks.append(((len(data) & 0xFF) << 56) | int.from_bytes(data[len(data) - tail :], "little"))
    for m in blocks:
        v[3] ^= m
        rounds(v, 2)
        v[0] ^= m
    v[2] ^= 0xFF
    rounds(v, 4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def test_the_oracle_is_siphash_2_4():
    # the paper's test vectors: key 00..0f, messages 00..(n-1)
    key = bytes(range(16))
    assert siphash24(key, b"") == 0x726FDB47DD0E0E31
    assert siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=8), st.binary(min_size=16, max_size=16))
def test_strings_and_rows_are_siphash_of_their_bytes_under_the_run_key(texts, secret):
    key = RunKey(secret)
    expected = [siphash24(secret, t.encode("utf-8", "surrogatepass")) for t in texts]
    assert fingerprints(texts, key).tolist() == expected
    row = b"".join(e.to_bytes(8, "little") for e in expected)
    assert row_fingerprints([tuple(texts)], key).tolist() == [siphash24(key.derive(b"rows"), row)]


def test_each_run_has_its_own_key_and_every_process_holding_it_agrees():
    a, b = WorkerSetup.__dataclass_fields__["key"].default_factory(), RunKey()  # type: ignore[misc]
    assert a != b and a.bases != b.bases and a.derive(b"rows") != b.derive(b"rows")
    assert "secret" not in repr(a) and a.secret.hex() not in repr(a)
    texts = ["中", "-N", "query", "a\ud800", "é" * 100]
    here = fingerprints(texts, a).tolist()
    assert here != fingerprints(texts, b).tolist()
    # another process, its own string hash seeded otherwise, gets the same fingerprints: nothing
    # rests on the environment
    code = (
        "import sys, json; from lenprof.hashing import RunKey, fingerprints; "
        "print(json.dumps(fingerprints(json.loads(sys.argv[2]), RunKey(bytes.fromhex(sys.argv[1]))).tolist()))"
    )
    for seed in ("0", "12345", "random"):
        out = subprocess.run(
            [sys.executable, "-c", code, a.secret.hex(), json.dumps(texts)],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert json.loads(out.stdout) == here
