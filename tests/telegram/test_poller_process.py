"""Real gateway processes polling the fake Bot API: SIGKILL mid-stream, and two nodes sharing one bot."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import log_leaks
from tests.cli_helpers import REPO, cli_command, cli_env
from tests.fakes.bot_api import FakeBotApi, wait_until
from tests.redis_server import free_port
from tests.server import run_server
from tests.telegram.helpers import TOKEN, count, make_telegram_channel, text_update

N_UPDATES = 60


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi()
    api.add_bot(TOKEN)
    async with api.running():
        yield api


@contextlib.asynccontextmanager
async def gateway_process(db_url: str, fake: FakeBotApi, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``inbox-gateway serve`` as a user runs it, its Telegram API pointed at the fake."""
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *cli_command("serve"),
            env=cli_env(DATABASE_URL=db_url, TELEGRAM_API_BASE=fake.url, GATEWAY_PORT=str(free_port()),
                        GATEWAY_LEASE_INTERVAL="0.2", GATEWAY_LOG_LEVEL=log_leaks.SERVER_LOG_LEVEL),
            cwd=REPO, stdout=out, stderr=out,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _stored(pool) -> int:
    return await count(pool, "SELECT count(*) FROM inbound_events")


async def test_a_poller_killed_mid_stream_and_restarted_stores_every_update_exactly_once(db_url, pool, fake):
    bot = fake.bots[TOKEN]
    bot.batch_limit = 3
    bot.poll_delay = 0.05  # a stream slow enough to be cut in the middle
    channel = await make_telegram_channel(pool, mode="polling")
    ids = [bot.push(text_update(900 + n, 10_000 + n % 7, 500 + n)) for n in range(N_UPDATES)]
    log = log_leaks.server_log("telegram-poller")

    async with gateway_process(db_url, fake, log) as first:
        await wait_until(lambda: _at_least(pool, 10), limit=60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert bot.pending, "the stream ended before the kill: nothing was tested"
    stored_at_kill = await _stored(pool)
    assert stored_at_kill < N_UPDATES

    polls_before_restart = len(bot.calls_to("getUpdates"))
    async with gateway_process(db_url, fake, log) as second:
        await wait_until(lambda: _at_least(pool, N_UPDATES), limit=60)
        await wait_until(lambda: not bot.pending, limit=30)
        second.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await second.wait() == 0, log.read_text()[-3000:]

    keys = [r["dedup_key"] for r in await pool.fetch("SELECT dedup_key FROM inbound_events ORDER BY id")]
    assert sorted(keys) == sorted(str(i) for i in ids)  # each update once, none lost
    messages = await pool.fetch("SELECT external_id FROM messages WHERE channel_id = $1", channel.id)
    assert sorted(m["external_id"] for m in messages) == sorted(
        f"{10_000 + n % 7}:{500 + n}" for n in range(N_UPDATES))
    # The restarted process resumed from the offset the first one had stored.
    resumed_at = bot.calls_to("getUpdates")[polls_before_restart].params.get("offset")
    assert resumed_at is not None and resumed_at > ids[0]
    state = await pool.fetchval("SELECT state FROM channels WHERE id = $1", channel.id)
    assert state["offset"] == ids[-1] + 1


async def _at_least(pool, n: int) -> bool:
    return await _stored(pool) >= n


async def test_two_gateways_poll_one_bot_from_one_node_and_the_other_takes_over(db_url, pool, fake):
    bot = fake.bots[TOKEN]
    channel = await make_telegram_channel(pool, mode="polling")
    node_a = run_server(db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1)
    a = await node_a.__aenter__()
    a_running = True
    try:
        await wait_until(lambda: bot.calls_to("getUpdates"))
        async with run_server(db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1) as b:
            for n in range(10):
                bot.push(text_update(1000 + n, 20_000, n + 1))
            await wait_until(lambda: _at_least(pool, 10))
            sup_a, sup_b = a.ctx.extras["channel_supervisor"], b.ctx.extras["channel_supervisor"]
            assert (channel.id in sup_a.running, channel.id in sup_b.running) == (True, False)
            # Never two long polls of the same bot at once while both nodes live.
            assert bot.conflicts == 0

            a_running = False
            await node_a.__aexit__(None, None, None)
            await wait_until(lambda: channel.id in sup_b.running)
            for n in range(10, 20):
                bot.push(text_update(1000 + n, 20_000, n + 1))
            await wait_until(lambda: _at_least(pool, 20))
            await wait_until(lambda: not bot.pending)
    finally:
        if a_running:
            await node_a.__aexit__(None, None, None)
    assert await count(pool, "SELECT count(*) FROM messages WHERE channel_id = $1", channel.id) == 20
