"""Every check lenprof makes, in one place: each row is kept (maybe repaired) or dropped with a reason.

Checks run in a fixed order and the first failure decides a dropped row's fate, so every row has
exactly one reason and ``read = kept + sum(dropped)`` always holds. Repairs remove single bad
negatives (or blank positives) and keep the row; ``pos_scores``/``neg_scores`` lists are kept
aligned with the texts they score. Two rules need more than the row itself and are decided here
too, from what the scan hands over: ``duplicate_row`` (the row's :func:`dedup_key` was kept
before) and the warnings that need token counts (:func:`length_warnings`).

    >>> checked = check_row(b'{"query": "q", "pos": ["p"], "neg": ["p", "n"]}', Fields())
    >>> checked.neg, checked.repairs
    (['n'], {'pos_in_neg': 1})
    >>> check_row(b'{"query": "q", "pos": ["q "], "neg": ["n"]}', Fields())
    Dropped(reason='query_equals_pos', detail="query equals 'pos'[0]")
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lenprof.io.files import LineTooLong, Unreadable
from lenprof.rows.fields import Fields
from lenprof.rows.options import MAX_TEXT_CHARS
from lenprof.rows.parse import has_surrogate, parse
from lenprof.rows.reasons import Dropped

# Optional keys FlagEmbedding reads; its training data should carry each on every row or on none
# ("scores": both pos_scores and neg_scores).
WATCHED_KEYS = ("prompt", "scores")

_NOT_CONTROL = b"\t\n\r" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))  # all but control bytes
CONTROL_ESCAPE = re.compile(rb"\\[ubf]")  # an escape that may stand for a control character
_ONLY_STR = {str}


@dataclass(slots=True)
class Checked:
    """A row that passed the per-row checks; ``obj`` already carries the repairs."""

    obj: dict
    query: str
    pos: list[str]
    neg: list[str]
    prompt: str | None
    repairs: dict[str, int]
    control_chars: bool
    removed: tuple[tuple[str, str, int, str], ...] = ()  # (reason, key, index as read, text) per repair


def _surrogate_home(obj: dict, fields: Fields) -> str:
    """Where a lone surrogate is: the row's query, pos or neg first, then any other key."""
    for name in (fields.query, fields.pos, fields.neg, *obj):
        if name in obj and has_surrogate(obj[name]):
            return f"'{_printable(name)}'"
    return "a key"


