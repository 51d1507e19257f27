"""Loading a tokenizer by path, folder or hub id, the way the trainer loads it: a tokenizer.json read
as it is; a model folder or hub id built once by transformers' AutoTokenizer and cached.

transformers is an extra (``pip install 'lenprof[transformers]'``): AutoTokenizer applies
tokenizer_config.json on top of tokenizer.json (special tokens, add_prefix_space; transformers 5
rebuilds the pipeline from the tokenizer class), so a folder read without it could count otherwise
than the trainer, silently. Without transformers, a cold folder or hub id is refused with that pip
line; the packaged default loads from its tokenizer.json, which the tests prove counts exactly as
AutoTokenizer does (tests/test_tokenize_families.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from lenprof.count.tokenizer import (
    PACKAGED,
    LoadedTokenizer,
    TokenizerError,
    TokenizerInfo,
    _int,
    _limits,
    _load_file,
    _read_json,
    _real,
    _switch_off,
    packaged_model_path,
)
from lenprof.version import installed

CACHE_VERSION = 3
# A folder holds a tokenizer if it has one of these (the vocabularies: with a config.json).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
NEEDED = (
    "tokenizer.json, or tokenizer_config.json with its vocabulary: vocab.txt, vocab.json + "
    "merges.txt, or a sentencepiece .model"
)
INSTALL = "pip install 'lenprof[transformers]'"
# Files that never shape a tokenizer: model weights, skipped when keying the cache.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".ot", ".ckpt", ".gguf")


def load_tokenizer(spec: str | None) -> LoadedTokenizer:
    """``spec``: a ``tokenizer.json``, a model folder or a hub id; None means the packaged model."""
    if spec is None or spec == PACKAGED:  # the name lenprof prints for its default: its own copy
        return _load_folder(str(packaged_model_path()), name=PACKAGED, source="packaged")
    if os.path.isfile(spec):
        return _load_file(spec)
    if os.path.isdir(spec):
        return _load_folder(spec, name=spec, source="folder")
    if spec.endswith(".json") or spec.startswith((".", "/", "~")):
        raise TokenizerError(f"--tokenizer {spec}: no such file or folder")
    from lenprof.count.hub import HubError, locate, quiet_hub

    try:
        snapshot = locate(spec)
    except HubError as exc:
        raise TokenizerError(f"--tokenizer {spec}: {exc}") from None
    if snapshot is not None:  # offline, or the hub unreachable: the cached copy
        return _load_folder(snapshot, name=spec, source="hub")
    with quiet_hub():
        return _load_auto(spec, name=spec, source="hub")


# --- the cache of what transformers builds ---------------------------------------------------------


def cache_dir() -> Path:
    """``LENPROF_CACHE_DIR``, else ``$XDG_CACHE_HOME/lenprof``, else ``~/.cache/lenprof``."""
    if os.environ.get("LENPROF_CACHE_DIR"):
        return Path(os.environ["LENPROF_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lenprof"


def _folder_key(folder: str) -> str:
    """A digest of everything that shapes the tokenizer transformers builds from ``folder``."""
    h = hashlib.sha256()
    for part in (CACHE_VERSION, *installed("transformers", "tokenizers", "sentencepiece")):
        h.update(f"{part}\0".encode())
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.lower().endswith(WEIGHT_SUFFIXES) or not entry.is_file():
            continue
        st = entry.stat()
        h.update(f"{entry.name}\0{st.st_size}\0".encode())
        if st.st_size <= 64 << 20:
            with open(entry.path, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
        else:
            h.update(f"{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:32]


def _load_folder(folder: str, name: str, source: str) -> LoadedTokenizer:
    from tokenizers import Tokenizer

    try:
        _check_has_tokenizer(folder, name)
        key = _folder_key(folder)
    except OSError as exc:
        raise TokenizerError(f"--tokenizer {name}: cannot read {folder} ({exc.strerror})") from exc
    entry = cache_dir() / "tokenizers" / f"{key}.json"
    # The tokenizer's JSON in a file of its own, parsed once, by Rust (inside the entry's JSON it
    # was parsed twice: a real vocabulary's megabytes), written before the entry that names its
    # digest: an entry is read only with the very tokenizer it was written with.
    backend_file = entry.with_name(f"{key}.tokenizer.json")
    try:
        cached = json.loads(entry.read_text(encoding="utf-8"))
        info = TokenizerInfo.from_dict({**cached["info"], "name": name, "source": source})
        data = backend_file.read_bytes()
        if hashlib.sha256(data).hexdigest() != cached["backend_sha256"]:
            raise ValueError(f"{backend_file} is not the file its entry was written with")
        backend = Tokenizer.from_str(data.decode("utf-8"))
        # split_special_tokens lives on the Rust object, outside its JSON
        backend.encode_special_tokens = cached["encode_special_tokens"]
        return LoadedTokenizer(info, backend)
    except Exception:  # absent, unreadable or from another tokenizers: build it again
        pass
    if source == "packaged" and not has_transformers():
        return _load_packaged(folder)
    loaded = _load_auto(folder, name=name, source=source)
    data = loaded.backend.to_str().encode("utf-8")
    if _store(backend_file, data):
        entry_json = {
            "info": asdict(loaded.info),
            "backend_sha256": hashlib.sha256(data).hexdigest(),
            "encode_special_tokens": bool(getattr(loaded.backend, "encode_special_tokens", False)),
        }
        _store(entry, json.dumps(entry_json).encode("utf-8"))
    return loaded


def _store(path: Path, data: bytes) -> bool:
    """Write a cache file atomically; a cache that cannot be written is no error (False)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".lenprof-", suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return True
    except OSError:  # a full disk, a folder in the file's place: no copy left behind, each scan
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0].rstrip(".:") if lines else type(exc).__name__)[:200]


