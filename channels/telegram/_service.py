"""Update kinds and service messages that are not conversation content (pure).

Decided on the raw JSON keys, before python-telegram-bot decodes anything, so
a shape it refuses cannot turn a notice into a dead letter. README.md has the
table of what each becomes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from channels.base import utc_from_epoch
from schema.events import IdentityChange, ParsedPayload, ParseError

# Update kinds that carry no conversation content: stored as ``ignored`` payloads.
IGNORED_UPDATE_KINDS = frozenset({
    "message_reaction_count",  # anonymous reaction totals: no one to attribute them to
    "chat_boost",
    "removed_chat_boost",
    "chat_member",  # other members of a group joining, leaving, promoted
    "poll",
    "poll_answer",
    "business_connection",
    "deleted_business_messages",
    "inline_query",
    "chosen_inline_result",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
})

# Service messages (a field of a ``message``/``channel_post`` that marks it as a
# notice) that are not conversation content: the update is ``ignored``.
IGNORED_SERVICE_FIELDS = frozenset({
    "pinned_message",
    "new_chat_members",
    "left_chat_member",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "channel_chat_created",
    "message_auto_delete_timer_changed",
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
    "general_forum_topic_hidden",
    "general_forum_topic_unhidden",
    "video_chat_scheduled",
    "video_chat_started",
    "video_chat_ended",
    "video_chat_participants_invited",
    "boost_added",
    "chat_background_set",
    "write_access_allowed",
    "proximity_alert_triggered",
    "giveaway_created",
    "giveaway_completed",
    "paid_message_price_changed",
    "direct_message_price_changed",
    "suggested_post_approved",
    "suggested_post_approval_failed",
    "suggested_post_declined",
    "suggested_post_paid",
    "suggested_post_refunded",
    "connected_website",
})


def _chat_id(value: Any, field: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ParseError(f"{field}: expected an integer chat id")


def service_payload(msg: dict[str, Any]) -> ParsedPayload | None:
    """What a service message becomes; None when ``msg`` is an ordinary message."""
    if "migrate_to_chat_id" in msg or "migrate_from_chat_id" in msg:
        return ParsedPayload(events=(_migration(msg),))
    title = msg.get("new_chat_title")
    if isinstance(title, str) and title:
        chat = msg.get("chat")
        chat_id = _chat_id(chat.get("id") if isinstance(chat, dict) else None, "chat.id")
        return ParsedPayload(events=(IdentityChange(known_ids=(chat_id,), name=title, occurred_at=_date(msg)),))
    if any(field in msg for field in IGNORED_SERVICE_FIELDS):
        return ParsedPayload(ignored=True)
    return None


def _migration(msg: dict[str, Any]) -> IdentityChange:
    """A group became a supergroup: its conversation continues under the new chat id.

    Telegram sends two notices, ``migrate_to_chat_id`` in the old group and
    ``migrate_from_chat_id`` in the new supergroup; both make the same change.
    """
    chat = msg.get("chat")
    here = _chat_id(chat.get("id") if isinstance(chat, dict) else None, "chat.id")
    if "migrate_to_chat_id" in msg:
        old, new = here, _chat_id(msg["migrate_to_chat_id"], "migrate_to_chat_id")
    else:
        old, new = _chat_id(msg["migrate_from_chat_id"], "migrate_from_chat_id"), here
    return IdentityChange(known_ids=(old,), new_ids=(new,), retired_ids=(old,), occurred_at=_date(msg))


def _date(msg: dict[str, Any]) -> datetime:
    return utc_from_epoch(msg.get("date"), field="date")
