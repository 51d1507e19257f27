"""Which layout each input has, and the fields that read it: decided before any row is read.

A scan reads rows of a query, its positives and optionally negatives. Real data comes in a few
layouts, told apart by their column names:

- FlagEmbedding: ``query``, ``pos`` (a list), ``neg`` (a list), maybe ``prompt``, scores, ``type``;
- sentence-transformers: ``anchor`` (or ``query``), ``positive``, then ``negative`` (triplets),
  ``negative_1`` ... ``negative_n`` (n-tuples) or nothing (pairs), one text per column;
- classification or similarity data (``text``/``label``, ``sentence1``/``sentence2``,
  ``premise``/``hypothesis``), which holds no (query, positive) rows at all.

Without ``--fields``, a sentence-transformers layout is read through its mapping and the scan
says so; anything else without ``query`` and ``pos`` stops with the columns there are and the
``--fields`` to pass, instead of dropping every row as ``missing_field``. A ``--fields`` column
the input lacks stops the scan, naming it. Columns come from the schema where the format has
one (Parquet), else from the first rows (JSON lines).

    >>> sentence_transformers(["anchor", "positive", "negative_2", "negative_1"]).fields.spec()
    'query=anchor,pos=positive,neg=negative_1+negative_2'
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import islice

from lenprof.errors import InputError
from lenprof.io import storage
from lenprof.io.files import InputFile, decompressed_blocks, file_blocks, iter_lines
from lenprof.rows.fields import Fields

SAMPLE_BYTES = 1 << 20  # of a JSON lines input, read to learn its keys
_NUMBERED_NEGATIVE = re.compile(r"negative_(\d+)")
_UNUSABLE = (  # column sets of data with no (query, positive) rows
    ({"text", "label"}, "text classification"),
    ({"sentence1", "sentence2"}, "sentence-pair similarity or classification"),
    ({"premise", "hypothesis"}, "natural-language inference"),
)


class LayoutError(InputError):
    """An input whose columns cannot give (query, positive) rows as asked. Exit code 2."""


@dataclass(frozen=True)
class Columns:
    names: list[str]  # in first-seen order
    exact: bool  # from a schema or the whole file; else from the first ``rows`` rows
    rows: int = 0

    def where(self) -> str:
        return (
            "the input has no such column" if self.exact else f"none of its first {self.rows:,} rows has it"
        )


@dataclass(frozen=True)
class Layout:
    name: str  # "flagembedding", "sentence-transformers triplets", ..., or "unknown"
    fields: Fields
    has_negatives: bool = True


def sentence_transformers(columns: Sequence[str]) -> Layout | None:
    """The sentence-transformers layout these columns hold, if any."""
    query = next((c for c in ("anchor", "query") if c in columns), None)
    if query is None or "positive" not in columns:
        return None
    numbered = sorted(
        (c for c in columns if _NUMBERED_NEGATIVE.fullmatch(c)), key=lambda c: int(c.split("_")[1])
    )
    if "negative" in columns:
        kind, neg = "triplets", "negative"
    elif numbered:
        kind, neg = f"n-tuples ({len(numbered)} negatives)", "+".join(numbered)
    else:
        kind, neg = "pairs", "neg"
    fields = Fields.parse(f"query={query},pos=positive" + ("" if kind == "pairs" else f",neg={neg}"))
    return Layout(f"sentence-transformers {kind}", fields, has_negatives=kind != "pairs")


def peek_columns(item: InputFile) -> Columns | None:
    """The columns of an input, or None when its format cannot tell them before the scan."""
    if item.format == "parquet":
        import pyarrow.parquet as pq

        try:
            return Columns(list(pq.ParquetFile(storage.source(item.path)).schema_arrow.names), exact=True)
        except Exception:  # a broken file: the scan itself names the problem
            return None
    from lenprof.io.readers import PIECEWISE, stdin

    if item.path == stdin.NAME:
        return None  # a pipe can be read once only
    if item.format in PIECEWISE:
        return _first_piece(item)
    if item.format != "jsonl":
        return None
    blocks = decompressed_blocks(item) if item.compression else file_blocks(item.path)
    head, size = [], 0
    for block in blocks:
        head.append(block)
        size += len(block)
        if size >= SAMPLE_BYTES:
            break
    whole = size < SAMPLE_BYTES
    lines = [x for part in iter_lines(iter(head), SAMPLE_BYTES, 0) for x in part]
    if not whole:
        lines = lines[:-1]  # perhaps cut
    names, rows = _keys(islice(lines, 10_000))
    return Columns(list(names), exact=whole, rows=rows)


def _first_piece(item: InputFile) -> Columns:
    """The columns of a JSON array, CSV/TSV or ``datasets`` input, from its first piece (a CSV
    header and a dataset's features are exact)."""
    from lenprof.io.readers import pieces

    first = next(iter(pieces(item, SAMPLE_BYTES, SAMPLE_BYTES)), None)
    piece = first[0] if first is not None else []
    if not isinstance(piece, list):  # an Arrow table
        return Columns(list(piece.column_names), exact=True)
    names, rows = _keys(islice(piece, 10_000))
    return Columns(list(names), exact=item.format in ("csv", "tsv") and rows > 0, rows=rows)


def _keys(records) -> tuple[list[str], int]:
    """The keys of the records that decode to an object, as the scan decodes them (``parse``),
    in first-seen order, and how many such records there were."""
    from lenprof.rows.parse import parse

    names: dict[str, None] = {}
    rows = 0
    for record in records:
        if not isinstance(record, (bytes, dict)):
            continue
        parsed = parse(record)
        if isinstance(parsed, tuple):
            rows += 1
            names.update(dict.fromkeys(parsed[0]))
    return list(names), rows


def resolve(item: InputFile, fields: Fields, given: bool, min_neg: int) -> Layout:
    """The layout of one input and the fields that read it; raises :class:`LayoutError` when no
    row could be read as asked."""
    columns = peek_columns(item)
    if columns is None or not columns.names:
        return Layout("unknown", fields)
    names = columns.names
    if given:
        fields = _expand(fields, names)
        needed = [fields.query, fields.pos, *(c for c in fields.columns[2:] if c in fields.mapped)]
        missing = [c for c in needed if c not in names]
        if missing:
            raise LayoutError(
                f"{item.path}: --fields names the column {missing[0]!r}, but {columns.where()}; "
                f"columns there: {_listed(names)}"
            )
        return Layout("as --fields", fields)
    if fields.query in names and fields.pos in names:
        return Layout("flagembedding", fields)
    st = sentence_transformers(names)
    if st is not None:
        if not st.has_negatives and min_neg > 0:
            raise LayoutError(
                f"{item.path}: {st.name} ({', '.join(st.fields.columns[:2])}) has no negatives, so every "
                f"row would be dropped as no_negatives; to train on in-batch negatives only, pass --min-neg 0"
            )
        return st  # the scan says on stderr how it read the input
    found = set(names)
    for needs, kind in _UNUSABLE:
        if needs <= found:
            raise LayoutError(
                f"{item.path}: looks like {kind} data ({_listed(names)}), not (query, positive) rows; "
                f"if two columns are a query and its positive, pass --fields query=COL,pos=COL"
                + (_NO_NEGATIVES if min_neg else "")
            )
    raise LayoutError(
        f"{item.path}: no {fields.query!r} and {fields.pos!r} columns (columns there: {_listed(names)}); "
        + _guess(names, min_neg)
    )


# Column names that usually hold a query, its positive, its negatives: what the message offers.
_QUERY_NAMES = ("query", "question", "anchor", "q", "questions", "queries", "input")
_POS_NAMES = ("pos", "positive", "answer", "passage", "context", "document", "doc", "response", "output")
_POS_NAMES += ("positives", "answers", "passages", "contexts", "documents", "docs", "a")
_NEG_NAMES = ("neg", "negative", "negatives", "hard_negative", "hard_negatives", "negative_passages")
_NAMES = (_QUERY_NAMES, _POS_NAMES, _NEG_NAMES)
_NO_NEGATIVES = " --min-neg 0 (no column of negatives: train on in-batch negatives only)"


def _guess(names: Sequence[str], min_neg: int) -> str:
    """The whole command for these columns, so that one message is one round trip: the columns
    to map and, with no column of negatives, --min-neg 0 (else the next scan drops every row).

    >>> _guess(["question", "answer"], 1)
    'to read question as the query and answer as its positive, pass --fields query=question,pos=answer --min-neg 0 (no column of negatives: train on in-batch negatives only)'
    >>> _guess(["Question", "Answer", "hard negatives"], 1)
    "to read Question as the query and Answer as its positive, pass --fields 'query=Question,pos=Answer,neg=hard negatives'"
    """
    usable = {c.lower().replace(" ", "_"): c for c in reversed(names) if c and not set(c) & set(",=+")}
    query, pos, neg = (next((usable[n] for n in wanted if n in usable), None) for wanted in _NAMES)
    if query is None or pos is None:
        if min_neg == 0:
            return "name them with --fields query=COL,pos=COL[,neg=COL]"
        return (
            "name them with --fields query=COL,pos=COL,neg=COL, or with no column of negatives "
            "--fields query=COL,pos=COL --min-neg 0 (to train on in-batch negatives only)"
        )
    spec = f"query={query},pos={pos}" + (f",neg={neg}" if neg else "")
    tail = _NO_NEGATIVES if neg is None and min_neg else ""
    return f"to read {query} as the query and {pos} as its positive, pass --fields {shlex.quote(spec)}{tail}"


def _expand(fields: Fields, names: Sequence[str]) -> Fields:
    """``neg=PREFIX*``: every ``PREFIX<n>`` column, in numeric order."""
    if not fields.neg.endswith("*"):
        return fields
    prefix = fields.neg[:-1]
    numbered = [c for c in names if c.startswith(prefix) and c[len(prefix) :].isdigit()]
    if not numbered:
        raise LayoutError(f"--fields: no column matches neg={fields.neg} (columns: {_listed(names)})")
    numbered.sort(key=lambda c: int(c[len(prefix) :]))
    neg = "+".join(numbered)
    return replace(fields, neg=neg, mapped=fields.mapped | set(numbered))


def _listed(names: Sequence[str], most: int = 12) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" (and {len(names) - most} more)" if len(names) > most else "")
