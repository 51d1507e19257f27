"""End-to-end scans of real corpora, checked against an independent oracle.

The oracle re-derives everything the plain way a user would: ``json.loads`` each line, repair with
a few lines of list code, tokenize with ``transformers.AutoTokenizer``, and take
``numpy.percentile(..., method="inverted_cdf")``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import EXAMPLES, write_lines

from lenprof import InputError, ScanOptions, scan
from lenprof.stats.histogram import PERCENTILES
from lenprof.stats.scan_stats import Example


def oracle_rows(path):
    """Rows of a clean real corpus, negatives de-duplicated (first occurrence kept) as lenprof repairs."""
    rows = []
    for line in open(path, encoding="utf-8"):
        if line.strip():
            row = json.loads(line)
            row["neg"] = list(dict.fromkeys(row.get("neg", [])))
            rows.append(row)
    return rows


def oracle_stats(lengths: list[int]) -> dict:
    a = np.array(lengths)
    return {
        "count": len(a),
        "min": int(a.min()),
        "max": int(a.max()),
        "mean": round(float(a.mean()), 4),
        "percentiles": {p: int(np.percentile(a, float(p), method="inverted_cdf")) for p in PERCENTILES},
    }


def trained_query(row: dict) -> str:
    """The query FlagEmbedding trains: after the row's own prompt, if it has one (default format)."""
    return row["query"] if row.get("prompt") is None else row["prompt"] + row["query"]


def trained_passage(row: dict, text: str) -> str:
    """A passage as FlagEmbedding's same-dataset mode trains it: as a query for symmetric rows."""
    return trained_query(dict(row, query=text)) if row.get("type") in ("symmetric_sts", "symmetric_clustering") else text  # fmt: skip


def test_every_real_corpus_file_as_it_is(tok, oracle, corpus_files):
    assert len(corpus_files) == 12
    for path in corpus_files:
        profile = scan(str(path), tokenizer=tok)
        rows = oracle_rows(path)
        s = profile.samples
        expected_rows = 11 if path.name == "llara_toy_finetune_data.jsonl" else 10
        assert (s.read, s.kept, s.blank, s.dropped) == (expected_rows, expected_rows, 0, {}), path
        if path.name == "nq.jsonl":  # row 1: 100 negatives, 2 of them repeated
            assert s.repaired == {"duplicate_neg": 2} and s.repaired_rows == {"duplicate_neg": 1}
            neg = json.loads(path.read_bytes().splitlines()[0])["neg"]
            again = [i for i, t in enumerate(neg) if t.strip() in {u.strip() for u in neg[:i]}]
            named = [f"'neg'[{i}] {json.dumps(neg[i][:60], ensure_ascii=False)}…" for i in again]
            assert len(again) == 2 and all(len(neg[i]) > 60 for i in again)
            detail = "2 removed: " + ", ".join(named)  # which texts went, as read
            assert profile.examples["duplicate_neg"] == [Example(str(path), 1, detail)]
        else:
            assert s.repaired == {}, path

        texts = {
            "query": [trained_query(r) for r in rows],
            "pos": [trained_passage(r, p) for r in rows for p in r["pos"]],
            "neg": [trained_passage(r, n) for r in rows for n in r["neg"]],
        }
        texts["passage"] = texts["pos"] + texts["neg"]
        for field, field_texts in texts.items():
            got = profile.field_stats(field)
            want = oracle_stats(oracle(field_texts))
            assert {k: got[k] for k in want} == want, (path, field)
            assert got["unique"] == len(set(field_texts))


