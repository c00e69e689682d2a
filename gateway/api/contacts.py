"""``/api/v1/contacts``: people (and group chats) with their identities on each channel type."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api._common import (
    connection,
    decode_cursor,
    encode_cursor,
    json_response,
    limit_param,
    not_found,
    page,
    path_id,
    principal,
    query_str,
)
from gateway.http import ctx_of
from gateway.operation import CURSOR, LIMIT, ApiRoute, Operation, text_filter
from inbox import queries
from inbox.errors import NotFound
from inbox.views import contact_json
from schema.resources import Contact, Page


async def list_contacts(request: Request) -> Response:
    who = await principal(request)
    limit = limit_param(request)
    cursor = decode_cursor(request, "contacts", [int])
    q = query_str(request, "q")
    async with connection(ctx_of(request).pool) as conn:
        ids = await queries.list_contact_ids(conn, who.account_id, q=q, after=cursor[0] if cursor else None,
                                            limit=limit)
        items = [await contact_json(conn, who.account_id, cid) for cid in ids[:limit]]
    next_cursor = encode_cursor("contacts", [ids[limit - 1]]) if len(ids) > limit else None
    return page(items, next_cursor)


async def get_contact(request: Request) -> Response:
    who = await principal(request)
    try:
        data = await contact_json(ctx_of(request).pool, who.account_id, path_id(request, "contact"))
    except NotFound:
        raise not_found("contact") from None
    return json_response(data)


routes = [
    ApiRoute("/api/v1/contacts", list_contacts, method="GET", operation=Operation(
        "Contacts with their identities", {200: Page[Contact]}, "contacts",
        params=(LIMIT, CURSOR, text_filter("q", "Search names, phones and identities")))),
    ApiRoute("/api/v1/contacts/{id}", get_contact, method="GET", operation=Operation(
        "One contact", {200: Contact}, "contacts")),
]
