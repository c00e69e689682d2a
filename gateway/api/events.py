"""``/api/v1/events``: the durable event log, for catch-up (same items as WS ``event`` frames)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api._common import decode_cursor, encode_cursor, limit_param, page, principal, query_int
from gateway.http import ctx_of
from gateway.operation import CURSOR, LIMIT, ApiRoute, Operation, Param
from inbox import eventlog
from schema.resources import EventPage


async def list_events(request: Request) -> Response:
    """Events with ``seq > after`` in seq order. ``next_cursor`` (or the last ``seq``
    as the next ``after``) continues; null means the log has nothing more yet."""
    who = await principal(request)
    limit = limit_param(request)
    cursor = decode_cursor(request, "events", [int])
    after = cursor[0] if cursor else query_int(request, "after", default=0)
    assert after is not None
    ctx = ctx_of(request)
    records = await eventlog.fetch_after(ctx.pool, who.account_id, after, limit + 1)
    shown = records[:limit]
    next_cursor = encode_cursor("events", [shown[-1].seq]) if len(records) > limit else None
    latest = await eventlog.latest_seq(ctx.pool, who.account_id)
    return page([r.to_json() for r in shown], next_cursor, latest_seq=latest)


routes = [
    ApiRoute("/api/v1/events", list_events, method="GET", operation=Operation(
        "The durable event log after a seq (catch-up for WebSocket clients)", {200: EventPage}, "events",
        params=(LIMIT, CURSOR, Param("after", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
                                     "Events with seq greater than this")))),
]
