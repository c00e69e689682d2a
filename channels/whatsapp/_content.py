"""The content of one WhatsApp message object: its type, human-readable text, media and extras.

Used for inbound messages, business-side echoes and the new content of edits.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from channels.whatsapp._json import JsonObj, array, ident, obj, opt_array, opt_obj, opt_string
from schema.enums import MessageType
from schema.events import MediaRef

_MEDIA_TYPES: dict[str, MessageType] = {
    "image": MessageType.IMAGE,
    "video": MessageType.VIDEO,
    "audio": MessageType.AUDIO,
    "document": MessageType.DOCUMENT,
    "sticker": MessageType.STICKER,
}

# Message types that are provider notices, not conversation content.
IGNORED_TYPES = frozenset({"system", "request_welcome"})
# Interactive replies that belong to WhatsApp Business calling, not the conversation (for now).
_IGNORED_INTERACTIVE = frozenset({"call_permission_reply"})

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass
class Content:
    type: MessageType
    text: str | None = None
    media: tuple[MediaRef, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    keep_raw: bool = False


def normalise_sha256(value: str | None) -> str | None:
    """WhatsApp announces digests in base64 (webhooks) or hex (media metadata): lowercase hex, or None."""
    if not value:
        return None
    if _HEX_SHA256.fullmatch(value):
        return value.lower()
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Anything but 32 bytes is not a sha256 (some test payloads carry placeholders).
    return digest.hex() if len(digest) == 32 else None


def message_content(msg: JsonObj, where: str) -> Content | None:
    """The content of a message object; ``None`` for notices that are not conversation data."""
    kind = opt_string(msg.get("type"), f"{where}.type") or "unsupported"
    if kind in IGNORED_TYPES:
        return None
    if kind == "text":
        body = opt_obj(msg.get("text"), f"{where}.text")
        return Content(MessageType.TEXT, text=opt_string(body.get("body"), f"{where}.text.body"))
    if kind in _MEDIA_TYPES:
        return _media(kind, obj(msg.get(kind), f"{where}.{kind}"), f"{where}.{kind}")
    if kind == "location":
        return _location(obj(msg.get("location"), f"{where}.location"), f"{where}.location")
    if kind == "contacts":
        return _contacts(array(msg.get("contacts"), f"{where}.contacts"), f"{where}.contacts")
    if kind == "interactive":
        return _interactive(msg.get("interactive"), f"{where}.interactive")
    if kind == "button":
        button = obj(msg.get("button"), f"{where}.button")
        text = opt_string(button.get("text"), f"{where}.button.text")
        payload = opt_string(button.get("payload"), f"{where}.button.payload")
        return Content(MessageType.INTERACTIVE, text=text, extra={"button": {"text": text, "payload": payload}})
    # unsupported, order, and anything WhatsApp adds later: keep it whole.
    extra: dict[str, Any] = {"provider_type": kind}
    if kind == "order":
        order = opt_obj(msg.get("order"), f"{where}.order")
        return Content(MessageType.UNSUPPORTED, text=opt_string(order.get("text"), f"{where}.order.text"),
                       extra=extra, keep_raw=True)
    return Content(MessageType.UNSUPPORTED, extra=extra, keep_raw=True)


def _media(kind: str, part: JsonObj, where: str) -> Content:
    ref = MediaRef(
        provider_id=ident(part.get("id"), f"{where}.id"),
        mime_type=opt_string(part.get("mime_type"), f"{where}.mime_type"),
        name=opt_string(part.get("filename"), f"{where}.filename"),
        sha256=normalise_sha256(opt_string(part.get("sha256"), f"{where}.sha256")),
        url=opt_string(part.get("url"), f"{where}.url"),
    )
    extra: dict[str, Any] = {}
    for flag in ("voice", "animated"):
        if isinstance(part.get(flag), bool):
            extra[flag] = part[flag]
    caption = opt_string(part.get("caption"), f"{where}.caption")
    return Content(_MEDIA_TYPES[kind], text=caption, media=(ref,), extra=extra)


def _location(part: JsonObj, where: str) -> Content:
    name = opt_string(part.get("name"), f"{where}.name")
    address = opt_string(part.get("address"), f"{where}.address")
    location: dict[str, Any] = {"name": name, "address": address,
                                "url": opt_string(part.get("url"), f"{where}.url")}
    for axis in ("latitude", "longitude"):
        value = part.get(axis)
        # Unusable coordinates are dropped, not fatal: the name and address are still worth keeping.
        location[axis] = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    return Content(MessageType.LOCATION, text=name or address, extra={"location": location})


def _contacts(cards: list[Any], where: str) -> Content:
    names: list[str] = []
    for i, card in enumerate(cards):
        name = opt_obj(obj(card, f"{where}[{i}]").get("name"), f"{where}[{i}].name")
        formatted = opt_string(name.get("formatted_name"), f"{where}[{i}].name.formatted_name")
        if formatted:
            names.append(formatted)
    return Content(MessageType.CONTACTS, text=", ".join(names) or None, extra={"contacts": cards})


def _interactive(value: Any, where: str) -> Content | None:
    if value is None:
        # WhatsApp sends type "interactive" without the object when it could not render the reply.
        return Content(MessageType.UNSUPPORTED, extra={"provider_type": "interactive"}, keep_raw=True)
    part = obj(value, where)
    sub = opt_string(part.get("type"), f"{where}.type")
    if sub in _IGNORED_INTERACTIVE:
        return None
    if sub in ("button_reply", "list_reply"):
        reply = obj(part.get(sub), f"{where}.{sub}")
        title = opt_string(reply.get("title"), f"{where}.{sub}.title")
        chosen = {
            "kind": sub,
            "id": opt_string(reply.get("id"), f"{where}.{sub}.id"),
            "title": title,
            "description": opt_string(reply.get("description"), f"{where}.{sub}.description"),
        }
        return Content(MessageType.INTERACTIVE, text=title, extra={"reply": chosen})
    if sub == "nfm_reply":
        reply = obj(part.get("nfm_reply"), f"{where}.nfm_reply")
        flow = {
            "name": opt_string(reply.get("name"), f"{where}.nfm_reply.name"),
            "response_json": opt_string(reply.get("response_json"), f"{where}.nfm_reply.response_json"),
        }
        return Content(MessageType.INTERACTIVE, text=opt_string(reply.get("body"), f"{where}.nfm_reply.body"),
                       extra={"flow": flow})
    return Content(MessageType.INTERACTIVE, extra={"provider_type": f"interactive.{sub}"}, keep_raw=True)


def collect_errors(value: Any, where: str) -> list[Any]:
    """WhatsApp's ``errors`` arrays (kept as they are, for the record)."""
    return opt_array(value, where)
