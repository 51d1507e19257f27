"""Row checks: each row either passes (maybe repaired) or is dropped with one reason code.

Checks run in a fixed order and the first failure decides a dropped row's fate, so every row has
exactly one reason and ``read = kept + sum(dropped)`` always holds. Repairs remove single bad
negatives (or blank positives) and keep the row; ``pos_scores``/``neg_scores`` lists are kept
aligned with the texts they score.

    >>> checked = check_record(Raw("a.jsonl", 1, b'{"query": "q", "pos": ["p"], "neg": ["p", "n"]}'), Fields())
    >>> checked.neg, checked.repairs
    (['n'], {'pos_in_neg': 1})
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .io import Raw, dumps
from .schema import Fields

# Dropped rows, in the order the checks run (``duplicate_row`` runs per batch, in scan.py).
DROP_REASONS: tuple[str, ...] = (
    "invalid_utf8",
    "malformed_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "empty_query",
    "empty_pos",
    "query_equals_pos",
    "no_negatives",
    "duplicate_row",
)
# Repairs: the row is kept, the offending text is removed.
REPAIR_REASONS: tuple[str, ...] = ("empty_pos_item", "empty_neg", "pos_in_neg", "duplicate_neg")
# Warnings: the row is kept as it is; they only inform.
WARNING_REASONS: tuple[str, ...] = ("control_chars", "over_model_limit", "few_negatives")

EXPLANATIONS: dict[str, str] = {
    "invalid_utf8": "the line is not valid UTF-8 (or holds a lone surrogate escape)",
    "malformed_json": "the line is not valid JSON",
    "not_object": "the JSON value is not an object",
    "missing_field": "no query or no pos field",
    "wrong_type": "query is not a string, or pos/neg is not a list of strings",
    "empty_query": "the query is blank",
    "empty_pos": "no positive has text",
    "query_equals_pos": "the query equals one of its positives: the loss is trivially zero",
    "no_negatives": "too few negatives left (FlagEmbedding divides by their number and crashes)",
    "duplicate_row": "same query and positives as an earlier kept row",
    "empty_pos_item": "blank positive removed",
    "empty_neg": "blank negative removed",
    "pos_in_neg": "negative equal to a positive removed (it would teach the opposite)",
    "duplicate_neg": "repeated negative removed",
    "control_chars": "text holds control characters",
    "over_model_limit": "a text is longer than the model can read: it is always truncated",
    "few_negatives": "fewer negatives than train_group_size - 1: FlagEmbedding repeats some",
}

_SUSPECT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")  # control or surrogate
_ONLY_STR = {str}
_decode = json.JSONDecoder().raw_decode
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass
class Dropped:
    raw: Raw
    reason: str
    detail: str


@dataclass
class Checked:
    """A row that passed the per-row checks; ``obj`` already carries the repairs."""

    raw: Raw
    obj: dict
    query: str
    pos: list[str]
    neg: list[str]
    prompt: str | None
    repairs: dict[str, int] = field(default_factory=dict)
    warnings: set[str] = field(default_factory=set)

    def dedup_key(self) -> str:
        """Stripped query and the set of stripped positives: what makes two rows the same."""
        return "\x1e".join([self.query.strip(), *sorted({p.strip() for p in self.pos})])


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


def parse(raw: Raw) -> dict | Dropped:
    """Bytes to a JSON object (Parquet rows already are one)."""
    if isinstance(raw.data, dict):
        return raw.data
    try:
        text = raw.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Dropped(
            raw, "invalid_utf8", f"invalid byte {raw.data[exc.start]:#04x} at byte {exc.start + 1}"
        )
    try:
        # json.loads, less its two whitespace regex passes; trailing text is still an error.
        body = text.strip(" \t\r\n")
        obj, end = _decode(body)
        if end != len(body):
            raise ValueError(f"Extra data after the JSON value: column {end + 1}")
    except (ValueError, RecursionError) as exc:
        return Dropped(raw, "malformed_json", str(exc)[:200])
    if not isinstance(obj, dict):
        return Dropped(raw, "not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def check_record(raw: Raw, fields: Fields, min_neg: int = 1) -> Checked | Dropped:
    obj = parse(raw)
    if isinstance(obj, Dropped):
        return obj
    missing = [n for n in (fields.query, fields.pos) if n not in obj]
    if missing:
        present = ", ".join(sorted(map(str, obj))[:10]) or "none"
        return Dropped(raw, "missing_field", f"no '{missing[0]}' (keys present: {present})")

    query = obj[fields.query]
    if not isinstance(query, str):
        kind = "null" if query is None else type(query).__name__
        return Dropped(raw, "wrong_type", f"'{fields.query}' must be a string, got {kind}")
    pos, why = _texts(obj[fields.pos], fields.pos, fields.lenient(fields.pos))
    if pos is None:
        return Dropped(raw, "wrong_type", why)
    has_neg = fields.neg in obj
    neg, why = _texts(obj[fields.neg], fields.neg, fields.lenient(fields.neg)) if has_neg else ([], "")
    if neg is None:
        return Dropped(raw, "wrong_type", why)
    # Valid JSON carries a control character or a lone surrogate only as an escape (\u..., \b,
    # \f), DEL excepted, so a line with none needs no regex; else one call over the row's texts.
    data = raw.data
    suspect = (
        isinstance(data, dict) or b"\\u" in data or b"\\b" in data or b"\\f" in data or b"\x7f" in data
    ) and _SUSPECT.search("\n".join([query, *pos, *neg])) is not None
    if suspect:
        for name, texts in ((fields.query, [query]), (fields.pos, pos), (fields.neg, neg)):
            if any(_SURROGATE.search(t) for t in texts):
                return Dropped(raw, "invalid_utf8", f"'{name}' holds a lone surrogate escape")

    q = query.strip()
    if not q:
        return Dropped(raw, "empty_query", f"'{fields.query}' is blank")
    stripped_pos = [p.strip() for p in pos]
    if not any(stripped_pos):
        return Dropped(raw, "empty_pos", f"none of the {len(pos)} positives has text")
    if q in stripped_pos:
        i = stripped_pos.index(q)
        return Dropped(raw, "query_equals_pos", f"query equals '{fields.pos}'[{i}]")

    repairs: dict[str, int] = {}
    keep_pos = [i for i, p in enumerate(stripped_pos) if p]
    if len(keep_pos) < len(pos):
        repairs["empty_pos_item"] = len(pos) - len(keep_pos)
    pos_set = {stripped_pos[i] for i in keep_pos}
    stripped_neg = [n.strip() for n in neg]
    neg_set = set(stripped_neg)
    if all(stripped_neg) and len(neg_set) == len(neg) and pos_set.isdisjoint(neg_set):
        keep_neg = list(range(len(neg)))  # nothing to repair (most rows): no per-item loop
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
            else:
                seen.add(s)
                keep_neg.append(i)

    if len(keep_neg) < min_neg:
        why = (
            "no 'neg' field" if not has_neg else f"{len(keep_neg)} of {len(neg)} negatives left after repairs"
        )
        return Dropped(raw, "no_negatives", f"{why}; need at least {min_neg} (--min-neg)")

    if repairs:
        obj = dict(obj)
        _keep(obj, fields.pos, "pos_scores", keep_pos, len(pos))
        _keep(obj, fields.neg, "neg_scores", keep_neg, len(neg))
    prompt = obj.get("prompt")
    checked = Checked(
        raw,
        obj,
        query,
        pos if len(keep_pos) == len(pos) else [pos[i] for i in keep_pos],
        neg if len(keep_neg) == len(neg) else [neg[i] for i in keep_neg],
        prompt if isinstance(prompt, str) else None,
        repairs,
    )
    if suspect:  # no surrogate, so a control character
        checked.warnings.add("control_chars")
    return checked


def _keep(obj: dict, key: str, scores_key: str, keep: list[int], n: int) -> None:
    """Keep only items ``keep`` of ``obj[key]`` (and of its aligned scores list, if any)."""
    if len(keep) == n:
        return
    value = obj[key]
    obj[key] = [value[i] for i in keep] if isinstance(value, list) else (value if keep else [])
    scores = obj.get(scores_key)
    if isinstance(scores, list) and len(scores) == n:
        obj[scores_key] = [scores[i] for i in keep]


def reject_record(dropped: Dropped, raw_limit: int) -> dict:
    """The JSON line written to the rejects file for a dropped row."""
    data = dropped.raw.data
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else dumps(data)
    record = {
        "source": dropped.raw.source,
        "line": dropped.raw.line,
        "reason": dropped.reason,
        "detail": dropped.detail,
        "raw": text[:raw_limit],
    }
    if len(text) > raw_limit:
        record["raw_truncated_from"] = len(text)
    return record
