"""A shard's rows checked at once: ``check_row``'s fates, with the common row cleared by work over
the whole shard and every other row sent through ``check_row`` itself.

``check_row`` costs about 10 µs a row in Python: on a corpus of short texts through a tokenizer
no fast count covers, as much as tokenizing them. Here each line is decoded by msgspec in one
``map``, and what ``check_row`` asks of a row is asked of the whole shard at once: its texts
stripped in one ``map`` and compared through their keyed fingerprints in sorted arrays, its
lines searched for escapes and key-colons in one buffer. The screen only *clears* rows: a row it
clears is one ``check_row`` keeps exactly as read (no repair, no prompt, no scores), and every
other row, or one it is unsure of (two fingerprints that meet, a colon too many), goes through
``check_row``. So the fates are ``check_row``'s, row for row (tests/test_screen.py).

    >>> from lenprof.hashing import RunKey
    >>> lines = [b'{"query": "q", "pos": ["p"], "neg": ["n"]}', b"", b'{"query": "q", "pos": ["q"], "neg": []}']
    >>> s = screen(lines, Fields(), RunKey(b"k" * 16))
    >>> [c.neg for c in s.rows], s.at, s.blank, [(r, d.reason) for r, d, _ in s.drops]
    ([['n']], [0], 1, [(2, 'query_equals_pos')])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain, compress, repeat, starmap
from operator import is_not

import numpy as np

from lenprof.hashing import RunKey
from lenprof.io.files import BOM
from lenprof.io.jsontext import MAX_DEPTH
from lenprof.rows.batch import LineBytes, RowTexts
from lenprof.rows.checks import (
    WATCHED_KEYS,
    Checked,
    check_row,
    has_control,
    watched_keys,
)
from lenprof.rows.fields import Fields
from lenprof.rows.options import MAX_TEXT_CHARS
from lenprof.rows.parse import decode, duplicate_key
from lenprof.rows.reasons import Dropped

_FAILED = object()  # a line msgspec refused: ``check_row`` looks closer
_READ = {"prompt", "pos_scores", "neg_scores"}  # the keys ``check_row`` reads besides the fields'


@dataclass
class Screened:
    """A shard's fates, in line order: its kept rows (``rows``, at lines ``at``, each ``raws`` as
    read), its dropped ones, and the lines that are no row. ``ids`` place the kept rows' texts,
    laid out as the scan lays them out (every query, then every positive, then every negative),
    among ``distinct`` texts, whose keyed fingerprints are ``prints`` (sorted); ``dedup`` is
    each kept row's :func:`~lenprof.rows.checks.dedup_key` fingerprint (these are None where a
    kept row is not one the screen looked at), and ``watched`` which of ``WATCHED_KEYS`` each
    kept row carries."""

    rows: list[Checked] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    raws: list = field(default_factory=list)
    drops: list[tuple[int, Dropped, object]] = field(default_factory=list)
    blank: int = 0
    skipped: int = 0
    ids: np.ndarray | None = None
    distinct: list[str] = field(default_factory=list)
    prints: np.ndarray | None = None
    lengths: np.ndarray | None = None  # characters of each distinct text
    dedup: np.ndarray | None = None
    watched: np.ndarray = field(default_factory=lambda: np.zeros((0, len(WATCHED_KEYS)), dtype=bool))


def screen(
    records: list,
    fields: Fields,
    key: RunKey,
    min_neg: int = 1,
    max_line_bytes: int = 0,
    max_text_chars: int = MAX_TEXT_CHARS,
    first: bool = False,
    scores: bool = True,
) -> Screened:
    """The fates of a shard's ``records`` (see ``io/readers/``: a line's bytes, a decoded row, a
    line too long or unreadable, None for a line that is no row), as ``check_row`` decides them;
    ``first``: the input's first shard, whose first line may start with a UTF-8 BOM; ``scores``:
    whether the rows' own scores are checked (``check_row``)."""
    out = Screened()
    records, at = _rows(records, first, out)
    objs = _decoded(records)
    json = dict not in set(map(type, records))  # lines, no decoded row (Parquet's may hold bytes)
    typed = [] if fields.neg_columns or _READ.intersection(fields.columns) else _typed(objs, fields, not json)
    if not json:  # decoded rows: a line among them is looked at
        typed = [i for i in typed if type(records[i]) is dict]
    everyone = len(typed) == len(objs)  # (most shards)
    try:
        texts = RowTexts(objs if everyone else [objs[i] for i in typed], fields, key)
    except TypeError:  # a positive or negative that is no string: its row is looked at
        typed = _with_strings(objs, typed, fields)
        everyone = len(typed) == len(objs)
        texts = RowTexts(objs if everyone else [objs[i] for i in typed], fields, key)
    lines = records if everyone else [records[i] for i in typed]
    scan = LineBytes(lines) if json else None
    ok = texts.clear(min_neg) & _clear_lines(lines, texts, scan, max_text_chars)
    clear = np.zeros(len(records), dtype=bool)
    clear[typed] = ok
    # control characters: where a line may hold one (all decoded rows may), its texts are looked at
    control = np.zeros(len(typed), dtype=bool)
    look = scan.control() if scan is not None else np.arange(len(typed))
    for k in look[ok[look]].tolist():
        control[k] = has_control([texts.query[k], *texts.pos[k], *texts.neg[k]])
    cleared = np.flatnonzero(clear).tolist()
    if len(cleared) == len(typed):
        columns = (texts.objs, texts.query, texts.pos, texts.neg)
    else:
        columns = tuple(
            [c[k] for k in np.flatnonzero(ok).tolist()]
            for c in (texts.objs, texts.query, texts.pos, texts.neg)
        )
    kept = list(
        map(
            Checked,
            *columns,
            repeat(None),
            starmap(dict, repeat(())),  # no repairs: a dict of its own each
            control[ok].tolist(),
            repeat(()),
        )
    )
    looked = {}  # the rows not cleared: check_row's fate
    for i in np.flatnonzero(~clear).tolist():
        fate = check_row(records[i], fields, min_neg, max_line_bytes, max_text_chars, scores)
        if type(fate) is Checked:
            looked[i] = fate
        else:
            out.drops.append((at[i], fate, records[i]))  # type: ignore[arg-type]
    if looked:
        clear[list(looked)] = True  # now: kept
        mine = iter(kept)
        places = np.flatnonzero(clear).tolist()
        kept = [looked[i] if i in looked else next(mine) for i in places]
    else:
        places = cleared
    out.rows = kept
    whole = len(places) == len(records)
    out.at = at if whole else [at[i] for i in places]
    out.raws = records if whole else [records[i] for i in places]
    out.watched = np.zeros((len(kept), len(WATCHED_KEYS)), dtype=bool)
    looked_at = [k for k, i in enumerate(places) if i in looked] if looked else []  # of the kept rows
    for k in looked_at:  # a cleared row has no prompt and no scores
        out.watched[k] = watched_keys(kept[k].obj)
    of_typed = np.full(len(records), -1, dtype=np.int64)
    of_typed[typed] = np.arange(len(typed))
    if (of_typed[places] >= 0).all():  # every kept row is typed: its texts are known
        out.ids, out.dedup = texts.kept(kept, of_typed[places], looked_at, fields, key)
        out.distinct, out.prints, out.lengths = texts.distinct, texts.prints, texts.lengths
    return out


