"""``python -m bench.ingest``: the ingest benchmark of DESIGN §10.

Steps, in one run:
1. create a scratch database (local PostgreSQL, else embedded) and start ``python -m gateway serve`` on it;
2. create an account with the CLI and a WhatsApp channel through the REST API;
3. start a WS subscriber process on topic ``account``;
4. warm up: one text from each bench contact (creates contacts and conversations);
5. saturation: N senders in a closed loop for a while → events/s (POST start to the last
   ``message.created`` frame);
6. latency: an open loop at half that rate → p50/p99 from POST start to the ``message.created`` frame;
7. stop the gateway; raw baselines on the same machine: asyncpg INSERT transactions/s with the same
   concurrency, and a ``websockets`` server broadcasting to one client;
8. print one line per figure, write JSON under ``bench/results/``, drop the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.ingest.baselines import raw_asyncpg, raw_websockets
from bench.ingest.database import DEFAULT_ADMIN_URL, ScratchDatabase, scratch_database
from bench.ingest.gateway_proc import REPO_ROOT, create_account, create_whatsapp_channel, running_gateway
from bench.ingest.load import Poster, Sent, closed_loop, open_loop, summarise
from bench.ingest.report import figure_line, machine, write_result
from bench.ingest.stats import BackendCpu, CpuMeter, WaitSampler
from bench.ingest.subscriber import Subscriber
from bench.ingest.webhooks import WebhookMaker

log = logging.getLogger("bench.ingest")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop senders, and asyncpg baseline "
                   "connections (default 32)")
    p.add_argument("--contacts", type=int, default=500, help="distinct customers the texts come from (default 500)")
    p.add_argument("--saturation-seconds", type=float, default=15, help="closed-loop phase length (default 15)")
    p.add_argument("--latency-seconds", type=float, default=20, help="open-loop phase length (default 20)")
    p.add_argument("--latency-fraction", type=float, default=0.5,
                   help="open-loop rate as a fraction of the saturation rate (default 0.5)")
    p.add_argument("--baseline-seconds", type=float, default=5, help="asyncpg baseline length (default 5)")
    p.add_argument("--ws-messages", type=int, default=20000, help="frames in the websockets baseline (default 20000)")
    p.add_argument("--drain-timeout", type=float, default=30,
                   help="seconds to wait for the last frames of a phase (default 30)")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL),
                   help="where to create the scratch database (default $BENCH_DATABASE_URL, else "
                   f"{DEFAULT_ADMIN_URL}); an embedded PostgreSQL when it does not answer")
    p.add_argument("--redis-url", default=None, help="run the gateway with this REDIS_URL (default: none, "
                   "the in-process broker)")
    p.add_argument("--cpus", default=None, help="pin this run's processes (bench, gateway, subscriber, an "
                   "embedded PostgreSQL) to these CPUs, e.g. 0,1; a PostgreSQL service is not ours to pin")
    p.add_argument("--gateway-log-level", default="warning")
    p.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    return p


async def _postgres_settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        names = ("server_version", "fsync", "synchronous_commit", "shared_buffers", "max_connections")
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()


async def _phase(sub: Subscriber, meter: CpuMeter, backends: BackendCpu, drain_timeout: float, run: Any,
                 waits: WaitSampler | None = None) -> dict[str, Any]:
    """Run one load phase, wait for its frames, summarise it with the CPU it took."""
    pg_before = await backends.sample()
    before = meter.sample()
    begin = time.monotonic()
    sampler = asyncio.create_task(waits.run()) if waits else None
    try:
        outcome = await run
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    sent: list[Sent] = outcome[0] if isinstance(outcome, tuple) else outcome
    missing = await sub.wait_for([s.wamid for s in sent if s.outcome == "processed"], drain_timeout)
    elapsed = time.monotonic() - begin
    summary = summarise(sent, sub.received)
    cores = CpuMeter.between(before, meter.sample(), elapsed)
    if (postgres := BackendCpu.between(pg_before, await backends.sample(), elapsed)) is not None:
        cores["postgres"] = postgres
    if "machine" in cores:
        # Whatever else runs on the machine (other PostgreSQL databases, other programs).
        cores["others"] = round(cores["machine"] - sum(v for k, v in cores.items() if k != "machine"), 2)
    summary["cpu_cores"] = cores
    summary["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    if isinstance(outcome, tuple):
        summary["max_start_lag_ms"] = round(outcome[1], 2)
    if missing:
        summary["missing_after_drain"] = len(missing)
    if sub.closed is not None:
        summary["subscriber_closed"] = sub.closed
    if waits is not None:
        summary["pg_active_backends"] = waits.mean_backends()
    return summary


async def _load_phases(args: argparse.Namespace, db: ScratchDatabase, sub: Subscriber, meter: CpuMeter,
                       url: str, maker: WebhookMaker) -> dict[str, Any]:
    backends = BackendCpu(db.admin_dsn, db.name)
    connector = aiohttp.TCPConnector(limit=max(256, args.concurrency))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        poster = Poster(http, url, maker)
        warmup = await _phase(sub, meter, backends, args.drain_timeout,
                              closed_loop(poster, concurrency=args.concurrency, count=args.contacts))
        saturation = await _phase(sub, meter, backends, args.drain_timeout,
                                  closed_loop(poster, concurrency=args.concurrency, seconds=args.saturation_seconds),
                                  WaitSampler(db.admin_dsn, db.name))
        if not saturation.get("events_per_s"):
            raise RuntimeError(f"no event reached the subscriber at saturation: {saturation}")
        rate = saturation["events_per_s"] * args.latency_fraction
        latency = await _phase(sub, meter, backends, args.drain_timeout,
                               open_loop(poster, rate=rate, seconds=args.latency_seconds),
                               WaitSampler(db.admin_dsn, db.name))
    return {
        "warmup": {k: v for k, v in warmup.items() if k in ("posts", "processed", "delivered", "other_outcomes")},
        "saturation": saturation | {"senders": args.concurrency},
        "latency": latency | {"rate": round(rate, 1), "fraction_of_saturation": args.latency_fraction},
    }


async def _gateway_phases(args: argparse.Namespace, db: ScratchDatabase) -> dict[str, Any]:
    async with running_gateway(db.dsn, redis_url=args.redis_url, log_level=args.gateway_log_level) as gw:
        account_id, api_key = await create_account(gw)
        channel = await create_whatsapp_channel(gw, account_id, api_key)
        maker = WebhookMaker(phone_number_id=channel.phone_number_id, app_secret=channel.app_secret,
                             contacts=args.contacts)
        url = f"{gw.url}/webhooks/whatsapp/{channel.channel_id}"
        sub = await Subscriber.start(gw.ws_url, api_key, dict(os.environ))
        try:
            meter = CpuMeter({"gateway": gw.pid, "subscriber": sub.proc.pid})
            phases = await _load_phases(args, db, sub, meter, url, maker)
        finally:
            frames = await sub.stop()
    posted = sum(phases[p]["processed"] for p in ("warmup", "saturation", "latency"))
    return {"ws_extensions": sub.extensions} | phases | {
        "subscriber": frames | {
            "event_frames_per_message": round(frames.get("event_frames", 0) / posted, 2) if posted else None,
            "mean_event_frame_bytes": round(frames["event_bytes"] / frames["event_frames"])
            if frames.get("event_frames") else None,
        },
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = [round(v, 2) for v in os.getloadavg()]
    async with scratch_database(args.database_url) as db:
        postgres = await _postgres_settings(db.dsn) | {"where": db.where}
        gateway = await _gateway_phases(args, db)
        frame_size = gateway["subscriber"].get("mean_event_frame_bytes") or 1000
        maker = WebhookMaker(phone_number_id="1", app_secret="raw", contacts=args.contacts)
        raw_pg = await raw_asyncpg(db.dsn, concurrency=args.concurrency, seconds=args.baseline_seconds,
                                   maker=maker)
    raw_ws = await raw_websockets(count=args.ws_messages, size=frame_size, env=dict(os.environ))
    return {
        "benchmark": "ingest",
        "started_at": started,
        "machine": machine() | {"load_average_before": load_before},
        "postgres": postgres,
        # URLs may carry passwords: only whether Redis was used.
        "params": {k: v for k, v in vars(args).items() if k not in ("database_url", "results_dir", "redis_url")}
        | {"redis": bool(args.redis_url)},
        "gateway": gateway,
        "baselines": {"asyncpg": raw_pg, "websockets": raw_ws},
    }


def lines(result: dict[str, Any]) -> list[str]:
    gw, base = result["gateway"], result["baselines"]
    sat, lat = gw["saturation"], gw["latency"]
    cores = result["machine"]["cpus_usable"]
    return [
        figure_line("ingest.saturation", sat.get("events_per_s"), "events/s",
                    f"closed loop, {sat['senders']} senders, {sat['delivered']} events in {sat.get('seconds')} s, "
                    f"{cores} cores"),
        figure_line("ingest.latency.p50", lat.get("latency_ms", {}).get("p50"), "ms",
                    f"POST start → message.created frame, open loop at {lat['rate']} events/s"),
        figure_line("ingest.latency.p99", lat.get("latency_ms", {}).get("p99"), "ms",
                    f"same, {lat['delivered']} events"),
        figure_line("baseline.asyncpg", base["asyncpg"]["tx_per_s"], "tx/s",
                    f"one INSERT transaction per event, {sat['senders']} connections"),
        figure_line("baseline.websockets", base["websockets"]["messages_per_s"], "msgs/s",
                    f"broadcast of {base['websockets']['messages']} frames of "
                    f"{base['websockets']['frame_bytes']} B to one client"),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})  # children inherit it
    usable = len(os.sched_getaffinity(0))
    if usable != 2:
        log.warning("%d CPUs usable; DESIGN §10 figures are for 2 cores (try --cpus 0,1)", usable)
    try:
        import uvloop
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    try:
        result = runner(bench(args))
    except KeyboardInterrupt:
        return 130  # everything started was stopped and the database dropped on the way out
    except RuntimeError as exc:
        print(f"bench.ingest: {exc}", file=sys.stderr)
        return 1
    # Written first: a closed stdout (``| head``) must not lose the run.
    path = write_result(args.results_dir, result)
    for line in lines(result):
        print(line, flush=True)
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    print(f"result: {shown}", flush=True)
    return 0
