"""Fan-out benchmark: one event to 1,000 / 10,000 sockets, the gateway next to a raw ``websockets`` baseline.

For each socket count and each server (the gateway, then the baseline), in a fresh server process:

1. RSS of the idle server; open the sockets from client processes (``--per-process`` each),
   subscribed to the ``account`` topic on the gateway; after a pause, RSS again: the difference
   divided by the sockets is the RSS per idle connection;
2. latency: ``--latency-events`` events, one at a time, ``--spacing`` apart (long enough for one
   event to reach every socket): publish→receive p50/p99 without load;
3. throughput: ``--burst-events`` events back to back; deliveries/s = sockets × events / (last
   receive − first publish), publish→receive p50/p99 under that load, and deliveries per second
   of the server's own CPU time (the client processes share the machine's cores with it).

Both servers are fed through the same Redis: the gateway's events are committed through
``inbox.eventlog.append`` and published with ``RedisBroker`` exactly as a webhook handler in another
gateway process would; the baseline gets the same frame text on a channel of its own and calls
``websockets.broadcast``. "publish" is the moment just before the Redis PUBLISH, after the commit.

Prints one line per figure and writes ``bench/results/fanout-<UTC time>.json``. Needs PostgreSQL
(``--database-url``, a server where it may create and drop a database) and Redis (``--redis-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bench.fanout.procs import REPO, Server, gateway_server, open_clients, raw_server
from bench.ingest.report import postgres_settings, software
from gateway.redis_broker import RedisBroker
from inbox.accounts import create_account
from inbox.db import create_pool
from inbox.eventlog import PendingEvent, append
from inbox.migrations import migrate
from schema.enums import EventName

MiB = 1024 * 1024


def raise_open_files_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the database of the run --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bench_database(admin_dsn: str) -> AsyncIterator[str]:
    name = f"igw_bench_fanout_{secrets.token_hex(4)}"
    base = admin_dsn.rsplit("/", 1)[0]
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{base}/{name}"
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield url
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# -- publishers ---------------------------------------------------------------------------------


def event_data(phase: str, i: int) -> dict[str, Any]:
    return {"pub": 0.0, "phase": phase, "i": i, "text": "Guten Tag, wann öffnet ihr morgen?"}


class GatewayPublisher:
    """Commit through the event log, then publish through Redis: what a gateway process's writer does."""

    def __init__(self, pool: asyncpg.Pool, account_id: int, broker: RedisBroker) -> None:
        self.pool, self.account_id, self.broker = pool, account_id, broker

    async def __call__(self, phase: str, i: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            records = await append(
                conn, self.account_id, [PendingEvent(EventName.MESSAGE_CREATED, 1, event_data(phase, i))]
            )
        # The data dict travels with the record: stamping it now makes the
        # measured span publish→receive, as for the baseline.
        records[0].data["pub"] = time.time()
        await self.broker.publish(records)


class RawPublisher:
    def __init__(self, client: aioredis.Redis, channel: str, account_id: int) -> None:
        self.client, self.channel, self.account_id = client, channel, account_id
        self.seq = 0

    async def __call__(self, phase: str, i: int) -> None:
        self.seq += 1
        data = event_data(phase, i)
        data["pub"] = time.time()
        frame = {"type": "event", "seq": self.seq, "event": "message.created", "account_id": self.account_id,
                 "conversation_id": 1, "data": data, "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        await self.client.publish(self.channel, json.dumps(frame))


# -- one measurement ----------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


async def measure(server: Server, publish: Any, args: argparse.Namespace, sockets: int) -> dict[str, Any]:
    progress(f"{server.name}: opening {sockets} sockets")
    await asyncio.sleep(1)
    rss_idle_server = server.rss()
    started = time.monotonic()
    async with open_clients(server, sockets, args.per_process) as clients:
        connect_s = time.monotonic() - started
        await asyncio.sleep(3)  # let connection setup garbage settle
        rss_with_sockets = server.rss()
        progress(f"{server.name}: {sockets} sockets open in {connect_s:.1f} s; latency phase")

        for i in range(args.latency_events):
            await publish("L", i)
            await asyncio.sleep(args.spacing or max(0.1, sockets / 5_000))
        received_l, _ = await clients.wait("L", args.latency_events, 120)

        progress(f"{server.name}: burst phase")
        cpu_before = server.cpu_seconds()
        first_publish = time.time()
        for i in range(args.burst_events):
            await publish("T", i)
        received_t, last_receive = await clients.wait("T", args.burst_events, 600)
        burst_s = last_receive - first_publish
        # The clients share the machine's cores with the server: deliveries per
        # second of server CPU says what the server itself costs.
        burst_cpu_s = server.cpu_seconds() - cpu_before

        with tempfile.TemporaryDirectory(prefix="igw-bench-") as tmp:
            latencies = await clients.latencies(Path(tmp))
    lat_l, lat_t = latencies.get("L", []), latencies.get("T", [])
    return {
        "server": server.name,
        "sockets": sockets,
        "connect_s": round(connect_s, 2),
        "rss_idle_server_mib": round(rss_idle_server / MiB, 1),
        "rss_with_sockets_mib": round(rss_with_sockets / MiB, 1),
        "rss_per_idle_socket_kib": round((rss_with_sockets - rss_idle_server) / sockets / 1024, 1),
        "latency_events": args.latency_events,
        "latency_deliveries": received_l,
        "latency_expected": sockets * args.latency_events,
        "latency_p50_ms": round(percentile(lat_l, 0.50), 2),
        "latency_p99_ms": round(percentile(lat_l, 0.99), 2),
        "burst_events": args.burst_events,
        "burst_deliveries": received_t,
        "burst_expected": sockets * args.burst_events,
        "burst_seconds": round(burst_s, 3),
        "deliveries_per_s": round(received_t / burst_s) if burst_s > 0 else None,
        "server_cpu_s_burst": round(burst_cpu_s, 2),
        "deliveries_per_server_cpu_s": round(received_t / burst_cpu_s) if burst_cpu_s > 0 else None,
        "burst_latency_p50_ms": round(percentile(lat_t, 0.50), 1),
        "burst_latency_p99_ms": round(percentile(lat_t, 0.99), 1),
        "latency_mean_ms": round(statistics.fmean(lat_l), 2) if lat_l else None,
    }


def print_figures(result: dict[str, Any]) -> None:
    tag = f"fanout sockets={result['sockets']} server={result['server']}"
    for key in ("deliveries_per_s", "deliveries_per_server_cpu_s", "latency_p50_ms", "latency_p99_ms",
                "burst_latency_p50_ms", "burst_latency_p99_ms", "rss_per_idle_socket_kib", "rss_with_sockets_mib",
                "connect_s"):
        print(f"{tag} {key}={result[key]}", flush=True)
    lost_l = result["latency_expected"] - result["latency_deliveries"]
    lost_t = result["burst_expected"] - result["burst_deliveries"]
    if lost_l or lost_t:
        print(f"{tag} MISSING deliveries: latency phase {lost_l}, burst phase {lost_t}", flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_open_files_limit(max(args.sockets) * 2 + 1024)
    prefix = f"igwbench:{secrets.token_hex(4)}"
    results: list[dict[str, Any]] = []
    async with bench_database(args.database_url) as db_url:
        postgres = await postgres_settings(db_url)
        pool = await create_pool(db_url, max_size=4)
        redis = aioredis.Redis.from_url(args.redis_url)
        broker = RedisBroker(args.redis_url, prefix=prefix)
        try:
            account_id, api_key = await create_account(pool, "bench")
            for sockets in args.sockets:
                pair: dict[str, dict[str, Any]] = {}
                if not args.only or args.only == "gateway":
                    async with gateway_server(db_url, args.redis_url, prefix, api_key) as server:
                        pair["gateway"] = await measure(
                            server, GatewayPublisher(pool, account_id, broker), args, sockets
                        )
                    print_figures(pair["gateway"])
                if not args.only or args.only == "raw":
                    channel = f"{prefix}:raw"
                    async with raw_server(args.redis_url, channel) as server:
                        pair["raw"] = await measure(server, RawPublisher(redis, channel, account_id), args, sockets)
                    print_figures(pair["raw"])
                if len(pair) == 2:
                    for key in ("deliveries_per_s", "deliveries_per_server_cpu_s"):
                        if pair["raw"][key] and pair["gateway"][key]:
                            ratio = pair["gateway"][key] / pair["raw"][key]
                            print(f"fanout sockets={sockets} gateway_vs_raw_{key}={ratio:.2f}", flush=True)
                            pair["gateway"][f"vs_raw_{key}"] = round(ratio, 3)
                results.extend(pair.values())
        finally:
            await broker.close()
            await redis.aclose()
            await pool.close()
    return {
        "benchmark": "fanout",
        "when": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "open_files_limit": limit,
        },
        "software": software(),
        "postgres": postgres,
        "settings": {k: v for k, v in vars(args).items() if k not in ("database_url", "out")},
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--per-process", type=int, default=1000, help="sockets per client process")
    parser.add_argument("--latency-events", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=0.0, help="seconds between latency events (0: auto)")
    parser.add_argument("--burst-events", type=int, default=100, help="keep ≤ GATEWAY_WS_QUEUE_SIZE (1000)")
    parser.add_argument("--only", choices=["gateway", "raw"])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server where the bench may create a database (env BENCH_DATABASE_URL)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        report = asyncio.run(run(args))
    else:
        report = uvloop.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"fanout-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"fanout results written to {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    main()
