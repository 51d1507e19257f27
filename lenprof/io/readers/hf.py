"""Hugging Face ``datasets``: ``save_to_disk`` folders and hub datasets, read through the
``datasets`` library (an optional extra: ``pip install 'lenprof[hf]'``).

- A folder holding ``state.json`` and ``dataset_info.json`` (a ``Dataset``) is read as that
  dataset, its ``.arrow`` data, never as its metadata files; found inside a scanned folder, it is
  one input too.
- A folder holding ``dataset_dict.json`` (a ``DatasetDict``) needs ``--split``; without it the
  scan stops and lists the splits there are. Its input is then ``FOLDER/SPLIT``.
- ``hf://ORG/NAME`` (or ``hf://ORG/NAME/CONFIG``) with ``--split`` is a hub dataset, loaded as
  ``datasets.load_dataset(ORG/NAME, CONFIG, split=SPLIT)`` would: offline
  (``HF_HUB_OFFLINE=1``), the Hugging Face cache serves it, and a dataset it lacks fails at once.
  When the hub cannot be reached (no network), the load goes offline at once too, instead of
  the five retries ``huggingface_hub`` would print over half a minute.

Rows come as dicts, as Parquet rows do, a piece of about ``--shard-size`` at a time, so memory
holds only the pieces in flight. A ``save_to_disk`` folder's ``.arrow`` files are read record
batch by record batch, never memory-mapped: a file truncated while it is read is then an error
that names it, not a SIGBUS that kills the scan (a hub dataset, in the cache that
``datasets`` alone writes, stays memory-mapped). A row's "line" is its 1-based position in the
split.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from lenprof.errors import InputError
from lenprof.io.files import InputFile

HUB = "hf://"
INSTALL = "pip install 'lenprof[hf]'"


def saved_kind(folder: str) -> str | None:
    """``"dataset"`` or ``"dict"`` for a ``save_to_disk`` folder, else None."""
    if os.path.isfile(os.path.join(folder, "dataset_dict.json")):
        return "dict"
    if all(os.path.isfile(os.path.join(folder, f)) for f in ("state.json", "dataset_info.json")):
        return "dataset"
    return None


def saved(folder: str, split: str | None) -> InputFile:
    """A ``save_to_disk`` folder as an input; a ``DatasetDict`` needs ``split``."""
    if saved_kind(folder) == "dict":
        try:
            with open(os.path.join(folder, "dataset_dict.json"), encoding="utf-8") as fh:
                splits = [str(s) for s in json.load(fh)["splits"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{folder}: dataset_dict.json cannot be read ({exc})") from exc
        if split is None or split not in splits:
            what = "holds the splits" if split is None else f"has no split {split!r}; its splits are"
            raise InputError(
                f"{folder}: a datasets DatasetDict that {what} {', '.join(splits)}; "
                f"choose one with --split, e.g. --split {splits[0] if splits else 'train'}"
            )
        folder = os.path.join(folder, split)
    else:
        split = None  # one Dataset: it is what it is, whatever --split says
    size = sum(e.stat().st_size for e in os.scandir(folder) if e.name.endswith(".arrow") and e.is_file())
    return InputFile(folder, "datasets", split=split, known_size=size)


def hub(spec: str, split: str | None) -> InputFile:
    """``hf://ORG/NAME[/CONFIG]`` as an input; its data is loaded when the scan reads it."""
    _repo_config(spec)
    _datasets(spec)
    if split is None:
        raise InputError(f"{spec}: a hub dataset needs --split (e.g. --split train)")
    return InputFile(spec, "datasets", split=split, known_size=0)


def _repo_config(spec: str) -> tuple[str, str | None]:
    parts = spec[len(HUB) :].removeprefix("datasets/").strip("/").split("/")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise InputError(f"{spec}: expected hf://ORG/NAME or hf://ORG/NAME/CONFIG")
    if len(parts) == 3:
        return "/".join(parts[:2]), parts[2]
    return "/".join(parts), None


def _datasets(spec: str) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise InputError(f"{spec}: reading datasets needs the datasets library: {INSTALL}") from exc
    datasets.disable_progress_bars()  # lenprof shows its own progress, and none under -q
    datasets.logging.set_verbosity_error()
    return datasets


