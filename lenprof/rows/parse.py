"""A row as read, to a JSON object: the fast path for the common line, and a close look at the rest.

msgspec decodes the common line; it refuses exactly what needs a closer look (invalid UTF-8,
lone surrogate escapes, NaN/Infinity, out-of-range numbers, malformed JSON), and those lines take
the standard library's path, which names the problem. A key given twice is refused too:
readers disagree on which value counts, and pyarrow (so ``datasets``) refuses the whole file.

    >>> parse(b'{"query": "q"}')
    ({'query': 'q'}, False)
    >>> parse(b'{"a": NaN}').reason
    'malformed_json'
"""

from __future__ import annotations

import json
import re

import msgspec

from lenprof.io.jsontext import MAX_DEPTH, deeper_than
from lenprof.rows.reasons import Dropped

_SURROGATE = re.compile(r"[\ud800-\udfff]")
decode = msgspec.json.Decoder().decode  # the common line's decode; see ``parse``
_raw_decode = json.JSONDecoder().raw_decode


class _NonStandardNumber(ValueError):
    pass


def _no_constant(name: str) -> float:
    raise _NonStandardNumber(
        f"{name} is not standard JSON (RFC 8259): many readers refuse it, and a NaN score poisons training"
    )


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NonStandardNumber(
            f"the number {text[:40]} is out of range for a 64-bit float (it would be written back as Infinity)"
        )
    return value


# A row nested more than MAX_DEPTH levels is dropped: every later step (writing it back, pickling
# it to a worker) recurses per level and would fail where the stack ends, which is no fixed depth.
NESTED_TOO_DEEP = f"arrays and objects nested more than {MAX_DEPTH} levels deep (a training row needs a few)"
_strict = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_KEY = re.compile(rb'"\s*:')  # a key and its colon (also inside a string: never misses a key)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list) -> dict:
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise _DuplicateKey(k)
        seen[k] = v
    return seen


def duplicate_key(data: bytes, obj: dict) -> str | None:
    """A key the line repeats (JSON readers disagree on which value wins; pyarrow, and so
    ``datasets.load_dataset``, refuses the whole file). Lines with no more key-colon pairs than
    the object has keys cannot repeat one, so the exact look is rare."""
    if len(_KEY.findall(data)) <= len(obj):
        return None
    try:
        json.loads(data, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        return str(exc)
    except (ValueError, RecursionError):
        pass
    return None


def parse(data: bytes | dict) -> tuple[dict, bool] | Dropped:
    """A line's bytes to a JSON object (Parquet rows already are one), and whether some string
    in it holds a lone surrogate escape (which no output could encode).

    msgspec decodes the common line; it refuses exactly what needs a closer look (invalid UTF-8,
    lone surrogate escapes, NaN/Infinity, out-of-range numbers, malformed JSON), and those lines
    take the standard library's path, which names the problem.
    """
    if isinstance(data, dict):
        return data, False
    try:
        obj, surrogate = decode(data), False
    except Exception:  # DecodeError, UnicodeDecodeError, RecursionError: look closer
        slow = _slow_parse(data)
        if isinstance(slow, Dropped):
            return slow
        obj, surrogate = slow
    if not isinstance(obj, dict):
        return Dropped("not_object", f"expected a JSON object, got {type(obj).__name__}")
    # A line nests no deeper than it has brackets: counting them spares the common line the walk.
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and deeper_than(obj, MAX_DEPTH):
        return Dropped("malformed_json", NESTED_TOO_DEEP)
    repeated = duplicate_key(data, obj)
    if repeated is not None:
        return Dropped(
            "malformed_json", f"the key {repeated!r} appears twice (readers disagree on which value counts)"
        )
    return obj, surrogate


def _slow_parse(data: bytes) -> tuple[object, bool] | Dropped:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Dropped("invalid_utf8", f"invalid byte {data[exc.start]:#04x} at byte {exc.start + 1}")
    try:
        body = text.strip(" \t\r\n")
        obj, end = _raw_decode(body)
        if end != len(body):
            raise ValueError(f"Extra data after the JSON value: column {end + 1}")
    except ValueError as exc:
        return Dropped("malformed_json", str(exc)[:200])
    except RecursionError:  # the same row in a JSON array or in JSON Lines: the same words
        return Dropped("malformed_json", NESTED_TOO_DEEP)
    try:
        _strict.raw_decode(body)  # the same value: only non-standard numbers fail here
    except _NonStandardNumber as exc:
        return Dropped("malformed_json", str(exc))
    except RecursionError:  # a stack a few frames deeper than the first decode's
        return Dropped("malformed_json", NESTED_TOO_DEEP)
    if deeper_than(obj, MAX_DEPTH):  # before has_surrogate, which recurses
        return Dropped("malformed_json", NESTED_TOO_DEEP)
    return obj, has_surrogate(obj)


def has_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_surrogate(v) for v in value)
    return False