def _printable(text: str) -> str:
    """``text`` with any lone surrogate written as its escape, so that every output can hold it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _texts(value: object, name: str, lenient: bool) -> tuple[list[str] | None, str]:
    """``value`` as a list of strings, or None with the reason it is not one."""
    if isinstance(value, str) and lenient:
        return [value], ""
    if not isinstance(value, list):
        kind = "null" if value is None else type(value).__name__
        return None, f"'{name}' must be a list of strings, got {kind}"
    if not value or set(map(type, value)) == _ONLY_STR:  # the common case, at C speed
        return value, ""
    for i, item in enumerate(value):
        if not isinstance(item, str):
            kind = "null" if item is None else type(item).__name__
            return None, f"'{name}'[{i}] must be a string, got {kind}"
    return value, ""


def has_control(texts: list[str]) -> bool:
    r"""Whether a text holds a control character but tab, LF or CR. UTF-8 writes each such
    character as its own byte and every other character in other bytes: a regex's work, in C.
    >>> has_control(["plain", "two\nlines", "中文"]), has_control(["a\x07bell"])
    (False, True)
    """
    return bool("".join(texts).encode("utf-8", "surrogatepass").translate(None, _NOT_CONTROL))


def _too_long(
    query: str, pos: list[str], neg: list[str], prompt: str | None, fields: Fields, cap: int
) -> str:
    """Which text is longer than ``cap`` characters, or "" when none is.

    >>> _too_long("q" * 5, ["p"], [], None, Fields(), 4)
    "'query' has 5 characters, over --max-text-chars 4"
    """
    longest = max(len(query), len(prompt or ""), max(map(len, pos), default=0), max(map(len, neg), default=0))
    if longest <= cap:  # most rows: one pass at C speed
        return ""
    named = (
        ((fields.query, None, query), ("prompt", None, prompt or ""))
        + tuple((fields.pos, i, t) for i, t in enumerate(pos))
        + tuple((fields.neg, i, t) for i, t in enumerate(neg))
    )
    for name, i, text in named:
        if len(text) > cap:
            where = f"'{_printable(name)}'" + ("" if i is None else f"[{i}]")
            return f"{where} has {len(text):,} characters, over --max-text-chars {cap:,}"
    return ""


def _bad_scores(scores: object, key: str, n: int) -> str:
    """Why a scores list cannot serve knowledge distillation, or "" when it can.

    >>> _bad_scores([0.5, "high"], "neg_scores", 2)
    "'neg_scores'[1] must be a number, got str"
    """
    if not isinstance(scores, list):
        return f"'{key}' must be a list of numbers, got {type(scores).__name__}"
    if len(scores) != n:
        texts = "positives" if key == "pos_scores" else "negatives"
        return f"'{key}' has {len(scores)} scores for {n} {texts}"
    for i, x in enumerate(scores):
        if type(x) not in (int, float):
            return f"'{key}'[{i}] must be a number, got {'null' if x is None else type(x).__name__}"
        if x != x or x in (float("inf"), float("-inf")):
            return f"'{key}'[{i}] is {x}, not a finite number"
    return ""


def _tuple_texts(obj: dict, columns: tuple[str, ...]) -> tuple[list[str] | None, str]:
    """The negatives of an n-tuple row: one text per column; a missing or null column has none."""
    texts = []
    for name in columns:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return None, f"'{name}' must be a string, got {type(value).__name__}"
        texts.append(value)
    return texts, ""


def check_row(
    data: bytes | dict | LineTooLong | Unreadable,
    fields: Fields,
    min_neg: int = 1,
    max_line_bytes: int = 0,
    max_text_chars: int = MAX_TEXT_CHARS,
    scores: bool = True,
) -> Checked | Dropped:
    """The fate of one row as read (a line's bytes, a Parquet row, a line too long to read, or a
    row a reader could not read); ``scores=False``: its own scores are replaced, so never checked."""
    if isinstance(data, LineTooLong):
        return Dropped("line_too_long", f"{data.length:,} bytes, over --max-line-bytes {max_line_bytes:,}")
    if isinstance(data, Unreadable):
        return Dropped(data.reason, data.detail)
    parsed = parse(data)
    if isinstance(parsed, Dropped):
        return parsed
    obj, surrogate = parsed
    missing = [n for n in (fields.query, fields.pos) if n not in obj]
    if missing:
        present = ", ".join(sorted(map(_printable, obj))[:10]) or "none"
        return Dropped("missing_field", f"no '{missing[0]}' (keys present: {present})")

    query = obj[fields.query]
    if not isinstance(query, str):
        kind = "null" if query is None else type(query).__name__
        return Dropped("wrong_type", f"'{fields.query}' must be a string, got {kind}")
    pos, why = _texts(obj[fields.pos], fields.pos, fields.lenient(fields.pos))
    if pos is None:
        return Dropped("wrong_type", why)
    if fields.neg_columns:
        neg, why = _tuple_texts(obj, fields.neg_columns)
        has_neg = any(c in obj for c in fields.neg_columns)
    else:
        has_neg = fields.neg in obj
        neg, why = _texts(obj[fields.neg], fields.neg, fields.lenient(fields.neg)) if has_neg else ([], "")
    if neg is None:
        return Dropped("wrong_type", why)
    prompt = obj.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        return Dropped("wrong_type", f"'prompt' must be a string, got {type(prompt).__name__}")
    # A JSON text has at least one byte per character: a line no longer than the cap needs no look.
    if not isinstance(data, bytes) or len(data) > max_text_chars:
        why = _too_long(query, pos, neg, prompt, fields, max_text_chars)
        if why:
            return Dropped("text_too_long", why)
    for key, texts in (("pos_scores", pos), ("neg_scores", neg)) if scores else ():
        if obj.get(key) is not None and (why := _bad_scores(obj[key], key, len(texts))):
            return Dropped("bad_scores", why)
    if surrogate:
        return Dropped("invalid_utf8", f"{_surrogate_home(obj, fields)} holds a lone surrogate escape")
    # Valid JSON carries a control character only as an escape (\u..., \b, \f), DEL excepted,
    # so a line with none needs no look at its texts; a decoded row may hold one as it is.
    control = (
        isinstance(data, dict) or b"\x7f" in data or CONTROL_ESCAPE.search(data) is not None
    ) and has_control([query, *pos, *neg])

    q = query.strip()
    if not q:
        return Dropped("empty_query", f"'{fields.query}' is blank")
    stripped_pos = list(map(str.strip, pos))
    if not any(stripped_pos):
        return Dropped("empty_pos", f"none of the {len(pos)} positives has text")
    if q in stripped_pos:
        i = stripped_pos.index(q)
        return Dropped("query_equals_pos", f"query equals '{fields.pos}'[{i}]")

    repairs: dict[str, int] = {}
    removed: list[tuple[str, str, int, str]] = []
    if all(stripped_pos):
        keep_pos = range(len(pos))
        pos_set = set(stripped_pos)
    else:
        keep_pos = [i for i, p in enumerate(stripped_pos) if p]  # type: ignore[assignment]
        repairs["empty_pos_item"] = len(pos) - len(keep_pos)
        removed += [("empty_pos_item", fields.pos, i, p) for i, p in enumerate(pos) if not stripped_pos[i]]
        pos_set = {stripped_pos[i] for i in keep_pos}
    stripped_neg = list(map(str.strip, neg))
    neg_set = set(stripped_neg)
    if all(stripped_neg) and len(neg_set) == len(neg) and pos_set.isdisjoint(neg_set):
        keep_neg = range(len(neg))  # nothing to repair (most rows): no per-item loop
    else:
        keep_neg = []
        seen: set[str] = set()
        for i, s in enumerate(stripped_neg):
            reason = (
                "empty_neg"
                if not s
                else "pos_in_neg"
                if s in pos_set
                else "duplicate_neg"
                if s in seen
                else None
            )
            if reason:
                repairs[reason] = repairs.get(reason, 0) + 1
                removed.append((reason, fields.neg, i, neg[i]))
            else:
                seen.add(s)
                keep_neg.append(i)

    if len(keep_neg) < min_neg:
        why = (
            "no 'neg' field" if not has_neg else f"{len(keep_neg)} of {len(neg)} negatives left after repairs"
        )
        return Dropped("no_negatives", f"{why}; need at least {min_neg} (--min-neg)")

    if repairs:
        obj = dict(obj)
        keep_items(obj, fields.pos, "pos_scores", keep_pos, len(pos))
        if fields.neg_columns:
            keep_columns(obj, fields.neg_columns, [neg[i] for i in keep_neg])
        else:
            keep_items(obj, fields.neg, "neg_scores", keep_neg, len(neg))
    return Checked(
        obj,
        query,
        pos if len(keep_pos) == len(pos) else [pos[i] for i in keep_pos],
        neg if len(keep_neg) == len(neg) else [neg[i] for i in keep_neg],
        prompt,
        repairs,
        control,
        tuple(removed),
    )


def keep_items(obj: dict, key: str, scores_key: str, keep: Sequence[int], n: int) -> None:
    """Keep only items ``keep`` of ``obj[key]`` (and of its aligned scores list, if any)."""
    if len(keep) == n:
        return
    value = obj[key]
    obj[key] = [value[i] for i in keep] if isinstance(value, list) else (value if keep else [])
    scores = obj.get(scores_key)
    if isinstance(scores, list) and len(scores) == n:
        obj[scores_key] = [scores[i] for i in keep]


def keep_columns(obj: dict, columns: tuple[str, ...], kept: list[str]) -> None:
    """An n-tuple keeps its columns: the negatives left fill them in order, the rest are null
    (``--min-neg`` set to the number of columns drops such rows instead)."""
    for i, name in enumerate(columns):
        if name in obj or i < len(kept):
            obj[name] = kept[i] if i < len(kept) else None


# --- rules beyond one row --------------------------------------------------------------------------


def dedup_key(row: Checked) -> tuple:
    """What makes two rows the same: the stripped query and the set of stripped positives.

    A tuple of texts, not texts joined with a separator, so no two different rows share a key
    whatever characters their texts hold (``["eta", "theta"]`` is not ``["eta\\x1etheta"]``);
    ``hashing.row_fingerprints`` makes the row's fingerprint of it.

        >>> dedup_key(check_row(b'{"query": "q ", "pos": ["b", "a", "a"], "neg": ["n"]}', Fields()))
        ('q', 'a', 'b')
    """
    if len(row.pos) == 1:  # most rows: the same tuple, built without a set, a sort or a generator
        return (row.query.strip(), row.pos[0].strip())
    return (row.query.strip(), *sorted(set(map(str.strip, row.pos))))


def length_warnings(
    row_max: np.ndarray, negatives: np.ndarray, cap: int | None, train_group_size: int | None
) -> dict[str, np.ndarray]:
    """Warnings that need token counts, for each kept row: its longest text over the model's
    cap, or fewer negatives than a training group samples.

        >>> w = length_warnings(np.array([10, 600]), np.array([1, 9]), 512, 8)
        >>> w["over_model_limit"].tolist(), w["few_negatives"].tolist()
        ([False, True], [True, False])
    """
    none = np.zeros(len(row_max), dtype=bool)
    return {
        "over_model_limit": row_max > cap if cap else none,
        "few_negatives": negatives < train_group_size - 1 if train_group_size else none,
    }


def watched_keys(obj: dict) -> tuple[bool, bool]:
    """Whether a row carries a prompt, and scores (both lists), as :data:`WATCHED_KEYS` orders them."""
    return obj.get("prompt") is not None, (
        obj.get("pos_scores") is not None and obj.get("neg_scores") is not None
    )


def partial_keys(presence: dict, paths: Sequence[str], stats) -> None:
    """Warn about kept rows that lack an optional key other kept rows have (``partial_prompt``,
    ``partial_scores``), across the whole scan: FlagEmbedding concatenates the files it trains
    on, so a file without prompts beside one with them gets None too. Whether the rows are mixed
    is known only at the end. ``presence`` holds a :class:`~lenprof.stats.scan_stats.KeyPresence` per input."""
    rows = sum(p.rows for p in presence.values())
    for key in WATCHED_KEYS:
        have = sum(p.have[key] for p in presence.values())
        if not 0 < have < rows:
            continue
        reason = "partial_prompt" if key == "prompt" else "partial_scores"
        stats.warnings[reason] += rows - have
        what = "'prompt'" if key == "prompt" else "'pos_scores' and 'neg_scores'"
        for i, p in sorted(presence.items()):
            for line in p.lacking.get(key, []):
                stats.example(reason, paths[i], line, f"no {what}, while {have} of {rows} kept rows have")
