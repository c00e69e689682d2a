"""Raw baselines measured in the same run: what PostgreSQL and ``websockets`` alone manage here."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from typing import Any

import asyncpg
from websockets.asyncio.client import connect

from bench.ingest.gateway_proc import REPO_ROOT
from bench.ingest.stats import CpuMeter, percentile
from bench.ingest.webhooks import WebhookMaker

SCRATCH_TABLE = """
CREATE TABLE bench_raw_ingest (
    id          bigserial PRIMARY KEY,
    dedup_key   text NOT NULL UNIQUE,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)"""


async def raw_asyncpg(dsn: str, *, concurrency: int, seconds: float, maker: WebhookMaker) -> dict[str, Any]:
    """One transaction per webhook body (INSERT into a scratch table shaped like ``inbound_events``),
    ``concurrency`` workers on a pool of as many connections."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    try:
        await pool.execute(SCRATCH_TABLE)
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                hook = maker.next()
                start = time.monotonic_ns()
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        "INSERT INTO bench_raw_ingest (dedup_key, payload) VALUES ($1, $2::jsonb)",
                        hashlib.sha256(hook.body).hexdigest(), hook.body.decode(),
                    )
                latencies.append((time.monotonic_ns() - start) / 1e6)

        begin = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - begin
        await pool.execute("DROP TABLE bench_raw_ingest")
    finally:
        await pool.close()
    return {
        "transactions": len(latencies),
        "seconds": round(elapsed, 3),
        "tx_per_s": round(len(latencies) / elapsed, 1),
        "tx_ms": {f"p{q}": round(percentile(latencies, q) or 0.0, 2) for q in (50, 99)},
    }


async def raw_websockets(*, count: int, size: int, env: dict[str, str]) -> dict[str, Any]:
    """A minimal ``websockets`` server process broadcasting ``count`` frames of ``size`` bytes to one
    client (this process), which parses each as JSON like the subscriber does."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ingest.broadcast_server", "--count", str(count), "--size", str(size),
        stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT, env=env,
    )
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"broadcast server did not start: {line}")
        meter = CpuMeter({"server": server.pid})
        async with connect(f"ws://127.0.0.1:{line[1]}", max_size=None) as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "none") if ws.response else "none"
            before = meter.sample()
            begin = time.monotonic_ns()
            await ws.send("go")
            for _ in range(count):
                json.loads(await ws.recv())
            elapsed = (time.monotonic_ns() - begin) / 1e9
            after = meter.sample()
        await asyncio.wait_for(server.wait(), 10)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    return {
        "messages": count,
        "frame_bytes": size,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(count / elapsed, 1),
        "extensions": extensions.replace(" ", ""),
        "cpu_cores": CpuMeter.between(before, after, elapsed),
    }
