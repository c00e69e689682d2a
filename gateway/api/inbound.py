"""``/api/v1/inbound``: raw provider payloads as received, dead letters (``status=failed``) first of all."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

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
from gateway.operation import CURSOR, LIMIT, ApiRoute, Operation, choice, id_filter
from inbox import queries
from schema.enums import InboundStatus
from schema.resources import InboundEvent, Page


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
    ApiRoute("/api/v1/inbound", list_inbound, method="GET", operation=Operation(
        "Raw provider payloads as received, newest first (status=failed: dead letters)", {200: Page[InboundEvent]},
        "inbound", params=(LIMIT, CURSOR, choice("status", [str(s) for s in InboundStatus], "Only this outcome"),
                           id_filter("channel_id", "channel")))),
    ApiRoute("/api/v1/inbound/{id}", get_inbound, method="GET", operation=Operation(
        "One raw provider payload", {200: InboundEvent}, "inbound")),
]
