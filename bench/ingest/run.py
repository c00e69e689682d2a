"""``python -m bench.ingest``: the ingest benchmark of DESIGN §10.

Steps, in one run:
1. create a scratch database (local PostgreSQL, else embedded);
2. for each scenario (accounts × gateway processes; default 1×1, 20×1, 1×2 and 20×2, two processes
   sharing Redis): start ``python -m gateway serve`` (as many as the scenario has), create the
   accounts and one WhatsApp channel each through the REST API, start a WS subscriber process with
   one socket per account on topic ``account``; then
   a. warm up: one text from each bench contact (creates contacts and conversations);
   b. saturation: N senders in a closed loop for a while, posts spread over accounts and processes
      → events/s (POST start to the last ``message.created`` frame), CPU per 1,000 events;
   c. latency: an open loop at half that rate → p50/p99 from POST start to the frame;
   and stop the gateways;
3. baselines on the same machine: a bare Starlette endpoint with the same bodies and closed loop
   (req/s), raw asyncpg with the same concurrency — one INSERT transaction per event, and the
   realistic per-event transaction (contact, conversation, message, event with the seq update) —
   and a ``websockets`` server broadcasting to one client;
4. print one line per figure, write JSON under ``bench/results/``, drop the database.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.ingest.baselines import bare_starlette, raw_asyncpg, raw_asyncpg_realistic, raw_websockets
from bench.ingest.database import DEFAULT_ADMIN_URL, ScratchDatabase, scratch_database
from bench.ingest.gateway_proc import (
    PHONE_NUMBER_ID,
    REPO_ROOT,
    create_accounts,
    create_whatsapp_channel,
    running_gateways,
)
from bench.ingest.load import Poster, Sent, closed_loop, open_loop, summarise
from bench.ingest.report import figure_line, machine, postgres_settings, redis_reachable, software, write_result
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
    p.add_argument("--scenarios", default="1x1,20x1,1x2,20x2",
                   help="ACCOUNTSxPROCESSES, comma-separated (default 1x1,20x1,1x2,20x2); two or more processes "
                   "share Redis")
    p.add_argument("--redis-url", default=None, help="REDIS_URL for every scenario (default: one process uses "
                   "the in-process broker; several use $BENCH_REDIS_URL, else redis://127.0.0.1:6379/0)")
    p.add_argument("--cpus", default=None, help="pin this run's processes (bench, gateway, subscriber, an "
                   "embedded PostgreSQL) to these CPUs, e.g. 0,1; a PostgreSQL service is not ours to pin")
    p.add_argument("--gateway-log-level", default="warning")
    p.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    return p


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def scenarios(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split(","):
        accounts, _, processes = part.strip().partition("x")
        out.append((int(accounts), int(processes or 1)))
    return out


def scenario_key(accounts: int, processes: int) -> str:
    """Suffix of the printed figure names: none for the 1 account, 1 process run (the names kept from before)."""
    parts = ([f"accounts{accounts}"] if accounts != 1 else []) + ([f"gateways{processes}"] if processes != 1 else [])
    return ".".join(parts)


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
            await asyncio.wait({sampler})  # never swallows a cancellation of this task
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


def _cpu_per_1k(phase: dict[str, Any]) -> dict[str, float | None]:
    """CPU seconds per 1,000 delivered events, from the phase's average cores and rate."""
    rate, cores = phase.get("events_per_s"), phase.get("cpu_cores", {})
    gateway = sum(v for k, v in cores.items() if k.startswith("gateway")) if cores else None
    postgres = cores.get("postgres")
    return {
        "gateway": round(gateway / rate * 1000, 3) if rate and gateway is not None else None,
        "postgres": round(postgres / rate * 1000, 3) if rate and postgres is not None else None,
    }


async def _batch_totals(http: aiohttp.ClientSession, gateway_urls: list[str]) -> tuple[float, float]:
    """(writes, batches) the gateways' group commit ran so far, from their /metrics."""
    writes = batches = 0.0
    for url in gateway_urls:
        async with http.get(f"{url}/metrics") as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith("igw_commit_batch_size_sum "):
                    writes += float(line.split()[1])
                elif line.startswith("igw_commit_batch_size_count "):
                    batches += float(line.split()[1])
    return writes, batches


