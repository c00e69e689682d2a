"""Field checks and message content for the Telegram parser (pure).

``Update.de_json`` trusts its input, so every value read from a decoded object
is checked here; anything unusable raises :class:`ParseError`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from telegram import Message

from channels.base import utc_from_epoch
from schema.enums import MessageType
from schema.events import MediaRef, ParseError


def int_field(value: object, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ParseError(f"{field}: expected an integer, got {type(value).__name__}")


def opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def date_field(value: object, field: str) -> datetime:
    # de_json has already turned epoch seconds into aware datetimes; a raw int
    # means it left the field alone (e.g. 0 for "unknown").
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return utc_from_epoch(value, field=field)


def full_name(first: object, last: object) -> str | None:
    parts = [p for p in (opt_str(first), opt_str(last)) if p]
    return " ".join(parts) or None


def file_ref(obj: object, *, mime_type: str | None = None, name: str | None = None) -> MediaRef:
    file_id = opt_str(getattr(obj, "file_id", None))
    if file_id is None:
        raise ParseError("a media attachment has no file_id")
    return MediaRef(
        provider_id=file_id,
        mime_type=opt_str(getattr(obj, "mime_type", None)) or mime_type,
        name=name,
        size=opt_int(getattr(obj, "file_size", None)),
    )


def largest_photo(sizes: object) -> object:
    if not isinstance(sizes, tuple | list) or not sizes:
        raise ParseError("photo: expected a non-empty list of sizes")

    def area(p: object) -> tuple[int, int]:
        w, h = opt_int(getattr(p, "width", None)) or 0, opt_int(getattr(p, "height", None)) or 0
        return w * h, opt_int(getattr(p, "file_size", None)) or 0

    return max(sizes, key=area)


def sticker_mime(sticker: Any) -> str:
    if sticker.is_video is True:
        return "video/webm"
    if sticker.is_animated is True:
        return "application/x-tgsticker"
    return "image/webp"


def message_content(msg: Message) -> tuple[MessageType, str | None, tuple[MediaRef, ...], dict[str, Any]]:
    """Type, human-readable text, media and extra fields of one message."""
    caption = opt_str(msg.caption)
    if msg.text is not None:
        text = opt_str(msg.text)
        return MessageType.TEXT, text, (), {}
    if msg.animation is not None:  # GIFs also carry a ``document``: check them first
        return MessageType.VIDEO, caption, (file_ref(msg.animation, mime_type="video/mp4"),), {"animation": True}
    if msg.photo:
        photo = largest_photo(msg.photo)
        size = {"width": opt_int(getattr(photo, "width", None)), "height": opt_int(getattr(photo, "height", None))}
        return MessageType.IMAGE, caption, (file_ref(photo, mime_type="image/jpeg"),), size
    if msg.video is not None:
        name = opt_str(msg.video.file_name)
        return MessageType.VIDEO, caption, (file_ref(msg.video, mime_type="video/mp4", name=name),), {}
    if msg.video_note is not None:
        return MessageType.VIDEO, caption, (file_ref(msg.video_note, mime_type="video/mp4"),), {"video_note": True}
    if msg.voice is not None:
        return MessageType.AUDIO, caption, (file_ref(msg.voice, mime_type="audio/ogg"),), {"voice": True}
    if msg.audio is not None:
        name = opt_str(msg.audio.file_name) or opt_str(msg.audio.title)
        return MessageType.AUDIO, caption, (file_ref(msg.audio, mime_type="audio/mpeg", name=name),), {}
    if msg.document is not None:
        name = opt_str(msg.document.file_name)
        return MessageType.DOCUMENT, caption, (file_ref(msg.document, name=name),), {}
    if msg.sticker is not None:
        ref = file_ref(msg.sticker, mime_type=sticker_mime(msg.sticker))
        return MessageType.STICKER, None, (ref,), {"emoji": opt_str(msg.sticker.emoji)}
    if msg.venue is not None:
        venue = msg.venue
        text = ", ".join(p for p in (opt_str(venue.title), opt_str(venue.address)) if p) or None
        return MessageType.LOCATION, text, (), coordinates(venue.location)
    if msg.location is not None:
        return MessageType.LOCATION, None, (), coordinates(msg.location)
    if msg.contact is not None:
        c = msg.contact
        name, phone = full_name(c.first_name, c.last_name), opt_str(c.phone_number)
        card = {"name": name, "phone": phone, "user_id": opt_int(c.user_id)}
        # Readable like a WhatsApp contact card: who, and how to reach them.
        text = f"{name} ({phone})" if name and phone else name or phone
        return MessageType.CONTACTS, text, (), {"contacts": [card]}
    return MessageType.UNSUPPORTED, caption, (), {}


def coordinates(location: object) -> dict[str, Any]:
    lat, lon = getattr(location, "latitude", None), getattr(location, "longitude", None)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
        raise ParseError("location: latitude/longitude missing")
    return {"latitude": lat, "longitude": lon}
