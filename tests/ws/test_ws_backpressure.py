"""A client that stops reading is closed with 4008 and the gateway's memory stays bounded."""

from __future__ import annotations

import asyncio

import httpx
import psutil

from gateway.redis_broker import RedisBroker
from inbox.db import create_pool
from tests.ws.helpers import StuckClient, gateway_process, make_account, seqs, wait_ready, write_events, ws_connect

MiB = 1024 * 1024
EVENTS = 5_000
EVENT_BYTES = 8 * 1024  # ~40 MiB of frames in all
# Larger than one publish (per_tx events) so a client that keeps up is never dropped.
QUEUE_SIZE = 500
PER_TX = 20
# Allowed growth of the gateway's RSS over its idle baseline while the flood is
# pushed at a socket that does not read. Without a bounded queue that socket
# alone would hold most of the flood (~37 MiB).
RSS_ALLOWANCE = 24 * MiB


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


async def _slow_consumer_closes(url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("gateway_ws_slow_consumer_closes_total "):
            return int(float(line.split()[1]))
    return 0


async def test_a_client_that_never_reads_is_closed_with_4008_while_rss_stays_bounded(
    db_url, redis_url, redis_prefix
):
    async with gateway_process(
        db_url, REDIS_URL=redis_url, GATEWAY_REDIS_PREFIX=redis_prefix, GATEWAY_WS_QUEUE_SIZE=str(QUEUE_SIZE)
    ) as gw:
        await wait_ready(gw.url, 200)
        writer = RedisBroker(redis_url, prefix=redis_prefix)
        pool = await create_pool(db_url)
        stuck: StuckClient | None = None
        try:
            account_id, key = await make_account(pool)
            stuck = await StuckClient.connect(gw.port, key)
            await stuck.send({"type": "subscribe", "topics": ["account"]})
            async with ws_connect(gw.ws_url, key, max_size=None) as healthy:
                await healthy.subscribe(["account"])
                baseline = _rss(gw.pid)
                peak = baseline
                done = asyncio.Event()

                async def sample() -> None:
                    nonlocal peak
                    while not done.is_set():
                        peak = max(peak, _rss(gw.pid))
                        await asyncio.sleep(0.05)

                async def read_stuck_once_dropped() -> tuple[int, int | None]:
                    # Read only once the gateway has given up on this socket.
                    while True:  # another process's counter: nothing to wait on but polling
                        if await _slow_consumer_closes(gw.url) >= 1:
                            break
                        await asyncio.sleep(0.1)
                    assert stuck is not None
                    return await stuck.read_to_close()

                sampler = asyncio.create_task(sample())
                stuck_result = asyncio.create_task(read_stuck_once_dropped())
                try:
                    payload = {"blob": "x" * EVENT_BYTES}
                    await write_events(pool, account_id, EVENTS, broker=writer, per_tx=PER_TX, data=payload)
                    frames = await healthy.events_until(EVENTS, within=120)
                finally:
                    done.set()
                    await sampler
                assert seqs(frames) == list(range(1, EVENTS + 1))
                received, code = await asyncio.wait_for(stuck_result, 60)
                assert code == 4008
                assert received < EVENTS / 2  # it really stopped reading, and was cut off
                growth = peak - baseline
                print(f"RSS baseline {baseline / MiB:.1f} MiB, peak growth {growth / MiB:.1f} MiB")
                assert growth < RSS_ALLOWANCE, f"RSS grew {growth / MiB:.1f} MiB"
                # The gateway still serves everyone else.
                await healthy.send({"type": "ping"})
                assert await healthy.recv() == {"type": "pong"}
        finally:
            if stuck is not None:
                stuck.close()
            await pool.close()
            await writer.close()