async def _load_phases(args: argparse.Namespace, db: ScratchDatabase, sub: Subscriber, meter: CpuMeter,
                       targets: list[tuple[str, WebhookMaker]], gateway_urls: list[str]) -> dict[str, Any]:
    backends = BackendCpu(db.admin_dsn, db.name)
    connector = aiohttp.TCPConnector(limit=max(256, args.concurrency))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        poster = Poster(http, targets)
        warmup = await _phase(sub, meter, backends, args.drain_timeout,
                              closed_loop(poster, concurrency=args.concurrency, count=args.contacts))
        before = await _batch_totals(http, gateway_urls)
        saturation = await _phase(sub, meter, backends, args.drain_timeout,
                                  closed_loop(poster, concurrency=args.concurrency, seconds=args.saturation_seconds),
                                  WaitSampler(db.admin_dsn, db.name))
        writes, batches = (a - b for a, b in zip(await _batch_totals(http, gateway_urls), before, strict=True))
        saturation["mean_commit_batch"] = round(writes / batches, 2) if batches else None
        if not saturation.get("events_per_s"):
            raise RuntimeError(f"no event reached the subscriber at saturation: {saturation}")
        rate = saturation["events_per_s"] * args.latency_fraction
        latency = await _phase(sub, meter, backends, args.drain_timeout,
                               open_loop(poster, rate=rate, seconds=args.latency_seconds),
                               WaitSampler(db.admin_dsn, db.name))
    return {
        "warmup": {k: v for k, v in warmup.items() if k in ("posts", "processed", "delivered", "other_outcomes")},
        "saturation": saturation | {"senders": args.concurrency, "cpu_s_per_1k_events": _cpu_per_1k(saturation)},
        "latency": latency | {"rate": round(rate, 1), "fraction_of_saturation": args.latency_fraction},
    }


