"""lenprof's token counts equal ``transformers.AutoTokenizer``'s for every tokenizer family, cold and warm.

Each family is built here from the ``tokenizers`` library's own components, trained on a few hundred
generated lines, wrapped in its transformers tokenizer class and saved with a ``config.json``, so
nothing comes from the hub. A cold load goes through transformers; a warm load rebuilds the backend
from lenprof's cache file alone. Both must count exactly what an independent AutoTokenizer counts
(special tokens included, never truncated) and report the same limits; a second process that loads
from the cache must import neither transformers nor torch; and editing a tokenizer file must change
the cache key, so a stale entry is never read.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from lenprof import load_tokenizer
from lenprof.count import load as lf
from lenprof.count import tokenizer as lt

REPO = Path(__file__).resolve().parents[1]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # pad id 1, as config.json says
IGNORE_WEIGHTS = shutil.ignore_patterns(*(f"*{suffix}" for suffix in lf.WEIGHT_SUFFIXES))

_rng = random.Random(20240611)
_SYLLABLES = "ka lo mi ne ru sa to vi ber gan dol fen hux jor kel mun pra stel tor quin zel ex ing ed".split()
_WORDS = (
    "the a of and to in is for on with model data token length profile train embedding query "
    "passage negative positive Retrieval Hello World ANN cafe café naïve résumé Zürich façade "
    "coöperate Ångström straße über Ñandú 北京 上海 中文 分词 模型 数据 欢迎 日本語 한국어 مرحبا "
    "🙂 🚀 👍🏽 don't it's (x) [y] {z} 3.14 2024-06-11 e-mail user@example.com"
).split()
_PSEUDO = ["".join(_rng.choice(_SYLLABLES) for _ in range(_rng.randint(1, 3))) for _ in range(400)]
VOCAB_WORDS = _WORDS + _PSEUDO


def _line(n: int) -> str:
    words = [_rng.choice(VOCAB_WORDS) for _ in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + _rng.choice([".", "!", "?", ",", ";", ":", ""])


CORPUS = [_line(_rng.randint(4, 24)) for _ in range(400)]
LONG = " ".join(_line(12) + _rng.choice([" ", "\n", "\t", "  "]) for _ in range(60))  # ~780 words
TEXTS = [
    "",
    "hello",
    "Tokenization",
    "kalomi",
    " leading space",
    "trailing space ",
    "   padded on both sides   ",
    "several    spaces   between     words",
    "tab\tseparated\tvalues\t",
    "line one\nline two\r\nline three\n\n",
    "   ",
    "\t\n",
    'Hello, world! (test) [x] {y} «quotes» — dash… don\'t "double" ?! ;:',
    "北京欢迎你，上海也欢迎你。中文分词模型。",
    "日本語のテキスト と 한국어 텍스트 مرحبا بالعالم",
    "Café naïve résumé Zürich façade coöperate Ångström straße",
    "Cafe\u0301 decomposed and ＦＵＬＬＷＩＤＴＨ １２３ and the ﬁne ﬂow ligatures",
    "emoji 🙂🚀 👍🏽 👨\u200d👩\u200d👧 ❤️",
    "ctrl\x0bvertical\x0cform\x1cfile\x1dgroup\x1erecord\x1funit\x00nul\x7fdel",
    "non\u00a0breaking\u2009thin\u200bzero\u3000ideographic",
    "[CLS] [SEP] <s> </s> <pad> [MASK] <unk> inside the text",
    "x" * 250,
    LONG,
    LONG + "\n" + LONG,  # ~1560 words: beyond every cap below, so no count may be truncated
]


@dataclass(frozen=True)
class Family:
    name: str
    folder: Path
    limits: tuple  # (model_max_length, max_position_embeddings, position_offset, cap) lenprof must report
    empty: int  # the tokens an empty text gets: the special tokens the post-processor adds
    raw_differs: bool = False  # whether transformers rewrites tokenizer.json, so the file alone miscounts


def _limits(info: lt.TokenizerInfo) -> tuple:
    return (info.model_max_length, info.max_position_embeddings, info.position_offset, info.cap)


def _save(fast, folder: Path, config: dict) -> Path:
    fast.save_pretrained(str(folder))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _bert(folder: Path, cased: bool) -> Family:
    from transformers import BertTokenizerFast

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    if cased:
        tk.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    else:
        tk.normalizer = normalizers.Sequence(
            [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()]
        )
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    tk.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=1500, special_tokens=BERT_SPECIALS))
    # The uncased tokenizer declares 512; the cased one declares no limit: the cap then comes from the config.
    extra = {"model_max_length": 512} if not cased else {}
    fast = BertTokenizerFast(tokenizer_object=tk, do_lower_case=not cased, strip_accents=not cased, **extra)
    config = {"model_type": "bert", "max_position_embeddings": 512, "pad_token_id": 0}
    limits = (None if cased else 512, 512, 0, 512)
    return Family(folder.name, _save(fast, folder, config), limits, empty=2)


def _roberta(folder: Path) -> Family:
    from transformers import RobertaTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500, special_tokens=ROBERTA_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(CORPUS, trainer)
    fast = RobertaTokenizerFast(tokenizer_object=tk)  # no model_max_length: 514 - (pad 1 + 1) = 512
    config = {"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    _save(fast, folder, config)
    # tokenizer.json says add_prefix_space, tokenizer_config.json says not: transformers rewrites the
    # pre-tokenizer and post-processor to follow the config on load, so only the backend transformers
    # built (what lenprof caches) counts like AutoTokenizer; the raw file counts differently.
    tj = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tj["pre_tokenizer"]["add_prefix_space"] = True
    if tj.get("post_processor"):
        tj["post_processor"]["add_prefix_space"] = True
    (folder / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    return Family(folder.name, folder, (None, 514, 2, 512), empty=2, raw_differs=True)


def _xlm_roberta(folder: Path) -> Family:
    from transformers import XLMRobertaTokenizerFast

    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.NFKC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=1500, special_tokens=ROBERTA_SPECIALS, unk_token="<unk>")
    tk.train_from_iterator(CORPUS, trainer)
    # As bge-m3: the tokenizer declares more than the positions hold, so the cap is 514 - 2.
    fast = XLMRobertaTokenizerFast(tokenizer_object=tk, model_max_length=8192)
    config = {"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    return Family(folder.name, _save(fast, folder, config), (8192, 514, 2, 512), empty=2)


def _llama(folder: Path) -> Family:
    from transformers import LlamaTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=1500, special_tokens=specials))
    fast = LlamaTokenizerFast(
        tokenizer_object=tk, add_bos_token=True, add_eos_token=False, model_max_length=1024
    )
    _save(fast, folder, {"model_type": "llama", "max_position_embeddings": 1024})
    # transformers writes the BOS into tokenizer.json's post-processor (a TemplateProcessing it built
    # from add_bos_token) and leaves add_bos_token out of tokenizer_config.json; Llama repos also
    # carry it there, so it goes back in (transformers 5 then ignores it beside a tokenizer.json).
    cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg.update(add_bos_token=True, add_eos_token=False)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return Family(folder.name, folder, (1024, 1024, 0, 1024), empty=1)


def _packaged(folder: Path) -> Family:
    model = lt.packaged_model_path()
    shutil.copytree(model, folder, ignore=IGNORE_WEIGHTS, dirs_exist_ok=True)  # weights never shape it
    return Family(folder.name, folder, (512, 512, 0, 512), empty=2)


BUILDERS: dict[str, Callable[[Path], Family]] = {
    "bert-uncased": lambda folder: _bert(folder, cased=False),
    "bert-cased": lambda folder: _bert(folder, cased=True),
    "roberta": _roberta,
    "xlm-roberta": _xlm_roberta,
    "llama": _llama,
    "packaged-minilm": _packaged,
}


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> Callable[[str], Family]:
    """Each family's model folder, built once per module on first use."""
    built: dict[str, Family] = {}

    def get(name: str) -> Family:
        if name not in built:
            built[name] = BUILDERS[name](tmp_path_factory.mktemp("families") / name)
        return built[name]

    return get


