"""A tokenizer no fast count covers is counted by the tokenizer alone, exactly, and the scan
around it wastes no worker's time.

The tokenizer is Qwen2's pipeline (gte-Qwen2, Qwen3-Embedding): Qwen2's ``\\p{L}``/``\\p{N}``
split regex, byte-level BPE, ``<|endoftext|>`` after each text, built by benchmarks/qwen2_bpe.py
and trained on the Chinese of the zh_CN message catalogs, as benchmarks/ builds it, but with
NFKC where Qwen2 has NFC: no fast count covers that (Qwen2's own is covered since issue 24:
test_fastcount_bytelevel.py); the corpus is mined-negatives rows of that Chinese (issue 24
measured the fallback there).
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
from conftest import EXAMPLES, REPO, absent, write_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from lenprof import scan
from lenprof.count.fast.counter import FastCounter
from lenprof.count.load import load_tokenizer
from lenprof.engine.local import LocalEngine
from lenprof.engine.measure import lean
from lenprof.engine.plan import DEFAULT_SHARD_BYTES, MIN_SHARD_BYTES, Outputs, Plan
from lenprof.io.files import InputFile
from lenprof.rows.options import ScanOptions


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def chinese() -> list[str]:
    texts = _benchmark("qwen2_bpe").chinese_texts()
    if len(texts) < 1000:
        absent("the zh_CN message catalogs are not in /usr/share/locale", "LENPROF_REQUIRE_CATALOGS")
    return texts


@pytest.fixture(scope="module")
def qwen2(chinese, tmp_path_factory) -> Path:
    folder = _benchmark("qwen2_bpe").build(tmp_path_factory.mktemp("qwen2"), chinese, vocab_size=4000)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"] = {"type": "NFKC"}  # no fast count's proof covers it
    (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    # without the config's model_type, transformers takes tokenizer.json as it is (Qwen2's own
    # class would build NFC again)
    (folder / "config.json").unlink()
    return folder


@pytest.fixture(scope="module")
def chinese_corpus(chinese, tmp_path_factory) -> Path:
    """600 mined-negatives rows of catalog Chinese: passages repeat, some rows need repairs."""
    rng = random.Random(24)
    pool = rng.sample(chinese, 900)
    rows = []
    for i in range(600):
        pos, *neg = rng.sample(pool[: 300 + i], 8)
        rows.append({"query": f"{pos[: rng.randint(4, 12)]} #{i}", "pos": [pos], "neg": neg})
    rows[7]["neg"].append(rows[7]["pos"][0])  # repaired: a positive among the negatives
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    return write_lines(tmp_path_factory.mktemp("zh") / "mined-zh.jsonl", lines)


def _profile(p) -> dict:
    """The whole profile but what only says how the scan ran (its timings and shards)."""
    d = p.to_dict()
    run = d.pop("run")
    return {"profile": d, "counting": {k: v for k, v in run["counting"].items() if k != "self_checked"}}


def test_qwen2_is_counted_by_the_tokenizer_alone(qwen2):
    backend = Tokenizer.from_file(str(qwen2 / "tokenizer.json"))
    assert FastCounter(backend).path == "tokenizer"  # NFKC: no proof covers it


def test_qwen2_profiles_equal_exact_only_on_chinese_and_the_shared_corpora(qwen2, chinese_corpus, corpora):
    paths = [str(chinese_corpus), str(corpora), str(EXAMPLES)]
    profiles = {
        (exact, workers): _profile(
            scan(paths, tokenizer=str(qwen2), workers=workers, shard_bytes=20_000, exact_only=exact)
        )
        for exact in (False, True)
        for workers in (1, 2)
    }
    first = next(iter(profiles.values()))
    assert all(p == first for p in profiles.values())
    assert first["counting"]["path"] == "tokenizer"
    # and the counts are the tokenizer's own, text by text
    backend = Tokenizer.from_file(str(qwen2 / "tokenizer.json"))
    rows = [json.loads(line) for line in chinese_corpus.read_text(encoding="utf-8").splitlines()]
    zh = scan(str(chinese_corpus), tokenizer=str(qwen2), workers=2, shard_bytes=20_000)
    queries = [r["query"] for r in rows]
    assert zh.to_dict()["fields"]["query"]["tokens"] == sum(map(len, backend.encode_batch(queries)))


def test_a_small_corpus_is_cut_into_shards_enough_for_every_worker():
    """The first shards own most of the corpus's new texts, and a shard's texts are counted by
    the worker that checked it: with a few shards a worker, the others wait on that one."""

    def plan(mib: float, shard_bytes: int = DEFAULT_SHARD_BYTES) -> Plan:
        inputs = [InputFile("corpus.jsonl", "jsonl", known_size=int(mib * (1 << 20)))]
        return Plan(inputs, ScanOptions(), None, Outputs(), shard_bytes)  # type: ignore[arg-type]

    assert LocalEngine(2).fit(plan(30)).shard_bytes == 30 * (1 << 20) // 16  # 16 shards, 8 a worker
    assert LocalEngine(4).fit(plan(30)).shard_bytes == MIN_SHARD_BYTES  # never smaller than 1 MiB
    assert LocalEngine(2).fit(plan(1000)).shard_bytes == DEFAULT_SHARD_BYTES  # shards enough already
    assert LocalEngine(1).fit(plan(30)).shard_bytes == DEFAULT_SHARD_BYTES  # one worker waits on none
    assert LocalEngine(2).fit(plan(30, 20_000)).shard_bytes == 20_000  # never larger than asked


@pytest.fixture(scope="module")
def qwen2_folder(chinese, tmp_path_factory) -> Path:
    """A Qwen2-style folder as the hub has them: config.json says model_type qwen2, so
    transformers builds the tokenizer with its own Qwen2 class."""
    return _benchmark("qwen2_bpe").build(tmp_path_factory.mktemp("qwen2-folder"), chinese, vocab_size=4000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.lists(st.text(max_size=30), max_size=20))
def test_a_lean_bpe_gives_the_same_tokens(qwen2_folder, chinese, extra):
    """transformers loads Qwen2's BPE with an empty continuing_subword_prefix and
    end_of_word_suffix, which tokenizers formats into every character; the workers count with
    them None (``engine.measure.lean``): the same tokens for every text."""
    loaded = load_tokenizer(str(qwen2_folder)).backend
    assert (loaded.model.continuing_subword_prefix, loaded.model.end_of_word_suffix) == ("", "")
    slim = Tokenizer.from_str(loaded.to_str())
    lean(slim)
    assert (slim.model.continuing_subword_prefix, slim.model.end_of_word_suffix) == (None, None)
    texts = chinese[:300] + extra + ["", " ", "中文 English 123 <|endoftext|>", "\u00e9\u0301 \U0001f600"]
    assert [e.ids for e in slim.encode_batch(texts)] == [e.ids for e in loaded.encode_batch(texts)]
