"""Calls: ``GET /api/v1/calls``, ``GET /api/v1/calls/{id}`` (with its events), ``POST /api/v1/calls``.

Click-to-call may reach a process that does not hold the channel's AMI
connection, so it does not talk to Asterisk: it stores the call (outbound,
ringing) and a click-to-call request, and answers 202. The process holding the
lease places the Originate exactly once (``gateway.asterisk_runtime``); the AMI
events that follow update this same call, and a refusal or a lost connection
ends it as ``failed`` with the reason in its events.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from channels.asterisk.config import AsteriskConfig, normalize_number
from gateway.api._common import (
    body_model,
    connection,
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
    query_str,
)
from gateway.http import ApiError, ctx_of
from gateway.operation import CURSOR, LIMIT, ApiRoute, Operation, choice, id_filter, text_filter
from gateway.pipeline import publish
from inbox import eventlog
from inbox.calls import call_events_json, call_json, list_calls
from inbox.channels import get_channel
from inbox.errors import NotFound
from inbox.originates import request_click_to_call
from schema.enums import CallDirection, CallStatus, ChannelType
from schema.resources import Call, CallWithEvents, Page

_NUMBER = re.compile(r"\+?\d{3,20}")


class CallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: int = Field(gt=0, le=2**63 - 1)  # a bigint id: beyond it is a 422, not an overflow
    agent: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")
    to_number: str = Field(min_length=3, max_length=40)


async def get_calls(request: Request) -> Response:
    who = await principal(request)
    limit = limit_param(request)
    cursor = decode_cursor(request, "calls", [datetime, int])
    ctx = ctx_of(request)
    async with connection(ctx.pool) as conn:
        rows = await list_calls(
            conn,
            who.account_id,
            channel_id=query_int(request, "channel_id", minimum=1),
            conversation_id=query_int(request, "conversation_id", minimum=1),
            status=query_choice(request, "status", [s.value for s in CallStatus]),
            direction=query_choice(request, "direction", [d.value for d in CallDirection]),
            agent=query_str(request, "agent", max_length=40),
            after=(cursor[0], cursor[1]) if cursor else None,
            limit=limit,
        )
    shown = rows[:limit]
    next_cursor = encode_cursor("calls", list(shown[-1][0])) if len(rows) > limit else None
    return page([item for _, item in shown], next_cursor)


async def get_call(request: Request) -> Response:
    who = await principal(request)
    call_id = path_id(request, "call")
    ctx = ctx_of(request)
    async with connection(ctx.pool) as conn:
        try:
            data = await call_json(conn, who.account_id, call_id)
        except NotFound:
            raise not_found("call") from None
        data["events"] = await call_events_json(conn, who.account_id, call_id)
    return json_response(data)


async def create_call(request: Request) -> Response:
    """Click-to-call: 202 with the call (``outbound``, ``ringing``).

    503 when the channel's AMI connection is not up (as its holder last recorded): better an
    answer at once than a call that never rings. A request nobody places within a minute
    ends as ``failed``.
    """
    who = await principal(request)
    body = await body_model(request, CallCreate)
    ctx = ctx_of(request)
    to_number = normalize_number(body.to_number)
    if not to_number or not _NUMBER.fullmatch(to_number):
        raise ApiError(422, "validation_error", "to_number: must be a phone number such as +15551234567")
    async with connection(ctx.pool) as conn:
        channel = await get_channel(conn, who.account_id, body.channel_id)
        if channel is None:
            raise not_found("channel")
        if channel.type != ChannelType.ASTERISK:
            raise ApiError(422, "validation_error", "channel_id: click-to-call needs an asterisk channel")
        try:
            config = AsteriskConfig.model_validate(channel.config)
        except ValidationError:
            raise ApiError(409, "channel_misconfigured", "this asterisk channel's config is not usable") from None
        device = config.originate_channel.format(agent=body.agent)
        if config.agents().agent_of(device) is None:
            raise ApiError(422, "validation_error", f"agent: {device} does not match the channel's agent_pattern")
        ami = (channel.state or {}).get("ami") or {}
        if ami.get("status") != "connected":
            detail = f"{ami['status']}: {ami.get('error') or 'no detail'}" if ami.get("status") else "not up yet"
            raise ApiError(503, "asterisk_unavailable", f"the AMI connection is {detail}; retry later")
        async with conn.transaction():
            call_id, pending = await request_click_to_call(
                conn, channel=channel, agent=body.agent, to_number=to_number, at=datetime.now(UTC)
            )
            records = await eventlog.append(conn, who.account_id, pending)
        data = await call_json(conn, who.account_id, call_id)
    await publish(ctx, records)
    return json_response(data, status=202)


_TAG = "calls"
routes = [
    ApiRoute("/api/v1/calls", get_calls, method="GET", operation=Operation(
        "Calls, newest first", {200: Page[Call]}, _TAG, params=(
            LIMIT, CURSOR, id_filter("channel_id", "channel"), id_filter("conversation_id", "conversation"),
            choice("status", [s.value for s in CallStatus], "Only calls in this state"),
            choice("direction", [d.value for d in CallDirection], "Only calls in this direction"),
            text_filter("agent", "Only calls of this agent", max_length=40),
        ))),
    ApiRoute("/api/v1/calls", create_call, method="POST", operation=Operation(
        "Click-to-call: ring the agent, then the number (202 with the ringing call)", {202: Call}, _TAG,
        body=CallCreate, errors={404: "No such channel", 409: "The asterisk channel's config is not usable",
                                 503: "The channel's AMI connection is not up"})),
    ApiRoute("/api/v1/calls/{id}", get_call, method="GET", operation=Operation(
        "One call with its events", {200: CallWithEvents}, _TAG)),
]
