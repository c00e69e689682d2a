"""/ws across processes: concurrent writers, two gateways sharing Postgres and Redis, Redis restarts.

Process A is a real uvicorn server inside the test process (``run_server``): its
``ctx.pool`` and ``ctx.broker`` are what its webhook handlers use, so writing through
them is writing "through process A". Process B is a separate OS process
(``tests/ws/_serve_app.py``). Where delivery must come through Redis and not through
B's periodic log check, B runs with that check an hour apart.
"""

from __future__ import annotations

import asyncio

from gateway.pipeline import apply_and_publish
from gateway.redis_broker import RedisBroker
from tests.redis_server import RedisProcess
from tests.server import run_server
from tests.ws.helpers import (
    gateway_process,
    inbound_text,
    make_account,
    make_channel,
    seqs,
    wait_ready,
    write_events,
    ws_connect,
)

NO_LOG_CHECK = "3600"
OUTAGE = 10.0  # seconds Redis stays away in the outage test


async def test_four_concurrent_writers_and_clients_joining_mid_stream_get_every_event_once_in_order(
    db_url, redis_url, redis_prefix
):
    async with (
        run_server(db_url, redis_url=redis_url, gateway_redis_prefix=redis_prefix) as a,
        gateway_process(db_url, REDIS_URL=redis_url, GATEWAY_REDIS_PREFIX=redis_prefix) as b,
    ):
        pool = a.ctx.pool
        account_id, key = await make_account(pool)
        # Two writers publish through process A, two through a broker of their own (a third process).
        other = RedisBroker(redis_url, prefix=redis_prefix)
        async with ws_connect(b.ws_url, key) as early:
            await early.subscribe(["account"], after=0)
            writers = [
                asyncio.create_task(write_events(pool, account_id, 500, broker=a.ctx.broker if i < 2 else other))
                for i in range(4)
            ]
            while True:  # join once a good part of the stream is written
                n = await pool.fetchval("SELECT last_seq FROM accounts WHERE id = $1", account_id)
                if n >= 600:
                    break
                await asyncio.sleep(0.01)
            async with ws_connect(a.ws_url, key) as mid_a, ws_connect(b.ws_url, key) as mid_b:
                await mid_a.subscribe(["account"], after=n)
                await mid_b.subscribe(["account"], after=n)
                assert not all(w.done() for w in writers), "the client must join while writers still write"
                await asyncio.gather(*writers)
                got_a, got_b = await asyncio.gather(mid_a.events_until(2000), mid_b.events_until(2000))
                assert seqs(got_a) == list(range(n + 1, 2001))
                assert seqs(got_b) == list(range(n + 1, 2001))
            assert seqs(await early.events_until(2000)) == list(range(1, 2001))
        await other.close()


async def test_an_event_written_through_process_a_reaches_a_client_on_process_b(db_url, redis_url, redis_prefix):
    async with (
        run_server(db_url, redis_url=redis_url, gateway_redis_prefix=redis_prefix) as a,
        gateway_process(
            db_url, REDIS_URL=redis_url, GATEWAY_REDIS_PREFIX=redis_prefix, GATEWAY_WS_CHECK_INTERVAL=NO_LOG_CHECK
        ) as b,
    ):
        await wait_ready(b.url, 200)
        account_id, key = await make_account(a.ctx.pool)
        channel = await make_channel(a.ctx.pool, account_id)
        async with ws_connect(b.ws_url, key) as client:
            await client.subscribe(["account"])
            records = await apply_and_publish(a.ctx, channel=channel, events=[inbound_text("wamid.1", "4915100000001")])
            frames = await client.events_until(records[-1].seq)
        assert [(f["seq"], f["event"]) for f in frames] == [(r.seq, r.event) for r in records]
        assert any(f["event"] == "message.created" and f["data"]["text"] == "hallo" for f in frames)


async def test_delivery_survives_redis_stopping_and_coming_back(db_url, redis_prefix):
    """Redis away for OUTAGE seconds while events keep being written: both replicas stay in
    rotation (readyz 200 "degraded"), and clients on either one get every event once it returns."""
    redis = RedisProcess()
    redis.start()
    try:
        async with (
            run_server(db_url, redis_url=redis.url, gateway_redis_prefix=redis_prefix) as a,
            gateway_process(
                db_url, REDIS_URL=redis.url, GATEWAY_REDIS_PREFIX=redis_prefix, GATEWAY_WS_CHECK_INTERVAL=NO_LOG_CHECK
            ) as b,
        ):
            await wait_ready(b.url, 200, status="ready")
            pool, broker = a.ctx.pool, a.ctx.broker
            account_id, key = await make_account(pool)
            async with ws_connect(b.ws_url, key) as on_b, ws_connect(a.ws_url, key) as on_a:
                await on_b.subscribe(["account"])
                await on_a.subscribe(["account"])
                await write_events(pool, account_id, 50, broker=broker)
                assert seqs(await on_b.events_until(50)) == list(range(1, 51))

                redis.stop()
                body = await wait_ready(b.url, 200, status="degraded")
                assert body["checks"] == {"database": "ok", "broker": "unavailable"}
                await wait_ready(a.url, 200, status="degraded")
                # Written while Redis is away, for the whole outage: the service stays up and commits them.
                loop = asyncio.get_running_loop()
                until = loop.time() + OUTAGE
                written = 50
                while loop.time() < until:
                    written += len(await write_events(pool, account_id, 10, broker=broker))
                    await asyncio.sleep(0.1)  # a steady load, not a flood: the clients read only at the end
                async with a.client() as http:
                    assert (await http.get("/healthz")).status_code == 200

                redis.start()
                await wait_ready(b.url, 200, status="ready")
                await wait_ready(a.url, 200, status="ready")
                written += len(await write_events(pool, account_id, 50, broker=broker))
                assert seqs(await on_b.events_until(written, within=60)) == list(range(51, written + 1))
                assert seqs(await on_a.events_until(written, within=60)) == list(range(1, written + 1))
    finally:
        redis.stop()
