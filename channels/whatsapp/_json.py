"""Strict JSON decoding and typed field access for webhook bodies.

Everything here raises :class:`schema.events.ParseError` (or
:class:`MalformedBody` for bytes that are not JSON at all) and nothing else, so
the parser built on it keeps the :class:`channels.base.PayloadParser` promise.
"""

from __future__ import annotations

from typing import Any

from schema import strict_json
from schema.events import ParseError

JsonObj = dict[str, Any]


class MalformedBody(ValueError):
    """The bytes are not JSON (or JSON we refuse: NaN, infinities, absurd nesting)."""


def decode_body(body: bytes | str) -> Any:
    """Decode a request body (``schema.strict_json``): not UTF-8, not JSON, NaN/Infinity,
    integers beyond 64 bits or nesting too deep → MalformedBody."""
    try:
        return strict_json.loads(body)
    except strict_json.JsonRejected as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None


def obj(value: Any, where: str) -> JsonObj:
    if not isinstance(value, dict):
        raise ParseError(f"{where}: expected an object, got {_kind(value)}")
    return value


def opt_obj(value: Any, where: str) -> JsonObj:
    return {} if value is None else obj(value, where)


def array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(f"{where}: expected an array, got {_kind(value)}")
    return value


def opt_array(value: Any, where: str) -> list[Any]:
    return [] if value is None else array(value, where)


def string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ParseError(f"{where}: expected a non-empty string, got {_kind(value)}")
    return value


def opt_string(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where}: expected a string, got {_kind(value)}")
    return value or None


def ident(value: Any, where: str) -> str:
    """A provider id: WhatsApp sends strings, but tolerate a bare integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return string(value, where)


def opt_ident(value: Any, where: str) -> str | None:
    return None if value is None or value == "" else ident(value, where)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
