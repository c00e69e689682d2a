"""Channels: the provider connections of an account (config, write-only secrets, state).

Secrets are stored and returned sealed (an opaque token, ``secrets_enc``): this
package never sees them in clear; the gateway seals and opens them
(``gateway/secret_box.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from inbox.errors import Conflict
from schema.enums import ChannelType

_COLUMNS = "id, account_id, type, name, config, secrets_enc, provider_key, state, created_at, updated_at"


@dataclass(frozen=True)
class ChannelRow:
    id: int
    account_id: int
    type: ChannelType
    name: str
    config: dict[str, Any]
    sealed_secrets: str | None  # None: no secrets
    provider_key: str | None
    state: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> ChannelRow:
        return cls(
            r["id"], r["account_id"], ChannelType(r["type"]), r["name"], r["config"], r["secrets_enc"],
            r["provider_key"], r["state"], r["created_at"], r["updated_at"],
        )


async def get_channel_any_account(
    conn: asyncpg.Connection | asyncpg.Pool, channel_id: int
) -> ChannelRow | None:
    """For provider webhooks, which carry no API key: the channel id in the URL decides the account."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM channels WHERE id = $1 AND deleted_at IS NULL", channel_id)
    return ChannelRow.from_record(row) if row else None


async def get_channel(conn: asyncpg.Connection | asyncpg.Pool, account_id: int, channel_id: int) -> ChannelRow | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM channels WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
        channel_id,
        account_id,
    )
    return ChannelRow.from_record(row) if row else None


async def find_by_provider_key(
    conn: asyncpg.Connection | asyncpg.Pool, account_id: int, type_: ChannelType, provider_key: str
) -> ChannelRow | None:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM channels
            WHERE account_id = $1 AND type = $2 AND provider_key = $3 AND deleted_at IS NULL""",
        account_id,
        str(type_),
        provider_key,
    )
    return ChannelRow.from_record(row) if row else None


async def list_active_channels(
    conn: asyncpg.Connection | asyncpg.Pool, types: list[ChannelType] | None = None
) -> list[ChannelRow]:
    """All live channels of every account (for the connection supervisor)."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM channels
            WHERE deleted_at IS NULL AND ($1::text[] IS NULL OR type = ANY($1::text[])) ORDER BY id""",
        [str(t) for t in types] if types is not None else None,
    )
    return [ChannelRow.from_record(r) for r in rows]


async def update_state(conn: asyncpg.Connection | asyncpg.Pool, channel_id: int, patch: dict[str, Any]) -> None:
    """Merge ``patch`` into the adapter state (e.g. a polling offset) without touching updated_at."""
    await conn.execute("UPDATE channels SET state = state || $2::jsonb WHERE id = $1", channel_id, patch)


# --- CRUD for the REST API ---------------------------------------------------------------------
# The provider identity (type, provider_key) is unique among live channels of all
# accounts (partial unique index channels_provider_identity): a second claim is a Conflict.


def _provider_conflict(type_: ChannelType, provider_key: str | None) -> Conflict:
    return Conflict(f"this {type_} identity ({provider_key}) is already connected to another channel")


async def create_channel(
    conn: asyncpg.Connection | asyncpg.Pool,
    account_id: int,
    *,
    type_: ChannelType,
    name: str,
    config: dict[str, Any],
    sealed_secrets: str | None,
    provider_key: str | None,
) -> ChannelRow:
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",
            account_id, str(type_), name, config, sealed_secrets, provider_key,
        )
    except asyncpg.UniqueViolationError as exc:
        raise _provider_conflict(type_, provider_key) from exc
    assert row is not None
    return ChannelRow.from_record(row)


async def list_channels(
    conn: asyncpg.Connection | asyncpg.Pool, account_id: int, *, after_id: int = 0, limit: int = 50
) -> list[ChannelRow]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM channels
            WHERE account_id = $1 AND deleted_at IS NULL AND id > $2 ORDER BY id LIMIT $3""",
        account_id, after_id, limit,
    )
    return [ChannelRow.from_record(r) for r in rows]


async def update_channel(
    conn: asyncpg.Connection | asyncpg.Pool,
    account_id: int,
    channel_id: int,
    *,
    name: str,
    config: dict[str, Any],
    sealed_secrets: str | None,
    provider_key: str | None,
) -> ChannelRow | None:
    """Replace name, config, secrets and provider identity; None if there is no such live channel."""
    current = await get_channel(conn, account_id, channel_id)
    if current is None:
        return None
    try:
        row = await conn.fetchrow(
            f"""UPDATE channels SET name = $3, config = $4, secrets_enc = $5, provider_key = $6, updated_at = now()
                WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL RETURNING {_COLUMNS}""",
            channel_id, account_id, name, config, sealed_secrets, provider_key,
        )
    except asyncpg.UniqueViolationError as exc:
        raise _provider_conflict(current.type, provider_key) from exc
    return ChannelRow.from_record(row) if row else None


async def delete_channel(conn: asyncpg.Connection | asyncpg.Pool, account_id: int, channel_id: int) -> bool:
    """Soft delete: history keeps pointing at the channel, its provider identity is freed."""
    deleted = await conn.fetchval(
        """UPDATE channels SET deleted_at = now(), updated_at = now()
           WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL RETURNING id""",
        channel_id, account_id,
    )
    return deleted is not None


# --- Sealing and key rotation (every channel, deleted ones too: a dump holds them all) ---------


@dataclass(frozen=True)
class StoredSecrets:
    channel_id: int
    sealed: str | None
    plaintext: dict[str, Any]  # left from before migration 0003; {} once sealed


async def lock_stored_secrets(conn: asyncpg.Connection, *, plaintext_only: bool = False) -> list[StoredSecrets]:
    """Every channel's stored secrets, rows locked until the caller's transaction ends."""
    rows = await conn.fetch(
        """SELECT id, secrets_enc, secrets_plaintext FROM channels
           WHERE NOT $1 OR secrets_plaintext <> '{}'::jsonb ORDER BY id FOR UPDATE""",
        plaintext_only,
    )
    return [StoredSecrets(r["id"], r["secrets_enc"], r["secrets_plaintext"]) for r in rows]


async def store_sealed_secrets(conn: asyncpg.Connection, channel_id: int, sealed: str | None) -> None:
    """Replace the token and empty the legacy plaintext column (updated_at untouched: no API-visible change)."""
    await conn.execute(
        "UPDATE channels SET secrets_enc = $2, secrets_plaintext = '{}'::jsonb WHERE id = $1", channel_id, sealed
    )
