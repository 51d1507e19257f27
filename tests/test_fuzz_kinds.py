"""Every input kind, fuzzed, with a tokenizer that has added tokens: every row read is kept or
rejected with its reason, nothing fails badly, and every count equals the tokenizer's own
(the scan with the fast path gives the same profile as ``--exact-only``)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import check_run, mutated_line

from lenprof.cli import main
from lenprof.count.tokenizer import packaged_model_path

# Domain words added before fine-tuning, accented and not, normalized and not, and a special one:
# the texts below spell them raw, normalized ("schrodinger"), in capitals, and cut by a
# zero-width space, where a rule that missed one would count wrong.
ADDED = [
    {"content": "Schrödinger", "normalized": True, "special": False},
    {"content": "Ångström", "normalized": True, "special": False},
    {"content": "éclair", "normalized": False, "special": False},
    {"content": "lenprof", "normalized": True, "special": False},
    {"content": "[DOMAIN]", "normalized": False, "special": True},
]
WORDS = [
    "schrodinger",
    "Schrödinger",
    "SCHRODINGER",
    "schro\u200bdinger",
    "angstrom",
    "Ångström",
    "éclair",
    "eclair",
    "ECLAIR",
    "lenprofs",
    "LenProf",
    "[DOMAIN]",
    "[domain]",
    "equation",
    "café",
    "中文",
    "a,b",
    "x\u200dy",
]


@pytest.fixture(scope="module")
def added_tokenizer(tmp_path_factory) -> Path:
    return save_added_tokenizer(tmp_path_factory.mktemp("tok"))


def save_added_tokenizer(folder: Path) -> Path:
    """The packaged tokenizer with ``ADDED``, saved in ``folder``."""
    from tokenizers import AddedToken, Tokenizer

    backend = Tokenizer.from_file(str(packaged_model_path() / "tokenizer.json"))
    for t in ADDED:
        token = AddedToken(t["content"], normalized=t["normalized"], special=t["special"])
        (backend.add_special_tokens if t["special"] else backend.add_tokens)([token])
    path = folder / "tokenizer.json"
    backend.save(str(path))
    return path


text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)
row = st.fixed_dictionaries(
    {"query": text, "pos": st.lists(text, min_size=1, max_size=2), "neg": st.lists(text, max_size=2)}
)


def write(kind: str, path: Path, lines: list[bytes], rows: list[dict]) -> Path:
    """The rows (or, for line-based kinds, the raw lines) as a file of ``kind``."""
    data = b"\n".join(lines) + b"\n"
    if kind == "jsonl":
        path.write_bytes(data)
    elif kind == "jsonl.gz":
        path.write_bytes(gzip.compress(data))
    elif kind == "jsonl.zst":
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    elif kind == "json":  # an array: the lines that are JSON values, as its elements
        elements = []
        for line in lines:
            try:
                json.loads(line)
            except ValueError:
                continue
            elements.append(line)
        path.write_bytes(b"[" + b",\n".join(elements) + b"]")
    elif kind in ("csv", "tsv"):
        out = io.StringIO()
        w = csv.writer(out, delimiter="," if kind == "csv" else "\t")
        w.writerow(["query", "pos", "neg"])
        for r in rows:
            w.writerow([r["query"], r["pos"][0], r["neg"][0] if r["neg"] else ""])
        path.write_text(out.getvalue(), encoding="utf-8")
    elif kind == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif kind == "datasets":  # a save_to_disk folder
        import datasets

        datasets.disable_progress_bars()
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(
        ["jsonl", "jsonl.gz", "jsonl.zst", "json", "csv", "tsv", "parquet", "stdin", "datasets"]
    ),
    lines=st.lists(mutated_line(), max_size=8),
    rows=st.lists(row, min_size=1, max_size=10),
)
def test_every_input_kind_keeps_or_rejects_every_row_and_counts_exactly(
    tmp_path_factory, added_tokenizer, kind, lines, rows
):
    folder = tmp_path_factory.mktemp("kind")
    lines = lines + [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    suffix = "jsonl" if kind == "stdin" else kind
    src = write(kind if kind != "stdin" else "jsonl", folder.parent / f"{folder.name}.{suffix}", lines, rows)
    profiles = {}
    for exact in (False, True):
        out = folder / ("exact" if exact else "fast")
        out.mkdir()
        old = {"clean.jsonl": b"old", "rejects.jsonl": b"old", "profile.json": b"old"}
        for name, data in old.items():
            (out / name).write_bytes(data)
        args = ["scan", "-" if kind == "stdin" else str(src), "--tokenizer", str(added_tokenizer), "-q"]
        args += ["--clean-out", str(out / "clean.jsonl"), "--rejects", str(out / "rejects.jsonl")]
        args += ["--out", str(out / "profile.json"), "--format", "json"] + (["--exact-only"] if exact else [])
        result = CliRunner().invoke(main, args, input=src.read_bytes() if kind == "stdin" else None)
        check_run(result, out, old)
        if result.exit_code != 2:
            profile = json.loads((out / "profile.json").read_text())
            # the self-check counts every text of a corpus this small: a wrong fast count would
            # be caught and recounted, so the numbers alone could not tell; it must never fail
            assert "fast_path_failed" not in profile.pop("run")["counting"]
            profile.pop("outputs")  # the two runs write to two folders
            profiles[exact] = profile
    assert profiles.get(False) == profiles.get(True)
    if kind in ("csv", "tsv", "parquet", "datasets") and profiles:  # every generated row is read
        assert profiles[False]["samples"]["read"] == len(rows)
