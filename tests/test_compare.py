"""Several tokenizers in one pass: each gets exactly the profile a scan with it alone gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from lenprof import Comparison, compare, scan
from lenprof.cli import main
from lenprof.count.tokenizer import packaged_model_path

MINILM = str(packaged_model_path())


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> list[str]:
    """Three tokenizers that count differently: MiniLM's folder (cap 512), the same vocabulary
    without lower-casing as a bare tokenizer.json (no known cap), and a byte-level BPE trained
    here with an NFKC normalizer (no piece rule covers it: every text through the tokenizer)
    that declares a cap of 64."""
    folder = tmp_path_factory.mktemp("tokenizers")
    cased = json.loads((Path(MINILM) / "tokenizer.json").read_text())
    cased["normalizer"]["lowercase"] = False
    cased["truncation"] = cased["padding"] = None
    (folder / "cased").mkdir()
    (folder / "cased" / "tokenizer.json").write_text(json.dumps(cased))
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.normalizer = normalizers.NFKC()
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    rows = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").open()]
    lines = [t for r in rows for t in (r["query"], *r["pos"])]
    bpe.train_from_iterator(
        lines, trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>", "<unk>"])
    )
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)]
    )
    (folder / "bpe").mkdir()
    bpe.save(str(folder / "bpe" / "tokenizer.json"))
    (folder / "bpe" / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64}))
    return [MINILM, str(folder / "cased" / "tokenizer.json"), str(folder / "bpe" / "tokenizer.json")]


def _results(profile) -> dict:
    d = profile.to_dict()
    d.pop("run")
    return d


@pytest.mark.parametrize("workers, shard_bytes", [(1, 4 << 20), (2, 3000)])
def test_comparing_gives_the_numbers_of_separate_scans(tokenizers, corpora, tmp_path, workers, shard_bytes):
    paths = [str(EXAMPLES), str(corpora / "embedder" / "retrieval" / "nq.jsonl")]
    both = compare(
        paths, tokenizers=tokenizers, workers=workers, shard_bytes=shard_bytes,
        clean_out=str(tmp_path / "clean.jsonl"), rejects_out=str(tmp_path / "rejects.jsonl"),
    )  # fmt: skip
    assert both.names == tokenizers
    for k, tok in enumerate(tokenizers):
        out = tmp_path / f"alone{k}"
        alone = scan(
            paths,
            tokenizer=tok,
            workers=1,
            clean_out=str(out) + ".jsonl",
            rejects_out=str(out) + ".rejects.jsonl",
        )
        mine = _results(both.profiles[k])
        mine["outputs"] = _results(alone)["outputs"]  # each run names its own files
        assert mine == _results(alone), tok
        assert (tmp_path / "clean.jsonl").read_bytes() == Path(str(out) + ".jsonl").read_bytes()
        assert (tmp_path / "rejects.jsonl").read_bytes() == Path(str(out) + ".rejects.jsonl").read_bytes()
    p95 = {p.field_stats("passage")["percentiles"]["95"] for p in both.profiles}
    over = [p.samples.warnings.get("over_model_limit", 0) for p in both.profiles]
    assert len(p95) == 3 and over[0] == over[1] == 0 and over[2] > 0  # they do differ
    assert both.profiles[2].run.counting.path == "tokenizer"
    assert both.profiles[0].run.counting.path == "chunks:bert-wordpiece"


def test_comparison_json_keeps_one_profile_per_tokenizer(tokenizers, tmp_path):
    out = tmp_path / "comparison.json"
    result = CliRunner().invoke(
        main,
        ["scan", str(EXAMPLES), "--tokenizer", tokenizers[0], "--tokenizer", tokenizers[1], "--out", str(out),
         "--format", "json", "-q"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0
    saved = json.loads(out.read_text())
    assert saved == json.loads(result.stdout)
    assert saved["schema"] == "lenprof.comparison/1" and saved["tokenizers"] == tokenizers[:2]
    assert [p["tokenizer"]["name"] for p in saved["profiles"]] == tokenizers[:2]
    assert Comparison.from_dict(saved).to_dict() == saved
    alone = scan(str(EXAMPLES), tokenizer=tokenizers[1]).to_dict()
    assert saved["profiles"][1]["fields"] == alone["fields"]


def test_one_tokenizer_formats_need_a_name(tokenizers):
    twice = ["scan", str(EXAMPLES), "--tokenizer", tokenizers[0], "--tokenizer", tokenizers[1]]
    refused = CliRunner().invoke(main, [*twice, "--format", "args"])
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"Error: --format args prints one tokenizer's lengths, and 2 are compared ({tokenizers[0]}, "
        f"{tokenizers[1]}): name one with --for-tokenizer NAME, or use --format table or json\n"
    )
    named = CliRunner().invoke(main, [*twice, "--format", "args", "--for-tokenizer", tokenizers[1], "-q"])
    alone = CliRunner().invoke(
        main, ["scan", str(EXAMPLES), "--tokenizer", tokenizers[1], "--format", "args", "-q"]
    )
    assert named.exit_code == alone.exit_code == 0 and named.stdout == alone.stdout
    unknown = CliRunner().invoke(main, [*twice, "--for-tokenizer", "bert", "--format", "args"])
    assert unknown.exit_code == 2 and "--for-tokenizer bert: not one of the tokenizers (" in unknown.stderr
    again = CliRunner().invoke(main, [*twice, "--tokenizer", tokenizers[0]])
    assert again.exit_code == 2 and f"--tokenizer {tokenizers[0]} is given twice" in again.stderr


def test_the_side_by_side_table_and_report(tokenizers, tmp_path):
    report = tmp_path / "r.html"
    result = CliRunner().invoke(
        main,
        ["scan", str(EXAMPLES), "--tokenizer", tokenizers[0], "--tokenizer", tokenizers[2], "--report", str(report)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0
    profiles = [scan(str(EXAMPLES), tokenizer=t) for t in (tokenizers[0], tokenizers[2])]
    lines = result.stdout.splitlines()
    assert lines[0] == "lenprof: 2 inputs, 2 tokenizers compared in one pass"
    cut = lines.index("recommended (p95 rounded up to a multiple of 8, at most each cap)")
    passage = lines[[line.split()[0] if line else "" for line in lines].index("passage") :][:2]
    for k, p in enumerate(profiles):
        st = p.field_stats("passage")
        pcts = [str(st["percentiles"][q]) for q in ("50", "90", "95", "99", "99.9")]
        per_char = f"{st['tokens'] / p.chars['passage']:.3f}"
        cells = passage[k].split()
        assert cells[-10] == str(st["count"]) and cells[-7:] == [*pcts, str(st["max"]), per_char]
        q, pl = p.recommendation.lengths()
        rec = lines[cut + 2 + k].split()
        binds = p.recommendation.cap_binds
        assert rec[:3] == [p.tokenizer.name, str(p.tokenizer.cap), f"{q}{'*' * binds['query']}"]
        assert rec[7] == f"{pl}{'*' * binds['passage']}"  # after "N of M (x%)"
    html = report.read_text(encoding="utf-8")
    assert html.count("its own report</summary>") == 2 and html.count("<table class=compare-") == 2


def test_recommend_rederives_a_saved_comparison(tokenizers, tmp_path):
    saved = tmp_path / "comparison.json"
    single = tmp_path / "profile.json"
    two = ["--tokenizer", tokenizers[0], "--tokenizer", tokenizers[2]]
    assert CliRunner().invoke(main, ["scan", str(EXAMPLES), *two, "--out", str(saved), "-q"]).exit_code == 0
    assert CliRunner().invoke(main, ["scan", str(EXAMPLES), "--out", str(single), "-q"]).exit_code == 0
    result = CliRunner().invoke(main, ["recommend", str(saved), "--coverage", "99", "--format", "json"])
    assert result.exit_code == 0
    again = json.loads(result.stdout)
    for p, tok in zip(again["profiles"], (tokenizers[0], tokenizers[2]), strict=True):
        alone = scan(str(EXAMPLES), tokenizer=tok).recommend(coverage=99)
        assert p["recommendation"] == alone.recommendation.to_dict()
    refused = CliRunner().invoke(main, ["recommend", str(saved), "--format", "args"])
    assert refused.exit_code == 2 and "name one with --for-tokenizer NAME" in refused.stderr
    named = CliRunner().invoke(
        main, ["recommend", str(saved), "--format", "args", "--for-tokenizer", tokenizers[2]]
    )
    q, p = scan(str(EXAMPLES), tokenizer=tokenizers[2]).recommendation.lengths()
    assert named.exit_code == 0 and named.stdout == f"--query_max_len {q} --passage_max_len {p}\n"
    report = tmp_path / "r.html"
    drawn = CliRunner().invoke(main, ["recommend", str(saved), "--cap", "128", "--report", str(report)])
    assert drawn.exit_code == 0 and report.read_text(encoding="utf-8").count("its own report</summary>") == 2
    one = CliRunner().invoke(main, ["recommend", str(single), "--for-tokenizer", tokenizers[2]])
    assert one.exit_code == 2 and "is the profile of one tokenizer" in one.stderr


def test_one_tokenizer_from_the_environment_is_one_even_with_spaces(tokenizers, tmp_path, monkeypatch):
    spaced = tmp_path / "my tokenizers" / "tokenizer.json"
    spaced.parent.mkdir()
    spaced.write_bytes(Path(tokenizers[1]).read_bytes())
    monkeypatch.setenv("LENPROF_TOKENIZER", str(spaced))
    result = CliRunner().invoke(main, ["scan", str(EXAMPLES), "--format", "json", "-q"])
    assert result.exit_code == 0 and json.loads(result.stdout)["tokenizer"]["name"] == str(spaced)


def test_a_list_of_tokenizers_in_pyproject_compares_them(tokenizers, tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.lenprof.scan]\ntokenizer = {json.dumps(tokenizers[:2])}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LENPROF_TOKENIZER", raising=False)
    result = CliRunner().invoke(main, ["scan", str(EXAMPLES), "--format", "json", "-q"])
    assert result.exit_code == 0 and json.loads(result.stdout)["tokenizers"] == tokenizers[:2]