def _check_has_tokenizer(folder: str, name: str) -> None:
    """Refuse a folder without a tokenizer file before transformers tries one: it would say
    "sentencepiece or tiktoken" for an empty folder, and from a lone config.json it builds a
    tokenizer without a vocabulary and counts with it, silently."""
    if any(os.path.isfile(os.path.join(folder, f)) for f in TOKENIZER_FILES):
        return
    inside = sorted(
        e.path
        for e in os.scandir(folder)
        if e.is_dir() and any(os.path.isfile(os.path.join(e.path, f)) for f in TOKENIZER_FILES[:2])
    )
    there = f"; {inside[0]} has one: pass that" if inside else "; pass the model folder that holds them"
    raise TokenizerError(f"--tokenizer {name}: no tokenizer in this folder (looked for {NEEDED}){there}")


def has_transformers() -> bool:
    """Whether the ``transformers`` extra is installed (without importing it: seconds, and torch)."""
    return importlib.util.find_spec("transformers") is not None


def _load_packaged(folder: str) -> LoadedTokenizer:
    """The packaged all-MiniLM-L6-v2 without transformers: its tokenizer.json, which AutoTokenizer
    leaves as it is (BERT-uncased WordPiece, every setting in tokenizer_config.json agreeing)."""
    loaded = _load_file(os.path.join(folder, "tokenizer.json"))
    info = TokenizerInfo.from_dict({**asdict(loaded.info), "name": PACKAGED, "source": "packaged"})
    return LoadedTokenizer(info, loaded.backend)


def _load_auto(spec: str, name: str, source: str) -> LoadedTokenizer:
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError as exc:
        raise TokenizerError(
            f"--tokenizer {name}: a model folder or hub id is loaded as the trainer loads it, by "
            f"transformers, which is not installed: {INSTALL} (or pass the tokenizer.json itself to "
            "count with that file as it is)"
        ) from exc
    try:
        tok = AutoTokenizer.from_pretrained(spec)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        raise TokenizerError(
            f"--tokenizer {name}: could not build a tokenizer from {spec} ({_first_line(exc)}); "
            f"it needs {NEEDED}"
        ) from exc
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise TokenizerError(
            f"--tokenizer {name}: only a slow (Python) tokenizer is available; lenprof needs a fast "
            "(Rust) one: save it with a tokenizer.json (AutoTokenizer.from_pretrained(..., "
            "use_fast=True).save_pretrained(folder))"
        )
    try:
        config = AutoConfig.from_pretrained(spec).to_dict()
    except Exception:  # a tokenizer-only folder or repo has no model config
        config = {}
    mpe, offset = _limits(config)
    st = None  # a hub id's sentence-transformers config is not read: online, no folder is known
    if source != "hub":
        st = _read_json(Path(spec) / "sentence_bert_config.json").get("max_seq_length")
    info = TokenizerInfo(
        name=name,
        source=source,
        model_max_length=_real(getattr(tok, "model_max_length", None)),
        max_position_embeddings=mpe,
        position_offset=offset,
        st_max_seq_length=_int(st),
    )
    return LoadedTokenizer(info, _switch_off(backend))
