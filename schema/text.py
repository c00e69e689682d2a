"""Rules for text that crosses a trust boundary (provider or client → wire, database, regex engine).

- :func:`line_safe`: values written into line-based protocols (AMI's
  ``Key: value\\r\\n``) must not end the line: CR, LF and NUL are refused.
- :func:`storable_text` / :func:`storable`: PostgreSQL text and jsonb cannot hold
  U+0000, and UTF-8 cannot encode a lone surrogate; provider text gets both
  replaced by U+FFFD so the message or call is stored instead of lost.
- :func:`compile_linear`: patterns an account supplies run on the shared event
  loop, so they are compiled by RE2 (linear-time matching, no backtracking).
"""

from __future__ import annotations

import re
from typing import Any

import re2
from pydantic import BaseModel

REPLACEMENT = "\ufffd"
_LINE_BREAKERS = re.compile("[\r\n\x00]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def line_safe(value: str, where: str) -> str:
    """``value`` unchanged, or ``ValueError`` when it holds CR, LF, NUL or a lone surrogate."""
    if _LINE_BREAKERS.search(value):
        raise ValueError(f"{where} must not contain CR, LF or NUL characters")
    if _UNSTORABLE.search(value):
        raise ValueError(f"{where} must be valid Unicode text (no lone surrogates)")
    return value


def storable_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD (the rest kept as it came)."""
    return _UNSTORABLE.sub(REPLACEMENT, value) if _UNSTORABLE.search(value) else value


def storable(value: Any) -> Any:
    """:func:`storable_text` applied to every string in a value: JSON-like data and pydantic models
    (frozen ones are copied, only where something changed), keys included."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(k) if isinstance(k, str) else k: storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(storable(v) for v in value)
    if isinstance(value, BaseModel):
        changed = {}
        for name in type(value).model_fields:
            item = getattr(value, name)
            clean = storable(item)
            if clean is not item and clean != item:
                changed[name] = clean
        return value.model_copy(update=changed) if changed else value
    return value


def compile_linear(pattern: str, what: str = "pattern") -> Any:
    """``pattern`` compiled by RE2; ``ValueError`` naming ``what`` when RE2 cannot compile it
    (backreferences, lookaround, lone surrogates…)."""
    options = re2.Options()
    options.log_errors = False  # the reason is in the exception; RE2 would also print it to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        reason = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        raise ValueError(f"{what} is not a regular expression RE2 accepts: {reason}") from None
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text (no lone surrogates)") from None