def load(item: InputFile) -> Any:
    """The ``datasets.Dataset`` of an input; any failure is one line naming it."""
    datasets = _datasets(item.path)
    offline = _offline()
    why = "offline: only what the Hugging Face cache holds can be read"
    try:
        if not item.path.startswith(HUB):
            return datasets.load_from_disk(item.path)
        repo, config = _repo_config(item.path)
        unreachable = None if offline else _unreachable()
        if unreachable:
            why = f"{unreachable}; only what the Hugging Face cache holds can be read"
        with _offline_mode(datasets) if unreachable else contextlib.nullcontext():
            return datasets.load_dataset(repo, config, split=item.split)
    except Exception as exc:  # datasets raises many kinds (ConnectionError, FileNotFoundError, ValueError...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        note = f" ({why})" if offline or unreachable else ""
        raise InputError(f"{item.path}: cannot load the dataset{note}: {first[:300]}") from exc


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))  # fmt: skip


def _unreachable(seconds: float = 3.0) -> str | None:
    """Why the hub cannot be reached (no DNS, no route), found in at most ``seconds``; None when
    it can, or when a proxy stands between (a direct connection proves nothing then)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or exc})"
    return None


@contextlib.contextmanager
def _offline_mode(datasets: Any) -> Iterator[None]:
    """The hub's offline mode for one load, as ``HF_HUB_OFFLINE=1`` would set it at import."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def data_files(folder: str) -> list[str]:
    """The ``.arrow`` files of a ``save_to_disk`` folder, in the order its ``state.json`` lists
    them: the files its rows are read from."""
    try:
        with open(os.path.join(folder, "state.json"), encoding="utf-8") as fh:
            names = [str(f["filename"]) for f in json.load(fh)["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{folder}: cannot load the dataset: state.json cannot be read ({exc})") from exc
    return [os.path.join(folder, name) for name in names]


def _saved_tables(item: InputFile, shard_bytes: int) -> Iterator[tuple[Any, int]]:
    """A ``save_to_disk`` folder's rows as Arrow tables of about ``shard_bytes``, each with the
    bytes read so far. The files are read, not memory-mapped: a page of a mapped file truncated
    meanwhile is a SIGBUS, which no ``except`` can catch."""
    import pyarrow as pa

    datasets = _datasets(item.path)
    files = data_files(item.path)
    try:
        features = datasets.DatasetInfo.from_directory(item.path).features
    except Exception as exc:  # a dataset_info.json datasets cannot read: as load_from_disk would fail
        raise InputError(f"{item.path}: cannot load the dataset: {str(exc).strip()[:300]}") from exc
    schema = features.arrow_schema if features is not None else None
    per, held, rows, read = 0, [], 0, 0
    for path in files:
        where = 0
        try:
            with pa.OSFile(path) as fh:
                for batch in pa.ipc.open_stream(fh):
                    where = fh.tell()
                    if schema is not None and batch.schema != schema:  # as datasets casts on load
                        batch = pa.Table.from_batches([batch]).cast(schema).combine_chunks().to_batches()[0]
                    # rows a piece: from the first rows' size, as a piece needs no exact bytes
                    if not batch.num_rows:
                        continue
                    per = per or max(1, min(65536, shard_bytes * batch.num_rows // max(batch.nbytes, 1)))
                    held.append(batch)
                    rows += batch.num_rows
                    while rows >= per:
                        table = pa.Table.from_batches(held)
                        yield table.slice(0, per), read + where
                        rest = table.slice(per)
                        held, rows = rest.to_batches(), rest.num_rows
        except (OSError, pa.ArrowException) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"{path}: cannot read the dataset's data after {where:,} bytes ({first[:300]}); "
                "rebuild it with save_to_disk"
            ) from exc
        read += where
    if rows:
        yield pa.Table.from_batches(held), read


def pieces(
    item: InputFile, shard_bytes: int, max_row_bytes: int = 1 << 62, keep: int = 0
) -> Iterator[tuple[Any, int]]:
    """The dataset's rows as Arrow tables of about ``shard_bytes``, each with its progress; a
    piece with a row over ``max_row_bytes`` comes as records instead (see ``io.parquet.capped_rows``)."""
    import numpy as np
    import pyarrow as pa

    from lenprof.io.parquet import capped_rows

    if item.path.startswith(HUB):
        ds = load(item)
        rows = len(ds)
        per = max(1, min(65536, shard_bytes * max(rows, 1) // max(ds.data.nbytes, 1)))
        # a hub dataset's size is not known (0): its progress stays at 0
        tables: Iterator[tuple[Any, int]] = ((t, 0) for t in ds.with_format("arrow").iter(batch_size=per))
    else:
        tables = _saved_tables(item, shard_bytes)
    empty = True
    for table, done in tables:
        empty = False
        # a copy: a slice of a bigger table would pickle (to a worker) whole
        piece = capped_rows(table, max_row_bytes, keep)  # a row too long is never made Python objects
        if not isinstance(piece, list):
            piece = piece.take(pa.array(np.arange(table.num_rows)))
        yield piece, min(done, item.size)
    if empty:
        yield [], item.size