def test_recommendation_follows_the_oracle_percentile(tok, oracle, corpora):
    path = corpora / "embedder" / "retrieval" / "msmarco.jsonl"
    rows = oracle_rows(path)
    profile = scan(str(path), ScanOptions(coverage=90, multiple_of=16), tokenizer=tok)
    q90 = int(np.percentile(oracle([trained_query(r) for r in rows]), 90, method="inverted_cdf"))
    p90 = int(
        np.percentile(oracle([t for r in rows for t in r["pos"] + r["neg"]]), 90, method="inverted_cdf")
    )
    rec = profile.recommendation
    assert rec.query_max_len == -(-q90 // 16) * 16
    assert rec.passage_max_len == min(-(-p90 // 16) * 16, 512)
    assert (rec.coverage, rec.multiple_of, rec.cap) == (90, 16, 512)


def test_instructions_are_measured_as_flagembedding_builds_them(tok, oracle, corpora):
    path = corpora / "legacy" / "toy_finetune_data.jsonl"  # no per-row prompt
    rows = oracle_rows(path)
    opts = ScanOptions(
        query_instruction="Represent this sentence for searching relevant passages: ",
        passage_instruction="passage: ",
    )
    profile = scan(str(path), opts, tokenizer=tok)
    q = oracle(["Represent this sentence for searching relevant passages: " + r["query"] for r in rows])
    assert profile.field_stats("query")["max"] == max(q)
    assert profile.histograms["query"].tokens == sum(q)
    p = oracle(["passage: " + t for r in rows for t in r["pos"]])
    assert profile.histograms["pos"].tokens == sum(p)

    # a row's own prompt replaces the query instruction (FlagEmbedding's AbsEmbedderTrainDataset)
    msmarco = corpora / "embedder" / "retrieval" / "msmarco.jsonl"
    rows = oracle_rows(msmarco)
    profile = scan(str(msmarco), ScanOptions(query_instruction="ignored: "), tokenizer=tok)
    assert profile.histograms["query"].tokens == sum(oracle([r["prompt"] + r["query"] for r in rows]))


def test_cleaned_output_rescans_clean(tok, corpus_files, tmp_path):
    clean = tmp_path / "clean.jsonl"
    first = scan([str(p) for p in corpus_files], tokenizer=tok, clean_out=str(clean))
    again = scan(str(clean), tokenizer=tok)
    assert again.samples.dropped == {} and again.samples.repaired == {}
    assert again.samples.read == first.samples.kept
    for f in ("query", "pos", "neg", "passage"):
        assert again.histograms[f] == first.histograms[f]
    # extra keys survive, in input order; keys of other files' rows are added as null
    first_row = json.loads(clean.read_text().splitlines()[0])
    original = json.loads(corpus_files[0].read_text().splitlines()[0])
    assert {k: first_row[k] for k in original} == original
    assert {first_row[k] for k in first_row.keys() - original.keys()} <= {None}
    assert len({frozenset(json.loads(line)) for line in clean.read_text().splitlines()}) == 1


def numbers(profile) -> dict:
    d = profile.to_dict()
    return {k: d[k] for k in ("samples", "fields", "recommendation")}


def test_jsonl_parquet_and_compressed_inputs_agree(tok, corpora, tmp_path):
    src = corpora / "embedder" / "retrieval" / "nq.jsonl"
    base = scan(str(src), tokenizer=tok)
    gz = tmp_path / "nq.jsonl.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    zst = tmp_path / "nq.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(src.read_bytes()))
    parquet = tmp_path / "nq.parquet"
    pq.write_table(pj.read_json(src), parquet)
    for other in (gz, zst, parquet):
        assert numbers(scan(str(other), tokenizer=tok)) == numbers(base), other
    assert [i.format for i in scan([str(gz), str(zst), str(parquet)], tokenizer=tok).inputs] == [
        "jsonl+gzip",
        "jsonl+zstd",
        "parquet",
    ]


def test_bom_crlf_blank_lines_and_missing_final_newline_are_normal(tok, tmp_path):
    rows = [
        json.dumps({"query": f"question {i}", "pos": [f"answer {i}"], "neg": [f"other {i}"]}).encode()
        for i in range(4)
    ]
    plain = write_lines(tmp_path / "plain.jsonl", rows)
    odd = tmp_path / "odd.jsonl"
    odd.write_bytes(
        b"\xef\xbb\xbf" + rows[0] + b"\r\n\r\n  \t\r\n" + rows[1] + b"\r\n" + rows[2] + b"\n\n" + rows[3]
    )
    a, b = scan(str(plain), tokenizer=tok), scan(str(odd), tokenizer=tok)
    assert numbers(a)["fields"] == numbers(b)["fields"]
    assert (b.samples.read, b.samples.kept, b.samples.blank) == (4, 4, 3)


def every_output(folder, clean_suffix=".jsonl") -> dict:
    return {
        "clean_out": str(folder / f"clean{clean_suffix}"),
        "rejects_out": str(folder / "rejects.jsonl"),
        "profile_out": str(folder / "profile.json"),
    }


def outcome(profile, outputs) -> tuple:
    """Everything a scan produced, byte for byte (the profile JSON less how the run went)."""
    saved = json.loads(open(outputs["profile_out"], encoding="utf-8").read())
    saved.pop("run")
    saved["outputs"] = {
        k: os.path.basename(v) for k, v in saved["outputs"].items()
    }  # each run has its folder
    clean = outputs["clean_out"]
    rows = pq.read_table(clean).to_pylist() if clean.endswith(".parquet") else open(clean, "rb").read()
    if clean.endswith(".parquet"):
        rows = (str(pq.read_schema(clean)), rows)
    return saved, profile.examples, rows, open(outputs["rejects_out"], "rb").read()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".jsonl.gz"])
