"""``/api/v1/keys``: API keys of the account (admin only). A new key is shown once."""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from gateway.api._common import (
    admin,
    body_model,
    connection,
    decode_cursor,
    encode_cursor,
    json_response,
    limit_param,
    not_found,
    page,
    path_id,
)
from gateway.http import ApiError, ctx_of
from gateway.key_revocation import publish_revocation
from gateway.operation import CURSOR, LIMIT, ApiRoute, Operation
from inbox.accounts import create_api_key, hash_key
from inbox.jsonfmt import iso
from schema.api import ApiKeyCreate
from schema.resources import ApiKey, ApiKeyCreated, Page

_COLUMNS = "id, name, role, prefix, created_at, revoked_at"


def key_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "name": r["name"],
        "role": r["role"],
        "prefix": r["prefix"],
        "created_at": iso(r["created_at"]),
        "revoked_at": iso(r["revoked_at"]),
    }


async def list_keys(request: Request) -> Response:
    who = await admin(request)
    limit = limit_param(request)
    cursor = decode_cursor(request, "keys", [int])
    rows = await ctx_of(request).pool.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        who.account_id, cursor[0] if cursor else 0, limit + 1,
    )
    next_cursor = encode_cursor("keys", [rows[limit - 1]["id"]]) if len(rows) > limit else None
    return page([key_json(r) for r in rows[:limit]], next_cursor)


async def create_key(request: Request) -> Response:
    who = await admin(request)
    body = await body_model(request, ApiKeyCreate)
    async with connection(ctx_of(request).pool) as conn:
        key = await create_api_key(conn, who.account_id, body.role, name=body.name)
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = $1", hash_key(key))
    assert row is not None
    return json_response({**key_json(row), "key": key}, 201)


async def revoke_key(request: Request) -> Response:
    who = await admin(request)
    key_id = path_id(request, "API key")
    async with connection(ctx_of(request).pool) as conn, conn.transaction():
        # Serialise revocations of one account so two admins cannot revoke each other's last key at once.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"api-keys:{who.account_id}")
        row = await conn.fetchrow(
            "SELECT role FROM api_keys WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL", key_id, who.account_id
        )
        if row is None:
            raise not_found("API key")
        admins = await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE account_id = $1 AND role = 'admin' AND revoked_at IS NULL",
            who.account_id,
        )
        if row["role"] == "admin" and admins <= 1:
            raise ApiError(409, "last_admin_key", "this is the account's last admin key; create another first")
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
    # Before the 204: once the client hears the key is revoked, its sockets are gone (gateway.key_revocation).
    await publish_revocation(ctx_of(request), [key_id])
    return Response(status_code=204)


_TAG = "keys"
routes = [
    ApiRoute("/api/v1/keys", list_keys, method="GET", operation=Operation(
        "The account's API keys (admin)", {200: Page[ApiKey]}, _TAG, auth="admin", params=(LIMIT, CURSOR))),
    ApiRoute("/api/v1/keys", create_key, method="POST", operation=Operation(
        "Create an API key (admin); the key is in this answer only", {201: ApiKeyCreated}, _TAG, auth="admin",
        body=ApiKeyCreate)),
    ApiRoute("/api/v1/keys/{id}", revoke_key, method="DELETE", operation=Operation(
        "Revoke an API key (admin); its WebSockets are closed", {204: None}, _TAG, auth="admin",
        errors={409: "The account's last admin key cannot be revoked"})),
]