def _rows(records: list, first: bool, out: Screened) -> tuple[list, list[int]]:
    """The records that are rows, as ``check_row`` reads them (a line without the input's BOM or
    its CR), and their lines; ``out`` counts the blank lines and the lines that are no row."""
    if first and records and type(records[0]) is bytes and records[0].startswith(BOM):
        records = [records[0][len(BOM) :], *records[1:]]
    if set(map(type, records)) <= {bytes}:  # JSON lines: each test at C speed
        if any(map(bytes.endswith, records, repeat(b"\r"))):
            records = [r[:-1] if r.endswith(b"\r") else r for r in records]
        if all(records) and not any(map(bytes.isspace, records)):  # no blank line
            return records, list(range(len(records)))
        blank = [not r or r.isspace() for r in records]
        out.blank = sum(blank)
        at = list(compress(range(len(records)), map(is_not, blank, repeat(True))))
        return [records[i] for i in at], at
    at = []
    records = [r[:-1] if type(r) is bytes and r.endswith(b"\r") else r for r in records]
    for r, record in enumerate(records):
        if record is None:  # a line that is no row (a CSV header, a cell's later lines)
            out.skipped += 1
        elif type(record) is bytes and (not record or record.isspace()):
            out.blank += 1
        else:
            at.append(r)
    return [records[i] for i in at], at