@pytest.fixture(params=list(BUILDERS))
def family(request, families) -> Family:
    return families(request.param)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty tokenizer cache of the test's own."""
    monkeypatch.setenv("LENPROF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tokenizers"


def autotokenizer_lengths(folder: Path, texts: list[str]) -> list[int]:
    """The oracle: a fresh AutoTokenizer instance, special tokens added, truncation off (its default)."""
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(folder))
    return [len(ids) for ids in t(texts, add_special_tokens=True)["input_ids"]]


def warm_load(folder: Path | None, monkeypatch) -> lt.LoadedTokenizer:
    """Load ``folder`` (None: the packaged model) with transformers out of reach: only a cache hit
    can succeed."""

    def no_transformers(*args, **kwargs):
        raise AssertionError("a warm load went through transformers")

    with monkeypatch.context() as m:
        m.setattr(lf, "_load_auto", no_transformers)
        return load_tokenizer(None if folder is None else str(folder))


def copy_family(family: Family, tmp_path: Path) -> Path:
    folder = tmp_path / family.name
    shutil.copytree(family.folder, folder, ignore=IGNORE_WEIGHTS)
    return folder


def test_cold_and_warm_counts_equal_autotokenizer(family, cache, monkeypatch):
    """Cold (through transformers) and warm (from the cache file) loads count exactly what a fresh
    AutoTokenizer counts, special tokens included and nothing truncated, and report the same limits."""
    expected = autotokenizer_lengths(family.folder, TEXTS)
    assert expected[TEXTS.index("")] == family.empty  # the post-processor's special tokens, counted
    assert max(expected) > family.limits[3]  # a truncating count would stop at the cap
    if family.raw_differs:
        raw = lt._switch_off(Tokenizer.from_file(str(family.folder / "tokenizer.json")))
        assert lt.count_tokens(raw, TEXTS).tolist() != expected

    cold = load_tokenizer(str(family.folder))
    key = lf._folder_key(str(family.folder))
    assert sorted(p.name for p in cache.iterdir()) == [f"{key}.json", f"{key}.tokenizer.json"]
    warm = warm_load(family.folder, monkeypatch)

    assert cold.count(TEXTS).tolist() == expected
    assert warm.count(TEXTS).tolist() == expected
    assert _limits(cold.info) == _limits(warm.info) == family.limits
    assert cold.info == warm.info  # name, source and sentence-transformers' limit too


