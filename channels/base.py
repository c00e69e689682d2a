"""What every channel adapter shares: the shape of its pure parser and small helpers.

A channel package (``channels/<provider>/``) has the same few parts: ``parse``
(provider bytes → :mod:`schema.events`), ``verify`` (the provider's own request
authentication), ``client`` (a thin HTTP/TCP client), and the implementations of
:class:`schema.outbound.OutboundSender` / :class:`schema.media.MediaFetcher`.
Adapters never import ``inbox`` or ``gateway``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from schema.events import ParsedPayload, ParseError


class PayloadParser(Protocol):
    """Turns one provider request body into normalised events.

    Raises :class:`schema.events.ParseError` for anything it cannot normalise
    (the payload becomes a dead letter); never any other exception.
    """

    def __call__(self, body: str) -> ParsedPayload: ...


# Provider timestamps outside this range are garbage, not dates.
_MIN_EPOCH = 0
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


def utc_from_epoch(value: object, *, field: str = "timestamp") -> datetime:
    """A provider's epoch-seconds timestamp (int or digit string) as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ParseError(f"{field}: expected epoch seconds, got a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 20):
            raise ParseError(f"{field}: expected epoch seconds, got {value[:40]!r}")
        seconds = int(text)
    elif isinstance(value, int):
        seconds = value
    else:
        raise ParseError(f"{field}: expected epoch seconds, got {type(value).__name__}")
    if not _MIN_EPOCH <= seconds <= _MAX_EPOCH:
        raise ParseError(f"{field}: {seconds} is out of range")
    return datetime.fromtimestamp(seconds, tz=UTC)
