"""The cleaned rows, shaped as the trainers load them, and where each input's rows go.

``--clean-out FILE`` merges every kept row into one file; ``--clean-out DIR/`` mirrors the
inputs, one cleaned file per input under the same relative name, because FlagEmbedding trains on
a folder of files (one per task; its same-dataset mode needs them apart) and loads each file with
``datasets.load_dataset("json")``, which refuses a file whose rows disagree on their keys.

So every cleaned file has one key set: a key that some rows lack is added to them at the end of
the scan, as null, except ``prompt``. FlagEmbedding 1.4.2 formats a query with the row's
``prompt`` whenever its data has that column, so a missing or null one trains as ``"None" +
query``; and it concatenates its files, so one file with prompts gives the column to all. Hence
a null ``prompt`` is written as missing, and once any kept row has a prompt, every row of every
cleaned file gets one: the scan's ``--query-instruction`` (what FlagEmbedding would have used for
that row alone), else ``""`` (no instruction). Each query then trains as lenprof measured it.

``--clean-format flagembedding`` writes FlagEmbedding's own rows whatever the input layout:
``query``, ``pos`` and ``neg`` lists, and ``prompt``, ``pos_scores``, ``neg_scores`` and ``type``
when the row has them. FlagEmbedding reads only ``.json``/``.jsonl``, so that is what it writes.

    >>> mirrored_name("tasks/nli.jsonl.zst", "input"), mirrored_name("train-0.parquet", "flagembedding")
    ('tasks/nli.jsonl', 'train-0.jsonl')
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lenprof.errors import OutputError
from lenprof.io import storage
from lenprof.io.files import COMPRESSIONS, JSONL_SUFFIXES, PARQUET_SUFFIXES, TEMP_MARK, InputFile, classify
from lenprof.rows.checks import Checked

FORMATS = ("input", "flagembedding")
FLAGEMBEDDING_EXTRAS = ("prompt", "pos_scores", "neg_scores", "type")
FLAGEMBEDDING_SUFFIXES = (".jsonl", ".json")  # what FlagEmbedding's loader reads


def flagembedding_row(row: Checked) -> dict:
    """A kept row as FlagEmbedding loads it (repairs applied; a null prompt left out)."""
    out = {"query": row.query, "pos": row.pos, "neg": row.neg}
    obj = row.obj
    for key in FLAGEMBEDDING_EXTRAS:
        if key in obj and not (key == "prompt" and obj[key] is None):
            out[key] = obj[key]
    return out


def input_row(row: Checked) -> dict:
    """A kept row as read (repairs applied), a null prompt left out: it is filled at the end.

    >>> input_row(Checked({"query": "q", "prompt": None, "x": 1}, "q", ["p"], [], None, {}, False))
    {'query': 'q', 'x': 1}
    """
    obj = row.obj
    if "prompt" in obj and obj["prompt"] is None:
        return {k: v for k, v in obj.items() if k != "prompt"}
    return obj


def fills(query_instruction: str | None) -> dict[str, str | list]:
    """What a cleaned row lacking a key gets, for the keys not filled with null (see above): the
    prompt once any row has one; a ``type``, as FlagEmbedding's same-dataset mode crashes on
    a null one and asserts one type a batch ("normal" is what no type means there); and no
    negatives as an empty list (a row kept without any under ``--min-neg 0``), as FlagEmbedding
    takes ``len()`` of a row's ``neg``, which a null breaks."""
    return {"prompt": "" if query_instruction is None else query_instruction, "type": "normal", "neg": []}


def is_folder(target: str) -> bool:
    """``--clean-out out/`` (or an existing folder, or a prefix holding objects) mirrors the inputs."""
    return target.endswith(("/", os.sep)) or storage.is_dir(target)


def mirrored_name(relative: str, fmt: str) -> str:
    """The cleaned file's name for an input's relative path: the same, in a format lenprof
    writes (JSON lines, gzipped JSON lines or Parquet; FlagEmbedding's format: JSON lines)."""
    stem, lower = relative, relative.lower()
    compressed = ""
    for suffix in COMPRESSIONS:
        if lower.endswith(suffix):
            stem, lower, compressed = stem[: -len(suffix)], lower[: -len(suffix)], suffix
    kept = next((s for s in JSONL_SUFFIXES + PARQUET_SUFFIXES if lower.endswith(s)), None)
    if kept:
        stem = stem[: -len(kept)]
    if fmt == "flagembedding":
        return stem + (kept if kept in FLAGEMBEDDING_SUFFIXES else ".jsonl")
    if kept in PARQUET_SUFFIXES:
        return stem + kept
    return stem + (kept or ".jsonl") + (".gz" if compressed == ".gz" else "")


def targets(clean: str, inputs: Sequence[InputFile], fmt: str) -> list[str]:
    """Where each input's kept rows go: one merged file, or a mirror of the inputs."""
    if fmt not in FORMATS:
        raise OutputError(f"--clean-format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not is_folder(clean):
        if fmt == "flagembedding" and not clean.lower().endswith(FLAGEMBEDDING_SUFFIXES):
            raise OutputError(
                f"{clean}: FlagEmbedding reads only .json and .jsonl files; name the cleaned file so"
            )
        return [clean] * len(inputs)
    # an object's URL as a path (s3://b/k -> /s3/b/k), so a mirror of objects keeps their keys
    paths = [
        "/" + i.path.replace("://", "/", 1) if storage.is_url(i.path) else os.path.abspath(i.path)
        for i in inputs
    ]
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    return [os.path.join(clean, mirrored_name(os.path.relpath(p, root), fmt)) for p in paths]


def refuse_strangers(clean: str, written: Sequence[str]) -> None:
    """A mirrored folder may hold only what this run writes: a trainer given the folder trains on
    every data file in it, so an older run's file there (another split's, say) would be trained
    on too."""
    if not os.path.isdir(clean):
        return
    ours = {os.path.abspath(p) for p in written}
    strangers = sorted(
        os.path.relpath(os.path.join(root, name), clean)
        for root, _, names in os.walk(clean)
        for name in names
        if TEMP_MARK not in name
        and classify(os.path.join(root, name)) is not None
        and os.path.abspath(os.path.join(root, name)) not in ours
    )
    if strangers:
        named = ", ".join(strangers[:2]) + (f" and {len(strangers) - 2} more" if len(strangers) > 2 else "")
        raise OutputError(
            f"{clean}: already holds data files this run does not write ({named}); a trainer given "
            "the folder would train on them too: choose an empty or new folder, or remove them"
        )
