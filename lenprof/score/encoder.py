"""Embeddings of distinct texts as the base model makes them: the model's pooling, L2-normalized,
in batches packed by length (issue 25's scoring, first part).

sentence-transformers' ``encode`` sorts its texts by length and runs them ``batch_size`` at a
time, each batch padded to its longest text: short texts go in small batches, where a CPU runs a
transformer least well. Here each batch holds as many texts as fit a token budget (rows times
the batch's longest text, the tokens the model computes, padding included), so a batch of short
texts is as large as one of long texts is costly. The texts are tokenized once, by the model's
own ``tokenizer.json`` through the Rust backend, truncated at the model's limit as
sentence-transformers truncates them; the results are in the order the texts were given::

    enc = TextEncoder(ModelCard.read(model_folder))
    enc.encode(["what is a cat", "a cat is an animal"])   # (2, 384) float32 for MiniLM

tests/test_score_encoder.py holds them to sentence-transformers' ``encode`` (mean and CLS).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenprof.count import hub
from lenprof.count.load import cache_dir
from lenprof.errors import InputError
from lenprof.score.cache import EmbeddingCache, model_key
from lenprof.score.options import CPU_TOKEN_BUDGET, GPU_TOKEN_BUDGET


@dataclass(frozen=True)
class ModelCard:
    """What scoring needs to know of a model folder: how it pools, how long a text it reads."""

    path: str
    pooling: str  # "mean" or "cls"
    max_length: int  # tokens, the special ones included

    @classmethod
    def read(cls, path: str | Path, max_length: int | None = None) -> ModelCard:
        """A sentence-transformers folder's pooling (``1_Pooling/config.json``; else CLS, BGE's
        choice) and limit (``sentence_bert_config.json``'s ``max_seq_length``, else the
        smaller of the model's positions and the tokenizer's ``model_max_length``)."""
        folder = Path(path)
        if max_length is None:
            max_length = _config(folder, "sentence_bert_config.json").get("max_seq_length")
        if max_length is None:
            limits = [
                _config(folder, "config.json").get("max_position_embeddings"),
                _config(folder, "tokenizer_config.json").get("model_max_length"),
            ]
            usable = [int(x) for x in limits if type(x) in (int, float) and 1 < x < 1e9]
            if not usable:
                raise InputError(
                    f"--model {folder}: says nowhere how long a text it reads (max_seq_length in "
                    "sentence_bert_config.json, max_position_embeddings in config.json, model_max_length "
                    "in tokenizer_config.json); set one of them"
                )
            max_length = min(usable)
        if not (type(max_length) in (int, float) and 2 <= max_length < 1e9 and max_length == int(max_length)):
            raise InputError(
                f"--model {folder}: sentence_bert_config.json's max_seq_length must be a whole number of "
                f"tokens, got {max_length!r}"
            )
        return cls(str(folder), pooling_of(folder), int(max_length))


def model_folder(spec: str) -> str:
    """The local folder of ``--model``: a folder as given, else a hub id's snapshot (the cache
    first, as the tokenizer's is found: ``count/hub.py``), downloaded when the hub answers.
    Raises :class:`InputError` with one line saying what to do."""
    if os.path.isdir(spec):
        missing = [f for f in ("config.json", "tokenizer.json") if not os.path.isfile(os.path.join(spec, f))]
        if missing:
            raise InputError(
                f"--model {spec}: the folder has no {' and no '.join(missing)}; pass a sentence-transformers "
                "or Hugging Face model folder (one saved with save_pretrained)"
            )
        return spec
    if os.path.exists(spec) or spec.startswith(("/", ".", "~")) or spec.count("/") > 1:  # no hub id
        what = "is a file" if os.path.exists(spec) else "no such folder"
        raise InputError(
            f"--model {spec}: {what}; pass a model folder (config.json, tokenizer.json and the weights) "
            "or a hub id (owner/name)"
        )
    try:
        folder = hub.locate(spec)
        if folder is None:
            from huggingface_hub import snapshot_download

            with hub.quiet_hub():
                folder = snapshot_download(spec)
    except hub.HubError as exc:  # the tokenizer's words, but a model is no tokenizer.json
        raise InputError(
            f"--model {spec}: {str(exc).replace(hub.LOCAL_WAYS, 'or pass a local model folder')}"
        ) from None
    except Exception as exc:  # a download that failed half-way: the hub's own errors
        raise InputError(
            f"--model {spec}: cannot be downloaded ({' '.join(str(exc).split())[:160]})"
        ) from None
    return model_folder(folder)


def load_encoder(opts) -> TextEncoder:
    """The encoder of a scan's ``ScoreOptions``, or :class:`InputError` saying why the model
    cannot be loaded (the folder was checked at the plan; this is the worker loading it)."""
    try:
        if opts.threads:
            import torch

            torch.set_num_threads(opts.threads)  # workers side by side: no core asked for twice
        encoder = TextEncoder(ModelCard.read(opts.model), opts.device, opts.token_budget)
    except InputError:
        raise  # the device's, said already
    except ImportError as exc:
        raise InputError(
            f"--model needs torch and transformers ({exc}): pip install 'lenprof[train]'"
        ) from None
    except Exception as exc:
        raise InputError(
            f"--model {opts.model}: cannot be loaded ({' '.join(str(exc).split())[:160]})"
        ) from None
    if opts.cache:
        encoder.use_cache(cache_dir() / "embeddings")
    return encoder


def torch_device(spec: str):
    """``--device`` as torch's device (``auto``: CUDA where there is one, else the CPU), or
    :class:`InputError` saying it cannot be used here: not a device, or one this machine lacks."""
    import torch

    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
        torch.empty(0, device=device)  # a device this machine lacks fails here, not as the model's fault
    except Exception as exc:  # RuntimeError, or AssertionError: "Torch not compiled with CUDA enabled"
        raise InputError(
            f"--device {spec}: cannot be used here ({' '.join(str(exc).split())[:120]}); use auto, cpu or cuda:N"
        ) from None
    return device


def pooling_of(folder: str | Path) -> str:
    """``mean`` or ``cls``: what a sentence-transformers folder's ``1_Pooling/config.json``
    says, else ``cls`` (BGE's choice). The trainer pools by it too (``train/model.py``)."""
    return "mean" if _config(Path(folder), "1_Pooling/config.json").get("pooling_mode_mean_tokens") else "cls"


def _config(folder: Path, name: str) -> dict:
    """The JSON object in ``folder/name``, {} when there is no such file; :class:`InputError`
    naming the file when it holds something else."""
    path = folder / name
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise InputError(f"--model {folder}: {name} cannot be read as JSON ({exc})") from None
    if not isinstance(found, dict):
        raise InputError(f"--model {folder}: {name} holds a JSON {type(found).__name__}, not an object")
    return found


class TextEncoder:
    """The model of ``card`` on ``device`` (``auto``: CUDA in bf16 where there is one, else the
    CPU in fp32), encoding texts in length-packed batches of at most ``token_budget`` tokens."""

    def __init__(self, card: ModelCard, device: str = "auto", token_budget: int | None = None):
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # stderr carries lenprof's own lines
        self.card = card
        self.device = torch_device(device)
        if token_budget is None:  # small batches stay in a CPU's caches; a GPU wants large ones
            token_budget = CPU_TOKEN_BUDGET if self.device.type == "cpu" else GPU_TOKEN_BUDGET
        self.token_budget = token_budget
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model = AutoModel.from_pretrained(card.path, dtype=dtype).to(self.device).eval()
        self.tokenizer = Tokenizer.from_file(str(Path(card.path) / "tokenizer.json"))
        padding = self.tokenizer.padding  # the file's own pad token, read before it is turned off
        self.pad_id = padding["pad_id"] if padding else self._pad_id()
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(card.max_length)
        self.truncated = 0  # texts cut at the model's limit, over every call
        self.halved = 0  # times the device ran out of memory and the token budget was halved
        self.cache: EmbeddingCache | None = None  # embeddings kept between scans (``cache.py``)
        self.from_cache = 0  # texts whose embedding the cache had, over every call

    def use_cache(self, folder: Path) -> None:
        """Keep embeddings in ``folder`` between scans; a cache that cannot be opened is none
        (this scan embeds every text), and one that is no database (damaged) is started again."""
        kind = f"{self.device.type}:{'bf16' if self.device.type == 'cuda' else 'fp32'}"
        key = model_key(self.card.path, self.card.pooling, self.card.max_length, kind)
        self._cache_path = folder / f"{key}.sqlite"
        try:
            self.cache = EmbeddingCache(self._cache_path)
        except (OSError, sqlite3.Error) as exc:
            self.cache = None
            self._start_again(exc)

    def _start_again(self, exc: BaseException) -> None:
        """After a cache error: a file SQLite cannot read as a database (not a lock, not a
        read-only disk: those are ``OperationalError``) is removed and made again, else every
        later scan would skip the cache too. What it held is embedded again; nothing else is lost."""
        self.cache = None
        if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.OperationalError):
            return
        path = str(self._cache_path)
        for stale in (path, f"{path}-wal", f"{path}-shm"):
            with contextlib.suppress(OSError):
                os.unlink(stale)
        with contextlib.suppress(OSError, sqlite3.Error):
            self.cache = EmbeddingCache(self._cache_path)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _pad_id(self) -> int:
        for token in ("[PAD]", "<pad>", "<|endoftext|>"):
            found = self.tokenizer.token_to_id(token)
            if found is not None:
                return found
        return 0  # masked out: its embedding never counts

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit length, in the order of ``texts``: from
        the cache where it has them, the rest embedded (and kept there)."""
        if self.cache is None:
            out, cut = self._encode(texts)
            self.truncated += int(cut.sum())
            return out
        try:
            found = self.cache.get(texts, self.dim)
        except sqlite3.Error as exc:
            self._start_again(exc)
            found = {}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors, cut = self._encode(missing)
            if self.cache is not None:
                try:
                    self.cache.put(missing, vectors, cut.tolist())
                except sqlite3.Error as exc:
                    self._start_again(exc)
            found.update(zip(missing, zip(vectors, cut.tolist(), strict=True), strict=True))
        self.from_cache += len(texts) - len(missing)
        self.truncated += sum(1 for t in texts if found[t][1])
        return np.stack([found[t][0] for t in texts]) if texts else np.empty((0, self.dim), np.float32)

    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each text's embedding, and whether it was cut at the model's limit."""
        import torch

        encodings = self.tokenizer.encode_batch_fast(list(texts))
        ids = [e.ids for e in encodings]
        cut = np.array([bool(e.overflowing) for e in encodings], dtype=bool)
        lengths = np.array([len(i) for i in ids], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        dim = self.model.config.hidden_size
        out = np.empty((len(ids), dim), np.float32)
        with torch.inference_mode():
            done, sorted_lengths = 0, lengths[order]
            while done < len(order):
                rows = order[done : batch_end(sorted_lengths, done, self.token_budget)]
                longest = int(lengths[rows[-1]])
                x = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
                mask = np.zeros((len(rows), longest), dtype=np.int64)
                for k, r in enumerate(rows.tolist()):
                    x[k, : lengths[r]] = ids[r]
                    mask[k, : lengths[r]] = 1
                try:
                    out[rows] = self._pooled(torch.from_numpy(x), torch.from_numpy(mask))
                except (torch.OutOfMemoryError, MemoryError):
                    if len(rows) == 1:
                        raise InputError(
                            f"--model {self.card.path}: one text of {longest} tokens does not fit the "
                            f"{self.device.type} device's memory; score on a larger device or with --device cpu"
                        ) from None
                    self.token_budget = max(1, self.token_budget // 2)  # and try this batch again, halved
                    self.halved += 1
                    continue
                done += len(rows)
        broken = ~np.isfinite(out).all(axis=1)
        if broken.any():  # a NaN score would be written as such, and distilled from
            first = texts[int(np.argmax(broken))]
            hint = (
                ", or bf16 overflows on this device: try --device cpu" if self.device.type == "cuda" else ""
            )
            raise InputError(
                f"--model {self.card.path}: {int(broken.sum())} of {len(texts)} texts embed to NaN or inf "
                f"(the first: {first[:60]!r}): the model's weights are broken{hint}"
            )
        return out, cut

    def _pooled(self, input_ids, attention_mask) -> np.ndarray:
        import torch

        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (n, L, d)
        if self.card.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (n, L, 1)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()


def batch_end(sorted_lengths: np.ndarray, start: int, budget: int) -> int:
    """Where the batch that starts at ``start`` ends: as many rows as keep rows times the last
    (longest) length within ``budget``, and one at least.

    >>> batch_end(np.array([2, 2, 3, 5, 5, 9]), 0, 10), batch_end(np.array([2, 2, 3, 5, 5, 9]), 5, 10)
    (3, 6)
    """
    window = sorted_lengths[start : start + budget]  # a text has a token at least: no more fit
    fits = np.arange(1, len(window) + 1) * window <= budget  # true, then false: lengths ascend
    return start + max(1, int(np.argmin(fits)) if not fits.all() else len(fits))


def batches(sorted_lengths: np.ndarray, budget: int) -> list[slice]:
    """Cut lengths in ascending order into runs whose rows times their last (longest) length
    stay within ``budget`` tokens; a text longer than the budget is a batch of its own: every
    batch :meth:`TextEncoder.encode` runs, cut ahead (the encoder cuts one at a time with
    :func:`batch_end`, as its budget may halve).

    >>> batches(np.array([2, 2, 3, 5, 5, 9]), 10)
    [slice(0, 3, None), slice(3, 5, None), slice(5, 6, None)]
    """
    cuts, start = [], 0
    while start < len(sorted_lengths):
        end = batch_end(sorted_lengths, start, budget)
        cuts.append(slice(start, end))
        start = end
    return cuts
