"""The one JSON decoder for everything a client or provider sends (REST bodies,
webhooks, WebSocket frames, cursors).

Python's ``json`` accepts more than JSON and more than the rest of the gateway
can hold: ``NaN``/``Infinity`` and ``1e999`` (not JSON; Starlette refuses to
encode them back, so a stored one fails every later read), integers of any
length (over 4,300 digits ``int()`` raises, and anything beyond 64 bits
overflows a bigint column), and nesting deep enough to exhaust the stack. Text
PostgreSQL cannot store (U+0000, lone surrogates) is valid JSON, so it is a
separate check (:func:`unstorable`) each entry point applies its own way.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

# Deeper than any body the API or a provider sends; far below the recursion limit.
MAX_DEPTH = 64
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Longest literal that can still be an int64 ("-9223372036854775808"): checked
# before int() so a 5,000-digit number costs nothing.
_MAX_INT_CHARS = 20


class JsonRejected(ValueError):
    """Not JSON, or JSON the gateway refuses; the message is safe to show (it never echoes input)."""


class NumberRejected(JsonRejected):
    """Well-formed but a number no column can hold (NaN, Infinity, 1e999, beyond 64 bits):
    the REST API answers it as a validation error (422), like any other out-of-range value."""


def _int(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise NumberRejected("integers must fit in 64 bits")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise NumberRejected("integers must fit in 64 bits")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NumberRejected("numbers must be finite")
    return value


def _constant(name: str) -> Any:
    raise NumberRejected(f"numbers must be finite ({name} is not JSON)")


_decoder = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def loads(data: str | bytes) -> Any:
    """Decode UTF-8 JSON strictly, or raise :class:`JsonRejected`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = _decoder.decode(text)
    except JsonRejected:
        raise
    except RecursionError:
        raise JsonRejected(f"nesting deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise JsonRejected("not UTF-8") from None
    except json.JSONDecodeError as exc:
        # Position only: exc.msg is fixed text, the document itself is never echoed.
        raise JsonRejected(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # a parse hook's own error, e.g. float() of an absurd literal
        raise JsonRejected("not valid JSON") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise JsonRejected(f"nesting deeper than {MAX_DEPTH} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def unstorable(value: Any) -> str | None:
    """Why ``value`` (decoded JSON) cannot go into PostgreSQL text/jsonb, else None.

    The reason names the kind of problem, never the text: the text may be
    what cannot be encoded."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if (problem := unstorable_text(item)) is not None:
                return problem
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and (problem := unstorable_text(key)) is not None:
                    return problem
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return None


def unstorable_text(text: str) -> str | None:
    if "\x00" in text:
        return "text must not contain NUL characters (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text must not contain lone surrogates (invalid Unicode)"
    return None


def safe_text(text: str) -> str:
    """``text`` made encodable and storable (for messages that may quote client input)."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def utc_or_none(value: datetime) -> datetime | None:
    """``value`` in UTC, or None when it has no time zone or falls off Python's
    calendar once converted (``0001-01-01T00:00:00+14:00`` is the year 0 in UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None
