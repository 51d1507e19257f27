"""How lenprof writes a row, or any value, as JSON text: UTF-8 as it is, and the values Parquet
can hold but JSON cannot (dates, decimals, bytes) as text; and how it reads a JSON file of its
own kind (a profile, a run's history), where nesting without end is refused as bad JSON."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from typing import Any


def json_default(value: Any) -> Any:
    """Values Parquet can hold but JSON cannot: dates as ISO text, decimals as text, bytes as
    UTF-8 text when they are text and base64 otherwise, anything else as its text."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, (datetime.timedelta, decimal.Decimal)):
        return str(value)
    return str(value)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=json_default)


# A profile or a run's history nests a few levels. Deeper, the standard library's reader and
# writer fail where the stack ends (a RecursionError, no fixed depth): refuse it first.
MAX_DEPTH = 100


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads``, where arrays and objects nested more than ``max_depth`` levels are a
    ``ValueError`` like any other bad JSON, never a ``RecursionError``.

        >>> loads("[[1]]", max_depth=1)
        Traceback (most recent call last):
        ValueError: arrays and objects nested more than 1 levels deep
    """
    try:
        value = json.loads(text)
    except RecursionError:
        value = None  # deeper than the stack allows: deeper than max_depth, too
    else:
        if not deeper_than(value, max_depth):
            return value
    raise ValueError(f"arrays and objects nested more than {max_depth} levels deep")


def deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels in ``value`` (a walk with a
    stack of its own: no recursion, whatever the depth).

        >>> deeper_than({"a": [[1]]}, 2), deeper_than({"a": [[1]]}, 3)
        (True, False)
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False