def test_results_do_not_depend_on_workers_or_shards(tok, corpora, tmp_path, suffix):
    """One worker in this process, or two processes; shards of 4 MiB (one per file here), of
    3 KB (a few rows each) or of one byte (one line each): the same bytes out."""
    paths = [
        str(corpora),
        str(EXAMPLES / "dirty.jsonl"),
        str(corpora / "embedder" / "retrieval" / "nq.jsonl"),
    ]
    runs = {}
    for workers, shard_bytes in ((1, 4 << 20), (2, 3000), (2, 1), (1, 700)):
        outputs = every_output(tmp_path / f"w{workers}-s{shard_bytes}", suffix)
        p = scan(paths, tokenizer=tok, workers=workers, shard_bytes=shard_bytes, **outputs)
        assert p.run.workers == workers and p.run.engine == "local"
        runs[workers, shard_bytes] = outcome(p, outputs)
    first, *others = runs.values()
    assert all(o == first for o in others)
    assert first[0]["samples"]["dropped"]["duplicate_row"] >= 10  # nq.jsonl given twice


def test_each_distinct_text_is_tokenized_once_per_scan(tok, corpora):
    msmarco = str(corpora / "embedder" / "retrieval" / "msmarco.jsonl")
    once = scan(msmarco, tokenizer=tok, workers=1)
    for workers in (1, 2):
        twice = scan([msmarco, msmarco], tokenizer=tok, workers=workers, shard_bytes=5000)
        assert twice.run.shards >= 20  # every row its own shard
        assert (
            twice.run.texts_tokenized
            == once.run.texts_tokenized
            == once.unique["query"] + once.unique["passage"]
        )


def test_duplicates_are_found_across_files_and_shards(tok, corpora):
    msmarco = str(corpora / "embedder" / "retrieval" / "msmarco.jsonl")
    p = scan([msmarco, msmarco], tokenizer=tok, shard_bytes=4000)
    assert p.samples.dropped == {"duplicate_row": 10}
    assert p.examples["duplicate_row"][0].line == 1 and p.inputs[1].rows == 10


def test_duplicate_row_examples_name_the_earlier_line(tok, tmp_path):
    def row(q: str) -> bytes:
        return json.dumps({"query": f"query {q}", "pos": [f"passage {q}"], "neg": ["a negative"]}).encode()

    a = write_lines(tmp_path / "a.jsonl", [row(str(i)) for i in range(1, 11)])  # lines 1-10
    b = write_lines(
        tmp_path / "b.jsonl", [row("b1"), row("3"), b"", row("b1"), row("7"), row("3"), row("9"), row("1")]
    )
    expected = [
        Example(str(b), 2, f"same query and positives as {a}:3, which was kept"),
        Example(str(b), 4, "same query and positives as line 1, which was kept"),
        Example(str(b), 5, f"same query and positives as {a}:7, which was kept"),
        Example(str(b), 6, f"same query and positives as {a}:3, which was kept"),
        Example(str(b), 7, f"same query and positives as {a}:9, which was kept"),
    ]  # the sixth duplicate (line 8) is beyond the examples shown
    for workers, shard_bytes in ((1, 4 << 20), (2, 150), (1, 1)):
        p = scan([str(a), str(b)], tokenizer=tok, workers=workers, shard_bytes=shard_bytes)
        assert p.samples.dropped == {"duplicate_row": 6}
        assert p.examples["duplicate_row"] == expected, (workers, shard_bytes)


def test_duplicates_from_a_pipe_keep_the_plain_detail():
    """A pipe cannot be read again to find the earlier row: the example says what it can."""
    from click.testing import CliRunner

    from lenprof.cli import main

    rows = (EXAMPLES / "msmarco.jsonl").read_bytes().splitlines()
    piped = CliRunner().invoke(
        main, ["scan", "-", "--format", "json", "-q"], input=b"\n".join(rows + rows[:2]) + b"\n"
    )
    assert piped.exit_code == 0
    assert json.loads(piped.stdout)["examples"]["duplicate_row"] == [
        {"source": "<stdin>", "line": line, "detail": "same query and positives as an earlier kept row"}
        for line in (11, 12)
    ]


def test_folders_and_globs_expand_sorted(tok, corpora):
    folder = scan(str(corpora / "embedder"), tokenizer=tok)
    names = [os.path.relpath(i.path, corpora / "embedder") for i in folder.inputs]
    assert names == sorted(names) and len(names) == 8
    glob = scan(str(corpora / "embedder" / "*" / "*.jsonl"), tokenizer=tok)
    assert [i.path for i in glob.inputs] == [i.path for i in folder.inputs]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: str(d / "nope.jsonl"), "no such file or folder"),
        (lambda d: str(d), "folder holds no data files"),
        (lambda d: str(d / "*.jsonl"), "the pattern matches no data files"),
        (lambda d: (d / "notes.txt").write_text("x") and str(d / "notes.txt"), "unknown file type"),
    ],
)
def test_unusable_inputs_are_named(tok, tmp_path, make, message):
    spec = make(tmp_path)
    with pytest.raises(InputError, match=message) as err:
        scan(spec, tokenizer=tok)
    assert str(err.value).startswith(spec)


