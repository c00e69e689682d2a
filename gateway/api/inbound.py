"""``/api/v1/inbound``: raw provider payloads as received, dead letters (``status=failed``) first of all."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api._common import (
    decode_cursor,
    encode_cursor,
    json_response,
    limit_param,
    not_found,
    page,
    path_id,
    principal,
    query_choice,
    query_int,
)
from gateway.http import ctx_of
from inbox import queries
from schema.enums import InboundStatus


async def list_inbound(request: Request) -> Response:
    who = await principal(request)
    limit = limit_param(request)
    status = query_choice(request, "status", [str(s) for s in InboundStatus])
    channel_id = query_int(request, "channel_id", minimum=1)
    cursor = decode_cursor(request, "inbound", [int])
    rows = await queries.list_inbound(
        ctx_of(request).pool, who.account_id, status=status, channel_id=channel_id,
        before=cursor[0] if cursor else None, limit=limit,
    )
    next_cursor = encode_cursor("inbound", [rows[limit - 1]["id"]]) if len(rows) > limit else None
    return page(rows[:limit], next_cursor)


async def get_inbound(request: Request) -> Response:
    who = await principal(request)
    row = await queries.get_inbound(ctx_of(request).pool, who.account_id, path_id(request, "inbound event"))
    if row is None:
        raise not_found("inbound event")
    return json_response(row)


routes = [
    Route("/api/v1/inbound", list_inbound, methods=["GET"]),
    Route("/api/v1/inbound/{id}", get_inbound, methods=["GET"]),
]