def _decoded(records: list) -> list:
    """Each line decoded by msgspec (``_FAILED`` if it refuses), a decoded row as it is: all in
    one ``map`` unless a line fails."""
    if set(map(type, records)) <= {bytes}:
        try:
            return list(map(decode, records))
        except Exception:  # DecodeError, UnicodeDecodeError, RecursionError: that row looks closer
            pass
    out = []
    for record in records:
        try:
            out.append(decode(record) if type(record) is bytes else record)
        except Exception:
            out.append(_FAILED)
    return out


def _typed(objs: list, fields: Fields, items: bool = True) -> list[int]:
    """The rows that are objects with a string query and lists of strings as positives and
    negatives, and no prompt or scores: the rows the screen looks at. ``items=False`` leaves
    the lists' items unlooked at (for decoded JSON: ``fingerprints`` refuses any but a string)."""
    fq, fp, fn = fields.query, fields.pos, fields.neg
    if set(map(type, objs)) <= {dict} and set(map(len, objs)) <= {3}:  # the common case, at C speed
        columns = [list(map(dict.get, objs, repeat(name))) for name in (fq, fp, fn)]
        if [set(map(type, c)) for c in columns] == [{str}, {list}, {list}] or not objs:
            typed = list(range(len(objs)))
            if not items or _strings_only(columns[1] + columns[2]):
                return typed
            return _with_strings(objs, typed, fields)
    typed = [
        i
        for i, o in enumerate(objs)
        if type(o) is dict
        and type(o.get(fq)) is str
        and type(o.get(fp)) is list
        and type(o.get(fn)) is list
        and (len(o) == 3 or not any(o.get(k) is not None for k in _READ))
    ]
    return _with_strings(objs, typed, fields)


def _strings_only(lists: list[list]) -> bool:
    return set(map(type, chain.from_iterable(lists))) <= {str}


def _with_strings(objs: list, typed: list[int], fields: Fields) -> list[int]:
    """Those of ``typed`` whose positives and negatives are all strings."""
    fp, fn = fields.pos, fields.neg
    if _strings_only([objs[i][fp] for i in typed] + [objs[i][fn] for i in typed]):
        return typed
    return [i for i in typed if _strings_only([objs[i][fp], objs[i][fn]])]


def _clear_lines(lines: list, texts: RowTexts, scan: LineBytes | None, cap: int) -> np.ndarray:
    """Which typed rows need no closer look for what their line holds: a line no longer than the
    text cap ``cap`` (a JSON text has a byte or more a character), nested no deeper than
    ``MAX_DEPTH``, with no key given twice; a decoded row (Parquet) with no text over the cap."""
    objs = texts.objs
    if scan is None:
        return np.array([all(len(t) <= cap for t in _strings(o)) for o in objs], dtype=bool)
    clear = np.fromiter(map(len, lines), np.int64, len(lines)) <= cap
    three = np.fromiter(map(len, objs), np.int64, len(objs)) == 3
    # A row of three keys holds a string and two lists of strings: its JSON text holds 2 quotes
    # for each of its 3 keys, its query and its texts, and 2 more for each key given twice.
    # No line holds fewer, so when the lines hold no more between them, none does.
    strings = 2 * (4 + texts.sizes[0] + texts.sizes[1])
    quotes = scan.quotes()
    if three.any() and (not three.all() or len(quotes) > strings.sum()):
        per_line = scan.per_line(quotes)
        for k in np.flatnonzero(three & (per_line > strings)).tolist():
            clear[k] &= duplicate_key(lines[k], objs[k]) is None
    for k in np.flatnonzero(~three).tolist():  # other rows, as ``parse`` looks at them
        line = lines[k]
        clear[k] &= line.count(b"[") + line.count(b"{") <= MAX_DEPTH and duplicate_key(line, objs[k]) is None
    return clear


def _strings(o: dict):
    """Every string value of a typed row, or in a list value of it."""
    for v in o.values():
        if type(v) is str:
            yield v
        elif type(v) is list:
            yield from (t for t in v if type(t) is str)
