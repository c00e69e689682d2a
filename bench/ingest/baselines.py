"""Raw baselines measured in the same run: what PostgreSQL and ``websockets`` alone manage here."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import sys
import time
from typing import Any

import aiohttp
import asyncpg
from websockets.asyncio.client import connect

from bench.ingest.gateway_proc import REPO_ROOT, free_port
from bench.ingest.load import Poster, closed_loop
from bench.ingest.stats import BackendCpu, CpuMeter, percentile
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


# The realistic per-event transaction on the gateway's own schema, each step one statement.
_CONTACT = """
WITH found AS (
    SELECT contact_id FROM contact_identities
    WHERE account_id = $1 AND channel_type = 'whatsapp' AND external_id = $2
), created AS (
    INSERT INTO contacts (account_id, name, phone)
    SELECT $1, $3, '+' || $2 WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id
), identity AS (
    INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id)
    SELECT $1, id, 'whatsapp', $2 FROM created RETURNING contact_id
)
SELECT contact_id FROM found UNION ALL SELECT contact_id FROM identity"""
_CONVERSATION = """
INSERT INTO conversations (account_id, channel_id, contact_id, first_inbound_at) VALUES ($1, $2, $3, now())
ON CONFLICT (channel_id, contact_id) WHERE status <> 'resolved'
DO UPDATE SET last_activity_at = now(), updated_at = now(), unread_count = conversations.unread_count + 1
RETURNING id"""
_MESSAGE = """
INSERT INTO messages (account_id, conversation_id, channel_id, direction, type, text, status, external_id, raw)
VALUES ($1, $2, $3, 'inbound', 'text', $4, 'received', $5, $6::jsonb)
ON CONFLICT (channel_id, external_id) DO NOTHING RETURNING id, created_at"""
_EVENT = """
WITH taken AS (UPDATE accounts SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)
INSERT INTO events (account_id, seq, name, conversation_id, data)
SELECT $1, last_seq, 'message.created', $2, $3::jsonb FROM taken"""


async def raw_asyncpg_realistic(dsn: str, *, concurrency: int, seconds: float, contacts: int,
                                backends: BackendCpu) -> dict[str, Any]:
    """What one inbound text costs done by hand with asyncpg, one transaction per event, all into one
    account: find or create the contact and the conversation, insert the message (ON CONFLICT on its
    provider id), append one event with the account's seq update, commit. Run on the gateway's schema
    in the bench database, ``concurrency`` workers on a pool of as many connections."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    maker = WebhookMaker(phone_number_id="110900000009999", app_secret="raw", contacts=contacts)
    try:
        account_id = await pool.fetchval("INSERT INTO accounts (name) VALUES ('raw baseline') RETURNING id")
        channel_id = await pool.fetchval(
            """INSERT INTO channels (account_id, type, name, provider_key) VALUES ($1, 'whatsapp', 'raw', $2)
               RETURNING id""", account_id, maker.phone_number_id)
        latencies: list[float] = []

        async def one(conn: asyncpg.Connection) -> None:
            hook = maker.next()
            start = time.monotonic_ns()
            value = json.loads(hook.body)["entry"][0]["changes"][0]["value"]
            message, contact = value["messages"][0], value["contacts"][0]
            async with conn.transaction():
                contact_id = await conn.fetchval(_CONTACT, account_id, contact["wa_id"], contact["profile"]["name"])
                conversation_id = await conn.fetchval(_CONVERSATION, account_id, channel_id, contact_id)
                row = await conn.fetchrow(_MESSAGE, account_id, conversation_id, channel_id, message["text"]["body"],
                                          message["id"], json.dumps(message))
                if row is not None:
                    data = {"id": row["id"], "conversation_id": conversation_id, "channel_id": channel_id,
                            "direction": "inbound", "type": "text", "text": message["text"]["body"],
                            "status": "received", "external_id": message["id"],
                            "created_at": row["created_at"].isoformat()}
                    await conn.execute(_EVENT, account_id, conversation_id, json.dumps(data))
            latencies.append((time.monotonic_ns() - start) / 1e6)

        # Warm-up, not measured: every contact and conversation exists, as in the gateway's run.
        async with pool.acquire() as conn:
            for _ in range(contacts):
                await one(conn)
        latencies.clear()
        deadline = time.monotonic() + seconds
        pg_before = await backends.sample()

        async def worker() -> None:
            async with pool.acquire() as conn:
                while time.monotonic() < deadline:
                    await one(conn)

        begin = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - begin
        postgres = BackendCpu.between(pg_before, await backends.sample(), elapsed)
    finally:
        await pool.close()
    tx_per_s = len(latencies) / elapsed
    return {
        "transactions": len(latencies),
        "seconds": round(elapsed, 3),
        "tx_per_s": round(tx_per_s, 1),
        "tx_ms": {f"p{q}": round(percentile(latencies, q) or 0.0, 2) for q in (50, 99)},
        "postgres_cores": postgres,
        "postgres_cpu_s_per_1k": round(postgres / tx_per_s * 1000, 3) if postgres and tx_per_s else None,
    }


async def _wait_http(url: str, proc: asyncio.subprocess.Process, seconds: float = 30) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(seconds):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the Starlette baseline exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url):
                    return  # any answer (405) means it listens
            await asyncio.sleep(0.1)


async def bare_starlette(*, concurrency: int, seconds: float, contacts: int, env: dict[str, str]) -> dict[str, Any]:
    """The same signed webhook bodies posted in the same closed loop to a bare Starlette JSON endpoint
    (``bench/ingest/starlette_server.py``) on the gateway's uvicorn settings → requests/s."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ingest.starlette_server", "--port", str(port), cwd=REPO_ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}/webhooks/whatsapp/1"
        await _wait_http(url, server)
        maker = WebhookMaker(phone_number_id="1", app_secret="raw", contacts=contacts)
        connector = aiohttp.TCPConnector(limit=max(256, concurrency))
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
            poster = Poster(http, [(url, maker)])
            await closed_loop(poster, concurrency=concurrency, count=concurrency * 10)  # warm-up
            meter = CpuMeter({"server": server.pid})
            before = meter.sample()
            begin = time.monotonic()
            sent = await closed_loop(poster, concurrency=concurrency, seconds=seconds)
            elapsed = time.monotonic() - begin
            cores = CpuMeter.between(before, meter.sample(), elapsed)
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), 15)
            except TimeoutError:
                server.kill()
                await server.wait()
    ok = [s for s in sent if s.outcome == "processed"]
    first = min(s.start_ns for s in sent)
    last = max(s.acked_ns for s in ok) if ok else first
    rate = len(ok) / ((last - first) / 1e9) if ok and last > first else None
    answers = [(s.acked_ns - s.start_ns) / 1e6 for s in ok]
    return {
        "requests": len(sent),
        "answered_ok": len(ok),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(rate, 1) if rate else None,
        "answer_ms": {f"p{q}": round(percentile(answers, q) or 0.0, 2) for q in (50, 99)},
        "cpu_cores": cores,
        "server_cpu_s_per_1k": round(cores["server"] / rate * 1000, 3) if rate and "server" in cores else None,
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
