"""Accounts and API keys. Keys are shown once and stored as sha256 hashes only."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

from schema.enums import ApiKeyRole

KEY_PREFIX = "igw_"


@dataclass(frozen=True)
class Principal:
    account_id: int
    key_id: int
    role: ApiKeyRole


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    conn: asyncpg.Connection | asyncpg.Pool, account_id: int, role: ApiKeyRole = ApiKeyRole.ADMIN, name: str = ""
) -> str:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_keys (account_id, name, role, prefix, key_hash) VALUES ($1, $2, $3, $4, $5)",
        account_id,
        name,
        str(role),
        key[:10],
        hash_key(key),
    )
    return key


async def create_account(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> tuple[int, str]:
    """Create an account with one admin key; return ``(account_id, api_key)``."""
    account_id: int = await conn.fetchval("INSERT INTO accounts (name) VALUES ($1) RETURNING id", name)
    key = await create_api_key(conn, account_id, ApiKeyRole.ADMIN, name="initial admin key")
    return account_id, key


async def authenticate(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> Principal | None:
    if not key.startswith(KEY_PREFIX):
        return None
    row = await conn.fetchrow(
        "SELECT id, account_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        hash_key(key),
    )
    if row is None:
        return None
    return Principal(row["account_id"], row["id"], ApiKeyRole(row["role"]))