@pytest.mark.parametrize("damage", ["edited", "truncated", "removed"])
def test_a_damaged_cached_tokenizer_is_built_again(families, cache, monkeypatch, damage):
    """The cached tokenizer is read only if it is the very file its entry was written with: one
    changed (a token's id swapped: still a valid tokenizer), cut short or gone is built again
    through transformers, and counts as AutoTokenizer does."""
    family = families("bert-uncased")
    load_tokenizer(str(family.folder))
    (stored,) = cache.glob("*.tokenizer.json")
    data = stored.read_text(encoding="utf-8")
    if damage == "edited":
        spec = json.loads(data)
        vocab = spec["model"]["vocab"]
        a, b = list(vocab)[-2:]
        vocab[a], vocab[b] = vocab[b], vocab[a]
        stored.write_text(json.dumps(spec), encoding="utf-8")
        assert Tokenizer.from_file(str(stored)) is not None  # still a tokenizer: only the digest tells
    elif damage == "truncated":
        stored.write_text(data[: len(data) // 2], encoding="utf-8")
    else:
        stored.unlink()
    rebuilt: list[str] = []
    real = lf._load_auto
    monkeypatch.setattr(lf, "_load_auto", lambda *a, **k: (rebuilt.append(a[0]), real(*a, **k))[1])
    again = load_tokenizer(str(family.folder))
    assert rebuilt == [str(family.folder)]
    assert again.count(TEXTS).tolist() == autotokenizer_lengths(family.folder, TEXTS)
    assert stored.read_text(encoding="utf-8") == data  # and the cache is whole again
    assert warm_load(family.folder, monkeypatch).count(TEXTS).tolist() == again.count(TEXTS).tolist()


@pytest.mark.parametrize("damage", ["a folder", "a link to another's", "empty"])
def test_a_cached_tokenizer_that_is_no_file_of_its_own_is_built_again_and_leaves_nothing(
    families, cache, monkeypatch, damage
):
    """The cached tokenizer's place taken by a folder, a link to another tokenizer's cached file,
    or an empty file: each load builds it through transformers and counts as AutoTokenizer does,
    and a cache file that cannot be written leaves no temporary copy behind (one per scan: a real
    vocabulary's megabytes each)."""
    family, other = families("bert-uncased"), families("xlm-roberta")
    load_tokenizer(str(other.folder))
    (others,) = cache.glob("*.tokenizer.json")
    load_tokenizer(str(family.folder))
    (stored,) = set(cache.glob("*.tokenizer.json")) - {others}
    stored.unlink()
    if damage == "a folder":
        stored.mkdir()
    elif damage == "a link to another's":
        stored.symlink_to(others)
    else:
        stored.touch()
    before = sorted(p.name for p in cache.iterdir())
    for _ in range(2):
        again = load_tokenizer(str(family.folder))
        assert again.count(TEXTS).tolist() == autotokenizer_lengths(family.folder, TEXTS)
    assert not list(cache.glob(".lenprof-*"))  # no temporary file left
    assert others.is_file() and Tokenizer.from_file(str(others)) is not None  # the other's untouched
    if damage == "a folder":
        assert sorted(p.name for p in cache.iterdir()) == before
    else:  # replaced by the file itself
        assert stored.is_file() and not stored.is_symlink()
        assert warm_load(family.folder, monkeypatch).count(TEXTS).tolist() == again.count(TEXTS).tolist()


def test_warm_load_imports_neither_transformers_nor_torch(family, cache):
    """A second process that loads the folder from a warm cache counts the same lengths without
    importing transformers or torch."""
    cold = load_tokenizer(str(family.folder))  # fills the cache
    code = (
        "import json, sys\n"
        "from lenprof.count.load import load_tokenizer\n"
        "t = load_tokenizer(sys.argv[1])\n"
        "counts = t.count(json.load(sys.stdin)).tolist()\n"
        "imported = [m for m in ('transformers', 'torch') if m in sys.modules]\n"
        "print(json.dumps({'counts': counts, 'imported': imported, 'info': t.info.to_dict()}))\n"
    )
    env = {**os.environ, "LENPROF_CACHE_DIR": str(cache.parent), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", code, str(family.folder)],
        input=json.dumps(TEXTS),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["imported"] == []
    assert out["counts"] == autotokenizer_lengths(family.folder, TEXTS)
    assert out["info"] == cold.info.to_dict()


def _fuse_two_pieces(folder: Path) -> str:
    """Edit the vocabulary in tokenizer.json: a word that splits into exactly two pieces gets a
    piece of its own (and, for BPE, the merge that makes it). Returns the word."""
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(folder))
    path = folder / "tokenizer.json"
    tj = json.loads(path.read_text(encoding="utf-8"))
    model = tj["model"]
    words = sorted({w.lower() for w in VOCAB_WORDS if w.isascii() and w.isalpha() and len(w) > 1})
    for word in words + [x + y for x in words[:40] for y in words[:40]]:
        pieces = t.tokenize(word)
        if len(pieces) == 2 and t.unk_token not in pieces:
            a, b = pieces
            break
    else:  # pragma: no cover - the generated vocabulary always has such words
        raise AssertionError("no word splits into two pieces")
    vocab = model["vocab"]
    ids = list(vocab.values()) if isinstance(vocab, dict) else [len(vocab) - 1]
    new_id = max(ids + [tok["id"] for tok in tj["added_tokens"]]) + 1
    if model["type"] == "WordPiece":
        b = b.removeprefix(model["continuing_subword_prefix"])
    if model["type"] == "Unigram":  # a log-probability of 0 beats any split into two pieces
        assert len(vocab) == new_id
        vocab.append([a + b, 0.0])
    else:
        assert model["type"] in ("WordPiece", "BPE") and a + b not in vocab
        vocab[a + b] = new_id
    if model["type"] == "BPE":
        merges = model["merges"]
        merges.append([a, b] if merges and isinstance(merges[0], list) else f"{a} {b}")
    path.write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    return word


def _add_special_token(folder: Path) -> str:
    """Edit tokenizer_config.json alone: one more special token, which transformers then never splits."""
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["additional_special_tokens"] = ["<lenprof-marker>"]
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return "before<lenprof-marker>after <lenprof-marker>"


def _declare_max_length(folder: Path) -> str:
    """Edit tokenizer_config.json alone: a model_max_length of 100, below every config's limit."""
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["model_max_length"] = 100
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return ""


EDITS = {"vocab": _fuse_two_pieces, "special-token": _add_special_token, "max-length": _declare_max_length}


@pytest.mark.parametrize("edit", list(EDITS))
def test_editing_a_tokenizer_file_changes_the_cache_key(family, edit, cache, tmp_path, monkeypatch):
    """An edited tokenizer file gets a new cache key, so the stale entry is never read: the counts
    and limits after the edit, cold and warm, are a fresh AutoTokenizer's."""
    folder = copy_family(family, tmp_path)
    before = load_tokenizer(str(folder))
    key_before = lf._folder_key(str(folder))

    probe = EDITS[edit](folder)
    texts = [probe, *TEXTS]
    assert lf._folder_key(str(folder)) != key_before
    after = load_tokenizer(str(folder))
    assert len(list(cache.glob("*.tokenizer.json"))) == 2  # the stale entry stays, unread
    expected = autotokenizer_lengths(folder, texts)
    assert after.count(texts).tolist() == expected
    assert warm_load(folder, monkeypatch).count(texts).tolist() == expected

    if edit == "max-length":
        assert after.info.model_max_length == after.cap == 100 != before.cap
    else:  # the probe counts fewer tokens than before the edit
        assert expected[0] < before.count([probe]).tolist()[0]
        assert _limits(after.info) == _limits(before.info)


def test_weight_files_do_not_change_the_cache_key(families, cache, tmp_path, monkeypatch):
    """Model weights never shape a tokenizer: adding or rewriting them keeps the key, so a warm
    cache survives them."""
    folder = copy_family(families("bert-uncased"), tmp_path)
    cold = load_tokenizer(str(folder))
    key = lf._folder_key(str(folder))
    (folder / "model.safetensors").write_bytes(b"not really weights")
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 1000)
    assert lf._folder_key(str(folder)) == key
    assert warm_load(folder, monkeypatch).count(TEXTS).tolist() == cold.count(TEXTS).tolist()
    (folder / "vocab.txt").write_text("[PAD]\n")  # but any other file does change it
    assert lf._folder_key(str(folder)) != key


def test_packaged_model_cold_and_warm(cache, monkeypatch):
    """The packaged model loaded as the default (no --tokenizer) counts the same cold and warm as
    an AutoTokenizer of its folder, with the same limits."""
    model = lt.packaged_model_path()
    expected = autotokenizer_lengths(model, TEXTS)
    cold = load_tokenizer(None)
    warm = warm_load(None, monkeypatch)
    assert cold.count(TEXTS).tolist() == warm.count(TEXTS).tolist() == expected
    assert cold.info == warm.info and (warm.info.source, warm.info.cap) == ("packaged", 512)


def without_transformers(monkeypatch) -> None:
    """As in a venv without the transformers extra: importing it fails, and lenprof knows."""
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setattr(lf, "has_transformers", lambda: False)


def test_packaged_model_without_transformers_counts_as_autotokenizer(cache, monkeypatch):
    """Without the transformers extra (what `make demo` installs), the packaged default loads from
    its tokenizer.json: the counts and limits are exactly those AutoTokenizer gives (issue 22)."""
    model = lt.packaged_model_path()
    expected = autotokenizer_lengths(model, TEXTS)
    through_transformers = load_tokenizer(None)
    for entry in cache.iterdir():  # cold again, and nothing written by the load below
        entry.unlink()
    with monkeypatch.context() as m:
        without_transformers(m)
        alone = load_tokenizer(None)
    assert alone.count(TEXTS).tolist() == expected
    assert alone.info == through_transformers.info and (alone.info.source, alone.info.cap) == (
        "packaged",
        512,
    )
    assert list(cache.iterdir()) == []


def test_a_model_folder_without_transformers_says_how_to_install_it(families, cache, monkeypatch):
    """A model folder is read as the trainer reads it, through AutoTokenizer: without transformers,
    one line with the pip line, never counts from a file transformers would have rewritten."""
    folder = families("roberta").folder  # its tokenizer.json alone miscounts (raw_differs)
    without_transformers(monkeypatch)
    with pytest.raises(lt.TokenizerError) as err:
        load_tokenizer(str(folder))
    assert str(err.value) == (
        f"--tokenizer {folder}: a model folder or hub id is loaded as the trainer loads it, by "
        "transformers, which is not installed: pip install 'lenprof[transformers]' (or pass the "
        "tokenizer.json itself to count with that file as it is)"
    )


SPLIT_TEXTS = ["[CLS] [SEP] [MASK]", "a [SEP] b", "no special tokens here"]


def _split_special_tokens_folder(families, tmp_path) -> Path:
    folder = copy_family(families("bert-uncased"), tmp_path)
    cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["split_special_tokens"] = True  # transformers then tokenizes "[SEP]" in a text as plain text
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return folder


def test_split_special_tokens_cold(families, cache, tmp_path):
    """split_special_tokens=True (special-token text split like any other): the cold load counts
    what AutoTokenizer counts, more than without the setting."""
    folder = _split_special_tokens_folder(families, tmp_path)
    expected = autotokenizer_lengths(folder, SPLIT_TEXTS)
    unsplit = autotokenizer_lengths(families("bert-uncased").folder, SPLIT_TEXTS)
    assert [e > u for e, u in zip(expected, unsplit, strict=True)] == [True, True, False]
    assert load_tokenizer(str(folder)).count(SPLIT_TEXTS).tolist() == expected


def test_split_special_tokens_warm(families, cache, tmp_path, monkeypatch):
    """split_special_tokens=True: the warm load counts what AutoTokenizer counts."""
    folder = _split_special_tokens_folder(families, tmp_path)
    expected = autotokenizer_lengths(folder, SPLIT_TEXTS)
    load_tokenizer(str(folder))
    assert warm_load(folder, monkeypatch).count(SPLIT_TEXTS).tolist() == expected


def test_split_special_tokens_reach_the_workers(families, cache, tmp_path):
    """The flag lives outside the tokenizer's JSON: worker processes must get it too."""
    from lenprof import scan

    folder = _split_special_tokens_folder(families, tmp_path)
    rows = [
        {"query": t or "q", "pos": [f"{t} p{i}"], "neg": [f"n{i} {t}"]} for i, t in enumerate(SPLIT_TEXTS)
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = sum(
        autotokenizer_lengths(folder, [t for r in rows for t in (r["query"], *r["pos"], *r["neg"])])
    )
    for workers in (1, 2):
        p = scan(str(data), tokenizer=str(folder), workers=workers, shard_bytes=60)
        assert p.histograms["query"].tokens + p.histograms["passage"].tokens == expected
