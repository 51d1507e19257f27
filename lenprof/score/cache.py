"""Embeddings kept on disk between scans (``scan --model``): a re-scan of the same texts with the
same model embeds nothing again.

One SQLite file per model, under ``LENPROF_CACHE_DIR`` (else ``$XDG_CACHE_HOME/lenprof``, else
``~/.cache/lenprof``) in ``embeddings/``, named by a digest of everything that shapes an
embedding: the model folder's files (their bytes; a weights file over 64 MiB by its name, size
and modification time), its pooling and limit, the device kind and precision, and the versions
of torch and transformers. A text's key is the BLAKE2b-128 digest of its UTF-8 bytes, as the
model reads it (instruction and prompt included): no two texts share one but by a collision no
one can make. Workers write side by side (SQLite's locks); a cache that cannot be opened or
written is skipped, never a failed scan.

    >>> import tempfile, numpy as np
    >>> c = EmbeddingCache(Path(tempfile.mkdtemp()) / "m.sqlite")
    >>> c.put(["a", "b"], np.eye(2, dtype=np.float32), [False, True])
    >>> found = c.get(["b", "c"], dim=2); sorted(found), found["b"][0].tolist(), found["b"][1]
    (['b'], [0.0, 1.0], True)
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lenprof.version import installed

CACHE_VERSION = "1"
_CHUNK = 500  # keys a query asks for at once (SQLite's bound on parameters is 999 or more)


def key_of(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def model_key(folder: str, pooling: str, max_length: int, device: str) -> str:
    """A digest of everything that shapes the embeddings made from ``folder`` (see above)."""
    h = hashlib.sha256()
    for part in (CACHE_VERSION, pooling, str(max_length), device, *installed("torch", "transformers")):
        h.update(f"{part}\0".encode())
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            st = os.stat(path)
            h.update(f"{os.path.relpath(path, folder)}\0{st.st_size}\0".encode())
            if st.st_size <= 64 << 20:
                with open(path, "rb") as fh:
                    h.update(hashlib.sha256(fh.read()).digest())
            else:
                h.update(f"{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:32]


class EmbeddingCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=120, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS e (k BLOB PRIMARY KEY, v BLOB NOT NULL, t INTEGER NOT NULL)"
        )

    def get(self, texts: Sequence[str], dim: int) -> dict[str, tuple[np.ndarray, bool]]:
        """The cached (embedding, truncated) of each of ``texts`` that has one. An entry that is
        not ``dim`` finite floats (a file damaged, or written by other code) is none: the text
        is embedded again, and :meth:`put` replaces it."""
        by_key = {key_of(t): t for t in texts}
        keys = list(by_key)
        found = {}
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            for k, v, t in self.db.execute(f"SELECT k, v, t FROM e WHERE k IN ({marks})", part):
                if isinstance(v, bytes) and len(v) == 4 * dim:
                    vector = np.frombuffer(v, dtype=np.float32)
                    if np.isfinite(vector).all():
                        found[by_key[k]] = (vector, bool(t))
        return found

    def put(self, texts: Sequence[str], vectors: np.ndarray, truncated: Sequence[bool]) -> None:
        rows = [
            (key_of(t), np.ascontiguousarray(v, dtype=np.float32).tobytes(), int(c))
            for t, v, c in zip(texts, vectors, truncated, strict=True)
        ]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT OR REPLACE INTO e VALUES (?, ?, ?)", rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
