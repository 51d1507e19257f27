"""How lenprof writes a row, or any value, as JSON text: UTF-8 as it is, and the values Parquet
can hold but JSON cannot (dates, decimals, bytes) as text."""

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
