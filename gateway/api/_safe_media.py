"""How a stored media file is served without becoming active content on our origin (pure).

Media types and names come from providers (WhatsApp metadata, Telegram, a PBX):
a ``text/html`` or ``image/svg+xml`` file served inline would run script with the
inbox page's origin. Only types a browser renders passively are served inline;
everything else is an ``application/octet-stream`` attachment. A type or name
with junk (CR/LF, quotes, control characters) never reaches a header as given.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

OCTET_STREAM = "application/octet-stream"

# Rendered passively by browsers (no script): SVG is deliberately absent, it is XML with script.
_INLINE_IMAGES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp", "image/heic", "image/heif",
})
_INLINE_OTHER = frozenset({"application/pdf"})
_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_MAX_NAME = 200


def served_type(stored: str | None) -> tuple[str, bool]:
    """``(Content-Type, inline)`` for a stored provider media type; parameters are dropped."""
    if not stored:
        return OCTET_STREAM, False
    bare = stored.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(bare):
        return OCTET_STREAM, False
    if bare in _INLINE_IMAGES or bare in _INLINE_OTHER:
        return bare, True
    major = bare.split("/", 1)[0]
    if major in ("audio", "video"):
        return bare, True
    return OCTET_STREAM, False


def safe_filename(name: str | None, fallback: str) -> str:
    """The last path segment, without control/format characters, trimmed; ``fallback`` when nothing is left."""
    if name:
        name = re.split(r"[/\\]", name)[-1]
        name = "".join(" " if unicodedata.category(c).startswith(("C", "Z")) else c for c in name)
        name = " ".join(name.split()).strip(" .")[:_MAX_NAME].strip(" .")
    return name or fallback


def content_disposition(inline: bool, name: str | None, fallback: str) -> str:
    """RFC 6266: a quoted ASCII ``filename`` for old clients, ``filename*`` (UTF-8) for the real name."""
    clean = safe_filename(name, fallback)
    ascii_name = "".join(c if " " <= c <= "~" and c not in '"\\%;' else "_" for c in clean)
    encoded = quote(clean.encode("utf-8", "replace"), safe="")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"
