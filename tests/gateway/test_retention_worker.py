"""The periodic retention round inside serve: one process at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.broker import InProcessBroker
from gateway.config import load_settings
from gateway.context import AppContext
from gateway.retention_worker import RETENTION_LOCK_ID, run_once


def _ctx(db_url, pool, tmp_path) -> AppContext:
    settings = load_settings(database_url=db_url, gateway_data_dir=tmp_path)
    return AppContext(settings=settings, pool=pool, broker=InProcessBroker())


async def _old_dead_letter(pool) -> None:
    account_id = await pool.fetchval("INSERT INTO accounts (name) VALUES ('a') RETURNING id")
    channel_id = await pool.fetchval(
        "INSERT INTO channels (account_id, type, name) VALUES ($1, 'telegram', 'bot') RETURNING id", account_id
    )
    await pool.execute(
        "INSERT INTO inbound_events (account_id, channel_id, status, payload, received_at) "
        "VALUES ($1, $2, 'failed', '{}', $3)",
        account_id, channel_id, datetime.now(UTC) - timedelta(days=365),
    )


async def test_a_round_applies_the_policies(db_url, pool, tmp_path):
    await _old_dead_letter(pool)

    assert await run_once(_ctx(db_url, pool, tmp_path)) is True

    assert await pool.fetchval("SELECT count(*) FROM inbound_events") == 0


async def test_a_round_is_skipped_while_another_process_runs_one(db_url, pool, tmp_path):
    await _old_dead_letter(pool)
    async with pool.acquire() as other:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_ID)
        try:
            assert await run_once(_ctx(db_url, pool, tmp_path)) is False
        finally:
            await other.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_ID)

    assert await pool.fetchval("SELECT count(*) FROM inbound_events") == 1
    assert await run_once(_ctx(db_url, pool, tmp_path)) is True
