"""``/api/v1/conversations``: the inbox list, one conversation, its timeline, triage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

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
from inbox import queries
from inbox.conversation_changes import ConversationChange, change_conversation
from inbox.errors import Conflict, NotFound
from inbox.views import conversation_json
from schema.api import ConversationPatch
from schema.enums import ConversationStatus
from schema.resources import Conversation, Page, TimelineEntry

_STATUSES = [str(s) for s in ConversationStatus]


def _statuses(request: Request) -> list[str] | None:
    """``?status=open`` or ``?status=open,pending``."""
    raw = query_str(request, "status")
    if raw is None:
        return None
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    bad = [s for s in wanted if s not in _STATUSES]
    if bad or not wanted:
        raise ApiError(400, "invalid_parameter", f"status must be one or more of: {', '.join(_STATUSES)}")
    return wanted


async def list_conversations(request: Request) -> Response:
    who = await principal(request)
    limit = limit_param(request)
    flt = queries.ConversationFilter(
        statuses=_statuses(request),
        channel_id=query_int(request, "channel_id", minimum=1),
        assignee=query_str(request, "assignee"),
        q=query_str(request, "q"),
    )
    cursor = decode_cursor(request, "conversations", [datetime, int])
    rows = await queries.list_conversations(
        ctx_of(request).pool, who.account_id, flt, after=(cursor[0], cursor[1]) if cursor else None, limit=limit
    )
    next_cursor = encode_cursor("conversations", rows[limit - 1][0]) if len(rows) > limit else None
    return page([item for _, item in rows[:limit]], next_cursor)


async def get_conversation(request: Request) -> Response:
    who = await principal(request)
    try:
        data = await conversation_json(ctx_of(request).pool, who.account_id, path_id(request, "conversation"))
    except NotFound:
        raise not_found("conversation") from None
    return json_response(data)


async def _change(request: Request, change: ConversationChange) -> Response:
    who = await principal(request)
    conversation_id = path_id(request, "conversation")
    ctx = ctx_of(request)
    async with connection(ctx.pool) as conn:
        try:
            data, records = await change_conversation(conn, who.account_id, conversation_id, change)
        except NotFound:
            raise not_found("conversation") from None
        except Conflict as exc:
            raise ApiError(409, "conflict", str(exc)) from None
    await publish(ctx, records)
    return json_response(data)


async def patch_conversation(request: Request) -> Response:
    await principal(request)
    path_id(request, "conversation")
    body = await body_model(request, ConversationPatch)
    return await _change(
        request,
        ConversationChange(
            status=body.status,
            assignee_set="assignee" in body.model_fields_set,
            assignee=body.assignee,
            mark_read=body.unread_count == 0,
        ),
    )


async def mark_read(request: Request) -> Response:
    """``POST /api/v1/conversations/{id}/read``: unread back to 0 (same as PATCH ``{"unread_count": 0}``)."""
    return await _change(request, ConversationChange(mark_read=True))


async def timeline(request: Request) -> Response:
    who = await principal(request)
    conversation_id = path_id(request, "conversation")
    limit = limit_param(request)
    descending = query_choice(request, "order", ["asc", "desc"]) == "desc"
    cursor = decode_cursor(request, "timeline", [datetime, str, int])
    ctx = ctx_of(request)
    async with connection(ctx.pool) as conn:
        exists = await conn.fetchval(
            "SELECT 1 FROM conversations WHERE id = $1 AND account_id = $2", conversation_id, who.account_id
        )
        if not exists:
            raise not_found("conversation")
        entries = await queries.timeline_entries(
            conn, who.account_id, conversation_id,
            after=(cursor[0], cursor[1], cursor[2]) if cursor else None, limit=limit, descending=descending,
        )
        shown = entries[:limit]
        messages = await queries.messages_by_id(conn, who.account_id, [e.id for e in shown if e.kind == "message"])
        calls = await queries.calls_by_id(conn, who.account_id, [e.id for e in shown if e.kind == "call"])
    items: list[dict[str, Any]] = [
        {"kind": e.kind, "item": messages[e.id] if e.kind == "message" else calls[e.id]} for e in shown
    ]
    next_cursor = None
    if len(entries) > limit:
        last = shown[-1]
        next_cursor = encode_cursor("timeline", [last.at, last.kind, last.id])
    return page(items, next_cursor)


_TAG = "conversations"
_NO_CHANGE = {409: "The change conflicts with the conversation's state"}
routes = [
    ApiRoute("/api/v1/conversations", list_conversations, method="GET", operation=Operation(
        "The inbox: conversations, most recent activity first", {200: Page[Conversation]}, _TAG, params=(
            LIMIT, CURSOR,
            text_filter("status", "One status or several, comma-separated: open, pending, snoozed, resolved"),
            id_filter("channel_id", "channel"),
            text_filter("assignee", "Only those assigned to this agent"),
            text_filter("q", "Search contact names, identities and message text"),
        ))),
    ApiRoute("/api/v1/conversations/{id}", get_conversation, method="GET", operation=Operation(
        "One conversation", {200: Conversation}, _TAG)),
    ApiRoute("/api/v1/conversations/{id}", patch_conversation, method="PATCH", operation=Operation(
        "Triage: status, assignee, mark as read", {200: Conversation}, _TAG, body=ConversationPatch,
        errors=_NO_CHANGE)),
    ApiRoute("/api/v1/conversations/{id}/read", mark_read, method="POST", operation=Operation(
        "Mark as read (unread_count back to 0)", {200: Conversation}, _TAG, errors=_NO_CHANGE)),
    ApiRoute("/api/v1/conversations/{id}/timeline", timeline, method="GET", operation=Operation(
        "Messages and calls of a conversation, oldest first (order=desc: newest first)", {200: Page[TimelineEntry]},
        _TAG, params=(LIMIT, CURSOR, choice("order", ["asc", "desc"], "asc (default) or desc")))),
]
