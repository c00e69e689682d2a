"""Forward-only message status ordering (DESIGN §5.5). Pure."""

from __future__ import annotations

from schema.enums import STATUS_RANK, MessageStatus


def next_status(current: MessageStatus, incoming: MessageStatus) -> MessageStatus:
    """The status a message ends in after ``incoming`` arrives.

    ``pending → sent → delivered → read → played`` only moves forward; ``failed``
    is terminal and only reachable before delivery (a late ``failed`` after the
    recipient already got the message is noise). ``received`` (inbound) never moves.
    """
    if current in (MessageStatus.RECEIVED, MessageStatus.FAILED):
        return current
    if incoming == MessageStatus.FAILED:
        return incoming if STATUS_RANK[current] <= STATUS_RANK[MessageStatus.SENT] else current
    if incoming not in STATUS_RANK:
        return current
    return incoming if STATUS_RANK[incoming] > STATUS_RANK[current] else current


TIMESTAMP_COLUMN: dict[MessageStatus, str] = {
    MessageStatus.SENT: "sent_at",
    MessageStatus.DELIVERED: "delivered_at",
    MessageStatus.READ: "read_at",
    MessageStatus.PLAYED: "played_at",
    MessageStatus.FAILED: "failed_at",
}
