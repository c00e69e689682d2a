"""Blue ticks: mark a WhatsApp conversation's messages read on the provider when an agent reads it.

Opt-in per channel with config ``"mark_read": true``. An agent reading a
conversation shows up as ``conversation.updated`` with ``unread_count`` 0; the
latest inbound message is then marked read, which WhatsApp applies to every
earlier one too. Best effort: a failure is logged, never retried, and never
affects the conversation (the read receipt is a courtesy to the customer).

With a Redis broker every process sees the event and may send the same
receipt; WhatsApp treats repeats as no-ops, and each process remembers what it
already marked.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import asyncpg

from channels.whatsapp.client import GraphApiClient, GraphError
from gateway.context import AppContext
from gateway.http import DB_UNAVAILABLE
from inbox.eventlog import EventRecord
from schema.enums import ChannelType, EventName

log = logging.getLogger(__name__)

_REMEMBERED = 10_000  # conversations whose last receipt this process remembers
_ERRORS: tuple[type[BaseException], ...] = (GraphError, asyncpg.PostgresError, *DB_UNAVAILABLE)


class ReadReceipts:
    def __init__(self, ctx: AppContext, client: GraphApiClient) -> None:
        self._ctx = ctx
        self._client = client
        self._marked: OrderedDict[int, str] = OrderedDict()

    def on_event(self, record: EventRecord) -> None:
        """Broker listener: cheap filtering here, the I/O in a supervised task."""
        data = record.data
        if (record.event != EventName.CONVERSATION_UPDATED or data.get("channel_type") != ChannelType.WHATSAPP
                or data.get("unread_count") != 0 or not isinstance(data.get("id"), int)):
            return
        self._ctx.tasks.spawn(self.mark(record.account_id, data["id"]), name=f"whatsapp-read-{data['id']}")

    async def mark(self, account_id: int, conversation_id: int) -> bool:
        """Send the receipt for the conversation's latest inbound message; True when one was sent."""
        try:
            row = await self._ctx.pool.fetchrow(
                """SELECT ch.config, ch.secrets_enc, last.external_id
                   FROM conversations c
                   JOIN channels ch ON ch.id = c.channel_id AND ch.deleted_at IS NULL
                   JOIN LATERAL (SELECT external_id FROM messages
                                 WHERE conversation_id = c.id AND direction = 'inbound' AND external_id IS NOT NULL
                                 ORDER BY created_at DESC, id DESC LIMIT 1) last ON true
                   WHERE c.id = $1 AND c.account_id = $2 AND ch.type = 'whatsapp'""",
                conversation_id,
                account_id,
            )
            if row is None or row["config"].get("mark_read") is not True:
                return False
            wamid: str = row["external_id"]
            if self._marked.get(conversation_id) == wamid:
                return False
            await self._client.mark_read(
                phone_number_id=str(row["config"].get("phone_number_id", "")),
                access_token=str(self._ctx.secret_box.open(row["secrets_enc"]).get("access_token", "")),
                message_id=wamid,
            )
        except _ERRORS as exc:
            log.warning("whatsapp read receipt for conversation %s not sent: %s", conversation_id, exc)
            return False
        self._marked[conversation_id] = wamid
        self._marked.move_to_end(conversation_id)
        while len(self._marked) > _REMEMBERED:
            self._marked.popitem(last=False)
        return True


def install(ctx: AppContext, client: GraphApiClient) -> None:
    add_listener = getattr(ctx.broker, "add_listener", None)
    if add_listener is None:
        log.warning("the broker takes no listeners: WhatsApp read receipts are off")
        return
    receipts = ReadReceipts(ctx, client)
    ctx.extras["whatsapp_read_receipts"] = receipts
    add_listener(receipts.on_event)
