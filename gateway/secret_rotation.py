"""Sealing left-over plaintext secrets at start, and ``inbox-gateway secrets rotate``.

Both run in one transaction over locked channel rows, so two gateway processes
starting at once (or a rotation racing a start) never seal a row twice or lose
an update, and a failure changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import asyncpg

from gateway.secret_box import SecretBox, SecretsUnreadable
from inbox.channels import lock_stored_secrets, store_sealed_secrets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationReport:
    channels: int  # channels looked at (deleted ones included)
    rotated: int  # re-sealed under the first key
    current: int  # already under the first key, or without secrets: left as they were
    sealed: int  # plaintext from before migration 0003, now sealed

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def line(self) -> str:
        return (f"{self.channels} channels: {self.rotated} re-encrypted under the first key, "
                f"{self.current} already current, {self.sealed} plaintext sealed")


class UnreadableChannels(Exception):
    """Some channels' secrets open under none of the keys; nothing was changed."""

    def __init__(self, channel_ids: list[int]) -> None:
        shown = ", ".join(str(i) for i in channel_ids[:10]) + (" …" if len(channel_ids) > 10 else "")
        super().__init__(
            f"the secrets of {len(channel_ids)} channel(s) ({shown}) open under none of the keys in "
            "GATEWAY_SECRET_KEY; keep the old key listed after the new one until rotation is done. Nothing was changed"
        )
        self.channel_ids = channel_ids


async def rotate_all(conn: asyncpg.Connection, box: SecretBox) -> RotationReport:
    """Re-seal every channel's secrets under the first key; idempotent (current tokens are not rewritten)."""
    rotated = current = sealed = 0
    unreadable: list[int] = []
    async with conn.transaction():
        rows = await lock_stored_secrets(conn)
        for row in rows:
            if row.plaintext:
                # A token and plaintext both set cannot come from the gateway; the token wins.
                token = row.sealed if row.sealed is not None else box.seal(row.plaintext)
                await store_sealed_secrets(conn, row.channel_id, token)
                sealed += 1
            elif row.sealed is None or box.is_current(row.sealed):
                current += 1
            else:
                try:
                    await store_sealed_secrets(conn, row.channel_id, box.reseal(row.sealed))
                except SecretsUnreadable:
                    unreadable.append(row.channel_id)
                    continue
                rotated += 1
        if unreadable:
            # Raising inside the transaction rolls every change back.
            raise UnreadableChannels(unreadable)
    return RotationReport(channels=len(rows), rotated=rotated, current=current, sealed=sealed)


async def seal_at_start(conn: asyncpg.Connection, box: SecretBox) -> int:
    """Seal plaintext left from before migration 0003, and check the key opens what is stored.

    Refuses to start (SecretsUnreadable) when stored tokens exist and the key opens
    none of them: a wrong GATEWAY_SECRET_KEY would otherwise surface later as
    every channel failing in its own confusing way.
    """
    async with conn.transaction():
        rows = await lock_stored_secrets(conn, plaintext_only=True)
        for row in rows:
            await store_sealed_secrets(conn, row.channel_id, row.sealed or box.seal(row.plaintext))
    if rows:
        log.info("sealed the plaintext secrets of %d channel(s) under GATEWAY_SECRET_KEY", len(rows))
    tokens = await conn.fetch("SELECT id, secrets_enc FROM channels WHERE secrets_enc IS NOT NULL ORDER BY id")
    bad: list[int] = []
    for r in tokens:
        try:
            box.open(r["secrets_enc"])
        except SecretsUnreadable:
            bad.append(r["id"])
    if tokens and len(bad) == len(tokens):
        raise SecretsUnreadable(
            "GATEWAY_SECRET_KEY opens none of the stored channel secrets (wrong key? during a rotation "
            "list the new key first and the old one after it)"
        )
    if bad:
        log.error("the secrets of channels %s open under none of the keys in GATEWAY_SECRET_KEY", bad)
    return len(rows)
