"""AMI framing: bytes on the wire ↔ plain ``dict[str, str]`` messages.

Parsing goes through panoramisk's own ``Message.from_line`` so recorded
traces, the fake server and the live connection share one parser. Keys are
lower-cased (Asterisk is not consistent: ``Uniqueid`` in events, ``UniqueID``
in ``Cdr``); a header repeated in one message keeps its last value, except the
headers that say what a message is (``Event``, ``Response``, ``ActionID``): a
block with two of those is two messages run together (a lost blank line) and
is reported by ``malformed`` so the reader can skip it rather than guess.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from panoramisk.message import Message

EOL = "\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"

AmiMessage = dict[str, str]


def normalize(message: Mapping[str, Any]) -> AmiMessage:
    """Lower-case keys, string values; a repeated header keeps its last value."""
    out: AmiMessage = {}
    for key, value in message.items():
        if key == "content" and not value:
            continue  # panoramisk's slot for a response body, empty for events
        if isinstance(value, list):
            value = value[-1] if value else ""
        out[str(key).lower()] = "" if value is None else str(value)
    return out


# Headers that identify a message: two of them in one block cannot be one message.
_IDENTITY_HEADERS = ("event", "response", "actionid")


def malformed(message: Mapping[str, Any]) -> str | None:
    """Why a parsed block cannot be taken as one message, or ``None`` when it can.

    panoramisk turns a repeated header into a list; on ``Event`` its own
    dispatch then fails (``'list' object has no attribute 'lower'``) and the
    session drops.
    """
    for key, value in message.items():
        if str(key).lower() in _IDENTITY_HEADERS and isinstance(value, list):
            return f"{len(value)} {key} headers in one block"
    return None


def describe(message: Mapping[str, Any]) -> str:
    """A loggable summary: header names only (values may carry secrets or personal data)."""
    return ", ".join(str(key) for key in message if key != "content")


def parse_block(block: str) -> AmiMessage | None:
    """One message (lines without the blank separator); ``None`` for the banner, noise or a malformed block."""
    lines = [line for line in block.replace("\r\n", "\n").split("\n") if not line.startswith(BANNER_PREFIX)]
    # panoramisk only splits "Key: Value"; a header with an empty value loses its
    # trailing space when the block is stripped, so put it back.
    lines = [line + " " if line.endswith(":") and ": " not in line else line for line in lines]
    parsed = Message.from_line(EOL.join(lines).strip(EOL))
    if parsed is None or malformed(parsed):
        return None
    return normalize(parsed)


def iter_messages(text: str) -> Iterator[AmiMessage]:
    """Every ``Event``/``Response`` message of a stream (banner skipped)."""
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if block.strip():
            message = parse_block(block)
            if message is not None:
                yield message


def split_stream(buffer: str) -> tuple[list[str], str]:
    """Complete message blocks of ``buffer`` and the incomplete rest (for incremental readers)."""
    normalized = buffer.replace("\r\n", "\n")
    *blocks, rest = normalized.split("\n\n")
    return [b for b in blocks if b.strip()], rest


def render(fields: Mapping[str, str] | list[tuple[str, str]]) -> bytes:
    """One message as on the wire: ``Key: Value`` lines and a blank line."""
    items = list(fields.items()) if isinstance(fields, Mapping) else fields
    for key, value in items:
        if "\r" in value or "\n" in value or "\r" in key or "\n" in key or ":" in key:
            raise ValueError(f"AMI header {key!r} cannot carry line breaks or colons in its name")
    return ("".join(f"{key}: {value}{EOL}" for key, value in items) + EOL).encode()
