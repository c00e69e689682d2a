"""Posting webhooks: closed loop (N senders, each posts again as soon as it is answered) for the
saturation rate, open loop (a fixed schedule, whatever the answers do) for latency."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.ingest.stats import percentile
from bench.ingest.webhooks import SignedWebhook, WebhookMaker


@dataclass
class Sent:
    wamid: str
    start_ns: int  # when the POST started (closed loop) or was due (open loop)
    acked_ns: int
    outcome: str  # "processed" when the gateway committed it; else the status or error


class Poster:
    """Posts to its targets in turn: (webhook URL, maker of that channel's webhooks) pairs, one per
    account and gateway process, so consecutive posts go to different accounts and processes."""

    def __init__(self, http: aiohttp.ClientSession, targets: list[tuple[str, WebhookMaker]]) -> None:
        self.http = http
        self.targets = targets
        self._turn = itertools.count()

    def next(self) -> tuple[str, SignedWebhook]:
        url, maker = self.targets[next(self._turn) % len(self.targets)]
        return url, maker.next()

    async def post(self, url: str, hook: SignedWebhook, start_ns: int) -> Sent:
        try:
            async with self.http.post(url, data=hook.body, headers=hook.headers) as resp:
                raw = await resp.read()
                outcome = str(json.loads(raw).get("status")) if resp.status == 200 else f"http {resp.status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            outcome = f"error {type(exc).__name__}"
        return Sent(hook.wamid, start_ns, time.monotonic_ns(), outcome)


async def closed_loop(poster: Poster, *, concurrency: int, seconds: float | None = None,
                      count: int | None = None) -> list[Sent]:
    """Until ``seconds`` have passed or ``count`` posts were started."""
    sent: list[Sent] = []
    deadline = time.monotonic_ns() + int(seconds * 1e9) if seconds else None
    started = 0

    async def sender() -> None:
        nonlocal started
        while (deadline is None or time.monotonic_ns() < deadline) and (count is None or started < count):
            started += 1
            url, hook = poster.next()
            sent.append(await poster.post(url, hook, time.monotonic_ns()))

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return sent


async def open_loop(poster: Poster, *, rate: float, seconds: float) -> tuple[list[Sent], float]:
    """Start a POST every 1/rate seconds. Latency counts from when each was due, so a sender that
    falls behind cannot hide the queueing (coordinated omission). Returns the posts and the
    largest lag of an actual start behind its due time, in ms."""
    interval_ns = int(1e9 / rate)
    total = max(1, int(rate * seconds))
    begin = time.monotonic_ns()
    tasks: list[asyncio.Task[Sent]] = []
    max_lag = 0
    for i in range(total):
        due = begin + i * interval_ns
        delay = due - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        max_lag = max(max_lag, time.monotonic_ns() - due)
        tasks.append(asyncio.create_task(poster.post(*poster.next(), due)))
    return list(await asyncio.gather(*tasks)), max_lag / 1e6


def summarise(sent: list[Sent], received: dict[str, int]) -> dict[str, Any]:
    """Rates and latencies of one phase from the posts and the subscriber's receive stamps."""
    ok = [s for s in sent if s.outcome == "processed"]
    delivered = [(s, received[s.wamid]) for s in ok if s.wamid in received]
    out: dict[str, Any] = {
        "posts": len(sent),
        "processed": len(ok),
        "delivered": len(delivered),
        "not_delivered": len(ok) - len(delivered),
        "other_outcomes": dict(Counter(s.outcome for s in sent if s.outcome != "processed")),
    }
    if not delivered:
        return out
    first = min(s.start_ns for s in sent)
    last_ack = max(s.acked_ns for s in ok)
    last_frame = max(at for _, at in delivered)
    latencies = [(at - s.start_ns) / 1e6 for s, at in delivered]
    acks = [(s.acked_ns - s.start_ns) / 1e6 for s in ok]
    out.update(
        seconds=round((last_frame - first) / 1e9, 3),
        events_per_s=round(len(delivered) / ((last_frame - first) / 1e9), 1),
        acks_per_s=round(len(ok) / ((last_ack - first) / 1e9), 1),
        latency_ms={f"p{q}": round(v, 2) for q in (50, 90, 99) if (v := percentile(latencies, q)) is not None}
        | {"max": round(max(latencies), 2)},
        ack_ms={f"p{q}": round(v, 2) for q in (50, 99) if (v := percentile(acks, q)) is not None},
    )
    return out