def test_outputs_never_overwrite_inputs(tok, tmp_path):
    src = tmp_path / "data.jsonl"
    shutil.copy(EXAMPLES / "msmarco.jsonl", src)
    before = src.read_bytes()
    for kw in ({"clean_out": str(src)}, {"rejects_out": str(tmp_path / "." / "data.jsonl")}):
        with pytest.raises(InputError, match="would overwrite an input"):
            scan(str(src), tokenizer=tok, **kw)
    with pytest.raises(InputError, match="two outputs name the same file"):
        scan(
            str(src),
            tokenizer=tok,
            clean_out=str(tmp_path / "o.jsonl"),
            rejects_out=str(tmp_path / "o.jsonl"),
        )
    assert src.read_bytes() == before


def test_a_failed_scan_leaves_no_partial_output(tok, tmp_path):
    broken = tmp_path / "b.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"query": "q", "pos": ["p"], "neg": ["n"]}\n' * 50)[:-12])
    clean = tmp_path / "clean.jsonl"
    clean.write_text("previous run\n")
    with pytest.raises(InputError, match=r"b\.jsonl\.gz: corrupt or truncated gzip data"):
        scan([str(EXAMPLES / "msmarco.jsonl"), str(broken)], tokenizer=tok, clean_out=str(clean))
    assert clean.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jsonl.gz", "clean.jsonl"]


def test_parquet_output_unifies_types_across_batches(tok, tmp_path):
    rows = [
        {"query": "q1", "pos": ["p1"], "neg": ["n1"], "score": None},
        {"query": "q2", "pos": ["p2"], "neg": ["n2"], "score": 3},
        {"query": "q3", "pos": ["p3"], "neg": ["n3"], "score": 2.5, "extra": "x"},
    ]
    src = write_lines(tmp_path / "in.jsonl", [json.dumps(r).encode() for r in rows])
    out = tmp_path / "out.parquet"
    scan(str(src), tokenizer=tok, clean_out=str(out), shard_bytes=1)
    got = pq.read_table(out).to_pylist()
    assert got == [{**r, "extra": r.get("extra")} for r in rows]


def test_warnings_do_not_change_fates(tok, tmp_path):
    long = "word " * 600
    rows = [
        {"query": "q1", "pos": [long], "neg": ["n1"]},
        {"query": "q2", "pos": ["p2"], "neg": ["n2", "n3"]},
    ]
    src = write_lines(tmp_path / "w.jsonl", [json.dumps(r).encode() for r in rows])
    p = scan(str(src), ScanOptions(train_group_size=3), tokenizer=tok)
    assert p.samples.kept == 2
    assert p.samples.warnings == {"over_model_limit": 1, "few_negatives": 1}


def test_a_bom_counts_only_at_the_start_of_a_file_whatever_the_shards(tok, tmp_path):
    """A BOM opens a file; one at the start of a later line is that line's bytes (malformed)."""
    rows = [json.dumps({"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"n{i}"]}).encode() for i in range(400)]
    data = b"\xef\xbb\xbf" + b"\n".join(rows[:200] + [b"\xef\xbb\xbf" + rows[200]] + rows[201:]) + b"\n"
    plain = tmp_path / "bom.jsonl"
    plain.write_bytes(data)
    packed = tmp_path / "bom.jsonl.gz"
    packed.write_bytes(gzip.compress(data))
    for path in (plain, packed):
        for shard_bytes in (1, 2000, 4 << 20):
            p = scan(str(path), tokenizer=tok, shard_bytes=shard_bytes)
            assert (p.samples.kept, p.samples.dropped) == (399, {"malformed_json": 1}), (path, shard_bytes)
            assert p.examples["malformed_json"][0].line == 201


def test_texts_whose_python_hashes_collide_are_told_apart(tok, oracle, tmp_path):
    """Python hashes "中" (U+4E2D) and "-N" (bytes 2D 4E) alike: neither the length cache nor
    duplicate detection may take one for the other."""
    assert hash("中") == hash("-N")
    rows = [
        {"query": "中", "pos": ["x"], "neg": ["-N"]},
        {"query": "-N", "pos": ["x"], "neg": ["中"]},
    ]
    src = write_lines(tmp_path / "c.jsonl", [json.dumps(r, ensure_ascii=False).encode() for r in rows])
    for workers in (1, 2):
        p = scan(str(src), tokenizer=tok, workers=workers, shard_bytes=1)
        assert p.samples.kept == 2 and p.samples.dropped == {}
        assert p.histograms["query"].tokens == sum(oracle(["中", "-N"])) == 7
        assert p.unique["query"] == 2 and p.unique["passage"] == 3
