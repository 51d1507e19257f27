from __future__ import annotations

import json
import shutil

import pytest

from lenprof import TokenizerError, load_tokenizer
from lenprof.count import exact as tokenize
from lenprof.count.tokenizer import packaged_model_path


def corpus_texts(files) -> list[str]:
    texts = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts += [row["query"], *row["pos"], *row.get("neg", [])]
    return texts


def test_lengths_match_autotokenizer_on_every_corpus_text(tok, oracle, corpus_files):
    texts = corpus_texts(corpus_files)
    got = tok.count(texts).tolist()
    assert got == oracle(texts)
    # The packaged tokenizer.json truncates and pads at 128: a profile that forgot to switch
    # that off would report 128 for every long text.
    assert max(got) > 128 and min(got) < 128


def test_lengths_match_autotokenizer_when_encoded_in_many_parts(tok, oracle, monkeypatch):
    monkeypatch.setattr(tokenize, "ENCODE_CHARS", 64)  # a part every few texts, some alone
    texts = [f"text {i}: " + "word, " * (i % 37) for i in range(300)]
    assert len(tokenize.parts(texts, 64)) > 100
    assert tok.count(texts).tolist() == oracle(texts)


def test_lengths_are_not_truncated_at_the_model_limit(tok, oracle):
    text = "token " * 1000
    assert tok.count([text]).tolist() == oracle([text]) == [1002]  # [CLS] + 1000 + [SEP]


def test_packaged_model_limits(tok):
    d = tok.info.to_dict()
    assert d["name"] == "sentence-transformers/all-MiniLM-L6-v2" and d["source"] == "packaged"
    assert (d["model_max_length"], d["max_position_embeddings"], d["position_offset"], d["cap"]) == (
        512,
        512,
        0,
        512,
    )
    assert d["st_max_seq_length"] == 256


def test_bare_tokenizer_json_reads_limits_beside_it(tok, tmp_path):
    model = packaged_model_path()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(model / name, tmp_path / name)
    # An XLM-R style config: positions start after the padding index, so 514 positions hold 512 tokens.
    config = {"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    tj = load_tokenizer(str(tmp_path / "tokenizer.json"))
    i = tj.info
    assert (i.source, i.max_position_embeddings, i.position_offset, i.cap) == ("file", 514, 2, 512)
    texts = ["a short text", "word " * 300]
    assert tj.count(texts).tolist() == tok.count(texts).tolist()


def test_model_folder_without_declared_max_length(tmp_path):
    model = packaged_model_path()
    shutil.copytree(model, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "tokenizer_config.json").read_text())
    del cfg["model_max_length"]
    (tmp_path / "m" / "tokenizer_config.json").write_text(json.dumps(cfg))
    t = load_tokenizer(str(tmp_path / "m"))
    assert t.info.source == "folder" and t.info.model_max_length is None and t.cap == 512  # from the config


@pytest.mark.parametrize(
    "spec, message",
    [
        ("./no/such/folder", "no such file or folder"),
        ("missing-tokenizer.json", "no such file or folder"),
        ("no-such-org/no-such-model", "not in the Hugging Face cache ("),
    ],
)
def test_unloadable_tokenizers_say_what_to_do(spec, message):
    with pytest.raises(TokenizerError, match=r"^--tokenizer ") as err:
        load_tokenizer(spec)
    assert message in str(err.value)


def test_a_file_that_is_not_a_tokenizer(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")
    with pytest.raises(TokenizerError, match="not a tokenizers JSON file"):
        load_tokenizer(str(bad))


def test_the_default_tokenizers_name_is_the_installed_copy_offline(monkeypatch, tmp_path):
    # the name lenprof prints for its default resolves to the installed package, with no hub
    # cache and without asking the hub (issue 22)
    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setattr("lenprof.count.hub.locate", no_hub)
    named, default = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2"), load_tokenizer(None)
    assert (named.name, named.info.source) == (default.name, "packaged")
    texts = ["Hello, world!", "中文 and naïve café"]
    assert named.count(texts).tolist() == default.count(texts).tolist()