async def _scenario(args: argparse.Namespace, db: ScratchDatabase, index: int, accounts: int,
                    processes: int) -> dict[str, Any]:
    redis_url = args.redis_url or (os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL) if processes > 1 else None)
    async with running_gateways(db.dsn, processes, redis_url=redis_url, log_level=args.gateway_log_level) as gws:
        created = await create_accounts(db.dsn, [f"bench {index}.{a}" for a in range(accounts)])
        # The same number of contacts in all: warm-up and rotation cost the same whatever the split.
        per_account = max(1, args.contacts // accounts)
        makers, tokens = [], []
        for a, (account_id, api_key) in enumerate(created):
            phone = str(int(PHONE_NUMBER_ID) + index * 1000 + a)
            channel = await create_whatsapp_channel(gws[0], account_id, api_key, phone)
            makers.append((channel, WebhookMaker(phone_number_id=phone, app_secret=channel.app_secret,
                                                 contacts=per_account)))
            tokens.append(api_key)
        # Consecutive posts go to different accounts, then to the next process.
        targets = [(f"{gw.url}/webhooks/whatsapp/{channel.channel_id}", maker)
                   for gw in gws for channel, maker in makers]
        sub = await Subscriber.start([gw.ws_url for gw in gws], tokens, dict(os.environ))
        try:
            pids = {f"gateway{i}": gw.pid for i, gw in enumerate(gws)} | {"subscriber": sub.proc.pid}
            phases = await _load_phases(args, db, sub, CpuMeter(pids), targets, [gw.url for gw in gws])
        finally:
            frames = await sub.stop()
    posted = sum(phases[p]["processed"] for p in ("warmup", "saturation", "latency"))
    return {"accounts": accounts, "processes": processes, "redis": bool(redis_url),
            "ws_extensions": sub.extensions} | phases | {
        "subscriber": frames | {
            "event_frames_per_message": round(frames.get("event_frames", 0) / posted, 2) if posted else None,
            "mean_event_frame_bytes": round(frames["event_bytes"] / frames["event_frames"])
            if frames.get("event_frames") else None,
        },
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = [round(v, 2) for v in os.getloadavg()]
    runs = scenarios(args.scenarios)
    wanted_redis = args.redis_url or os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    if any(p > 1 for _, p in runs) and not await redis_reachable(wanted_redis):
        log.warning("Redis does not answer: skipping the scenarios with several gateway processes")
        runs = [(a, p) for a, p in runs if p == 1]
    gateway: dict[str, Any] = {}
    async with scratch_database(args.database_url) as db:
        postgres = await postgres_settings(db.dsn) | {"where": db.where}
        for index, (accounts, processes) in enumerate(runs):
            gateway[f"{accounts}x{processes}"] = await _scenario(args, db, index, accounts, processes)
        frame_size = next((g["subscriber"].get("mean_event_frame_bytes") for g in gateway.values()), None) or 1000
        maker = WebhookMaker(phone_number_id="1", app_secret="raw", contacts=args.contacts)
        raw_pg = await raw_asyncpg(db.dsn, concurrency=args.concurrency, seconds=args.baseline_seconds,
                                   maker=maker)
        realistic = await raw_asyncpg_realistic(db.dsn, concurrency=args.concurrency, seconds=args.baseline_seconds,
                                                contacts=args.contacts, backends=BackendCpu(db.admin_dsn, db.name))
    starlette = await bare_starlette(concurrency=args.concurrency, seconds=args.baseline_seconds,
                                     contacts=args.contacts, env=dict(os.environ))
    raw_ws = await raw_websockets(count=args.ws_messages, size=frame_size, env=dict(os.environ))
    return {
        "benchmark": "ingest",
        "started_at": started,
        "machine": machine() | {"load_average_before": load_before, "load_average_after":
                                [round(v, 2) for v in os.getloadavg()]},
        "software": software(),
        "postgres": postgres,
        # URLs may carry passwords: only whether Redis was used.
        "params": {k: v for k, v in vars(args).items() if k not in ("database_url", "results_dir", "redis_url")},
        "gateway": gateway,
        "baselines": {"asyncpg": raw_pg, "asyncpg_realistic": realistic, "starlette": starlette,
                      "websockets": raw_ws},
    }


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}×" if value and base else "n/a"


def lines(result: dict[str, Any]) -> list[str]:
    base = result["baselines"]
    cores = result["machine"]["cpus_usable"]
    realistic = base["asyncpg_realistic"]["tx_per_s"]
    starlette = base["starlette"]["requests_per_s"]
    out: list[str] = []
    for run in result["gateway"].values():
        key = scenario_key(run["accounts"], run["processes"])
        suffix = f".{key}" if key else ""
        sat, lat = run["saturation"], run["latency"]
        rate = sat.get("events_per_s")
        where = f"{run['accounts']} account(s), {run['processes']} process(es)" + (" + Redis" if run["redis"] else "")
        per_1k = sat["cpu_s_per_1k_events"]
        out += [
            figure_line(f"ingest.saturation{suffix}", rate, "events/s",
                        f"{where}; closed loop, {sat['senders']} senders, {sat['delivered']} events in "
                        f"{sat.get('seconds')} s, {cores} cores, mean batch {sat.get('mean_commit_batch')}; "
                        f"{_ratio(rate, realistic)} realistic asyncpg, "
                        f"{_ratio(rate, starlette)} Starlette"),
            figure_line(f"ingest.latency.p50{suffix}", lat.get("latency_ms", {}).get("p50"), "ms",
                        f"POST start → message.created frame, open loop at {lat['rate']} events/s"),
            figure_line(f"ingest.latency.p99{suffix}", lat.get("latency_ms", {}).get("p99"), "ms",
                        f"same, {lat['delivered']} events"),
            figure_line(f"ingest.cpu_s_per_1k.gateway{suffix}", per_1k["gateway"], "CPU s",
                        "gateway process(es) per 1,000 events at saturation"),
            figure_line(f"ingest.cpu_s_per_1k.postgres{suffix}", per_1k["postgres"], "CPU s",
                        "PostgreSQL backends of the bench database per 1,000 events at saturation"),
        ]
    concurrency = result["params"]["concurrency"]
    out += [
        figure_line("baseline.asyncpg", base["asyncpg"]["tx_per_s"], "tx/s",
                    f"one INSERT transaction per event, {concurrency} connections"),
        figure_line("baseline.asyncpg.realistic", realistic, "tx/s",
                    f"contact, conversation, message, event + seq per transaction, one account, "
                    f"{concurrency} connections"),
        figure_line("baseline.starlette", starlette, "req/s",
                    f"bare Starlette JSON POST, same uvicorn settings, {concurrency} senders"),
        figure_line("baseline.websockets", base["websockets"]["messages_per_s"], "msgs/s",
                    f"broadcast of {base['websockets']['messages']} frames of "
                    f"{base['websockets']['frame_bytes']} B to one client"),
    ]
    return out


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
