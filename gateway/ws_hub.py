"""Live event streams for WebSocket subscribers: gap-free, in order, exactly once.

The ``events`` table is the record; the broker only says "something new".
Per account with at least one socket on this node the hub keeps a stream
whose ``last_seq`` is the highest seq handed to its live subscribers, and
every subscriber keeps its own ``cursor`` (highest seq it has been given or
skipped as not matching its topics). Three rules make delivery exact:

1. The stream hands out seqs strictly one after another. An event from the
   broker that is not ``last_seq + 1`` parks in ``pending`` and a fill task
   reads the missing seqs from the log first (writers publish only after
   commit, and ``inbox.eventlog`` commits seqs in order, so everything below a
   published seq is already readable).
2. A subscriber only takes events with ``seq > cursor``: a replayed event that
   later arrives live, or a live event that a fill reads again, is skipped.
3. Subscribing with ``after`` replays from the log while the subscriber is not
   yet live; it turns live, without an ``await`` in between, at the moment its
   cursor has reached the stream's ``last_seq`` — so nothing the stream hands
   out afterwards is missed and nothing before is handed twice.

Broker messages lost while Redis was away, and events whose writer died
between commit and publish, are found by a light check (one query for all
active accounts every ``CHECK_INTERVAL`` seconds, and at once on a broker
reconnect) that compares ``accounts.last_seq`` with each stream.

Memory: a subscriber's queue is bounded (``GATEWAY_WS_QUEUE_SIZE``); a live
subscriber whose queue is full is dropped (the socket closes with 4008) and
its queue emptied. Event frames are serialised once and shared by every queue.
A stream's ``pending`` is bounded too: beyond ``MAX_PENDING`` only the highest
seq is remembered and the rest is read from the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from gateway.context import AppContext
from gateway.http import DB_UNAVAILABLE
from gateway.supervise import TaskGroup
from inbox.eventlog import EventRecord, fetch_after, latest_seq
from schema.ws import Topic

log = logging.getLogger(__name__)

CLOSE_SLOW_CONSUMER = 4008
CHECK_INTERVAL = 1.0
REPLAY_BATCH = 500
FILL_BATCH = 500
MAX_PENDING = 10_000

DB_ERRORS: tuple[type[BaseException], ...] = (*DB_UNAVAILABLE, asyncpg.PostgresError)

WS_CONNECTIONS = Gauge("gateway_ws_connections", "Open /ws connections on this process")
WS_SLOW_CLOSES = Counter(
    "gateway_ws_slow_consumer_closes_total", "Sockets closed with 4008 because their send queue overflowed"
)
WS_LOG_FILLS = Counter("gateway_ws_log_fills_total", "Gaps in broker delivery filled from the event log")


def event_frame(record: EventRecord) -> str:
    return json.dumps(record.to_json())


class FrameQueue:
    """A bounded FIFO of frames for one socket: one consumer (the writer), producers that either
    must not wait (live fan-out: ``offer`` says False when full) or may (replay and replies: ``put``).

    Lighter than ``asyncio.Queue`` on the path that runs once per delivery.
    """

    __slots__ = ("_items", "_maxsize", "_reader", "_space")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[str] = deque()
        self._maxsize = maxsize
        self._reader: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, frame: str) -> bool:
        if len(self._items) >= self._maxsize:
            return False
        self._items.append(frame)
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)
        return True

    async def put(self, frame: str) -> None:
        while len(self._items) >= self._maxsize:
            self._space = asyncio.get_running_loop().create_future()
            try:
                await self._space
            finally:
                self._space = None
        self.offer(frame)

    async def get(self) -> str:
        while not self._items:
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        frame = self._items.popleft()
        space = self._space
        if space is not None and not space.done():
            space.set_result(None)
        return frame

    def clear(self) -> None:
        self._items.clear()
        space = self._space
        if space is not None and not space.done():
            space.set_result(None)


class Subscriber:
    """One socket's position in its account's stream, its topics and its bounded send queue."""

    def __init__(self, account_id: int, queue_size: int) -> None:
        self.account_id = account_id
        self.topics: list[Topic] = []
        self._all = False
        self._calls = False
        self._conversations: frozenset[int] = frozenset()
        self.cursor = 0
        self.live = False
        self.queue = FrameQueue(queue_size)
        # Resolved with a close code when the hub drops this subscriber.
        self.dropped: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def streaming(self) -> bool:
        return bool(self.topics)

    def set_topics(self, topics: Sequence[Topic]) -> None:
        self.topics = list(topics)
        self._all = any(t.kind == "account" for t in topics)
        self._calls = any(t.kind == "calls" for t in topics)
        self._conversations = frozenset(t.conversation_id for t in topics if t.conversation_id is not None)

    def wants(self, record: EventRecord) -> bool:
        return (
            self._all
            or (self._calls and record.event.startswith("call."))
            or (record.conversation_id is not None and record.conversation_id in self._conversations)
        )

    async def put(self, frame: str) -> None:
        """Queue a frame, waiting for room (replay and replies: the client's reading paces them)."""
        await self.queue.put(frame)


class AccountStream:
    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        # None until the first subscriber goes live and lends it its cursor.
        self.last_seq: int | None = None
        self.subscribers: set[Subscriber] = set()
        self.live: set[Subscriber] = set()
        self.pending: dict[int, EventRecord] = {}
        # A seq known to exist (from the periodic check or dropped pending).
        self.target = 0
        self.filling = False


class WsHub:
    def __init__(self, pool: asyncpg.Pool, tasks: TaskGroup, *, check_interval: float = CHECK_INTERVAL) -> None:
        self.pool = pool
        self.tasks = tasks
        self.check_interval = check_interval
        self.streams: dict[int, AccountStream] = {}
        self._last_db_warning = 0.0

    # -- events in -------------------------------------------------------------

    def on_event(self, record: EventRecord) -> None:
        """Broker listener; synchronous so that a publish costs no task switch per socket."""
        stream = self.streams.get(record.account_id)
        if stream is None:
            return
        last = stream.last_seq
        if last is not None and record.seq <= last:
            return
        if last is not None and record.seq == last + 1 and not stream.filling and not stream.pending:
            self._dispatch(stream, record)
            return
        self._park(stream, record)
        if last is not None:
            self._ensure_fill(stream)

    def _park(self, stream: AccountStream, record: EventRecord) -> None:
        if len(stream.pending) < MAX_PENDING:
            stream.pending[record.seq] = record
        else:
            stream.target = max(stream.target, record.seq)

    def _dispatch(self, stream: AccountStream, record: EventRecord) -> None:
        stream.last_seq = record.seq
        frame: str | None = None
        overflowed: list[Subscriber] = []
        for sub in stream.live:
            if record.seq <= sub.cursor:
                continue
            sub.cursor = record.seq
            if not sub.wants(record):
                continue
            if frame is None:
                frame = event_frame(record)
            if not sub.queue.offer(frame):
                overflowed.append(sub)
        for sub in overflowed:
            self.drop(sub, CLOSE_SLOW_CONSUMER)

    # -- gap filling -----------------------------------------------------------

    def _ensure_fill(self, stream: AccountStream) -> None:
        if stream.filling or stream.last_seq is None:
            return
        stream.filling = True
        self._spawn(self._fill(stream), name=f"ws-fill-{stream.account_id}")

    def _drain_pending(self, stream: AccountStream) -> None:
        assert stream.last_seq is not None
        for seq in [s for s in stream.pending if s <= stream.last_seq]:
            del stream.pending[seq]
        while (record := stream.pending.pop(stream.last_seq + 1, None)) is not None:
            self._dispatch(stream, record)

    async def _fill(self, stream: AccountStream) -> None:
        try:
            while self.streams.get(stream.account_id) is stream:  # else nobody here listens any more
                self._drain_pending(stream)
                assert stream.last_seq is not None
                target = max(stream.target, max(stream.pending, default=0))
                if target <= stream.last_seq:
                    return
                WS_LOG_FILLS.inc()
                rows = await fetch_after(self.pool, stream.account_id, stream.last_seq, limit=FILL_BATCH)
                if not rows:
                    # Committed seqs missing from the log were deleted (retention):
                    # go on after them.
                    stream.last_seq = min(stream.pending) - 1 if stream.pending else target
                    continue
                for row in rows:
                    if row.seq > stream.last_seq:
                        self._dispatch(stream, row)
        except DB_ERRORS as exc:
            self._warn_db("filling a gap", exc)
        finally:
            stream.filling = False

    async def check_now(self) -> None:
        """Compare each live stream with ``accounts.last_seq`` and fill what the broker did not bring."""
        ids = [a for a, s in self.streams.items() if s.last_seq is not None]
        if not ids:
            return
        try:
            rows = await self.pool.fetch("SELECT id, last_seq FROM accounts WHERE id = ANY($1::bigint[])", ids)
        except DB_ERRORS as exc:
            self._warn_db("checking for missed events", exc)
            return
        for row in rows:
            stream = self.streams.get(row["id"])
            if stream is not None and stream.last_seq is not None and row["last_seq"] > stream.last_seq:
                stream.target = max(stream.target, row["last_seq"])
                self._ensure_fill(stream)

    async def watch(self) -> None:
        """The periodic check, forever (a supervised background task)."""
        while True:
            await asyncio.sleep(self.check_interval)
            await self.check_now()

    def on_broker_reconnect(self) -> None:
        self._spawn(self.check_now(), name="ws-check-after-reconnect")

    # -- subscribers -----------------------------------------------------------

    async def latest(self, account_id: int) -> int:
        return await latest_seq(self.pool, account_id)

    async def go_live(self, sub: Subscriber) -> None:
        """Replay the log after ``sub.cursor``, then hand ``sub`` to the live stream."""
        stream = self.streams.get(sub.account_id)
        if stream is None:
            stream = self.streams[sub.account_id] = AccountStream(sub.account_id)
        stream.subscribers.add(sub)
        while True:
            rows: list[EventRecord]
            if stream.last_seq is not None and stream.last_seq == sub.cursor:
                rows = []  # the stream is exactly where this subscriber is: nothing to read
            else:
                rows = await fetch_after(self.pool, sub.account_id, sub.cursor, limit=REPLAY_BATCH)
            for row in rows:
                if row.seq <= sub.cursor:
                    continue
                sub.cursor = row.seq
                if sub.wants(row):
                    await sub.put(event_frame(row))
            if len(rows) == REPLAY_BATCH:
                continue
            # No await from here to the end: the hand-over is atomic.
            if stream.last_seq is None:
                stream.last_seq = sub.cursor
            elif stream.last_seq > sub.cursor:
                if rows:
                    continue
                # The stream handed out seqs the log no longer has (retention).
                sub.cursor = stream.last_seq
            stream.live.add(sub)
            sub.live = True
            if stream.pending or stream.target > stream.last_seq:
                self._ensure_fill(stream)
            return

    def detach(self, sub: Subscriber) -> None:
        sub.live = False
        stream = self.streams.get(sub.account_id)
        if stream is None:
            return
        stream.live.discard(sub)
        stream.subscribers.discard(sub)
        if not stream.subscribers:
            del self.streams[sub.account_id]

    def drop(self, sub: Subscriber, code: int) -> None:
        """Stop serving ``sub`` now and free its queue; the socket closes with ``code``."""
        self.detach(sub)
        sub.queue.clear()
        if not sub.dropped.done():
            sub.dropped.set_result(code)
            if code == CLOSE_SLOW_CONSUMER:
                WS_SLOW_CLOSES.inc()

    # -- lifecycle -------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        self.tasks.spawn(coro, name=name)

    def _warn_db(self, doing: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_db_warning > 10:
            self._last_db_warning = now
            log.warning("ws hub: database unavailable while %s (%s: %s)", doing, type(exc).__name__, exc)


def install(ctx: AppContext) -> None:
    """Create the hub, listen to the broker, and run the periodic check (wired in ``gateway.app``)."""
    hub = WsHub(ctx.pool, ctx.tasks, check_interval=ctx.settings.gateway_ws_check_interval)
    ctx.extras["ws_hub"] = hub
    ctx.broker.add_listener(hub.on_event)
    add_reconnect = getattr(ctx.broker, "add_reconnect_listener", None)
    if add_reconnect is not None:
        add_reconnect(hub.on_broker_reconnect)

    async def start(ctx: AppContext) -> None:
        start_broker = getattr(ctx.broker, "start", None)
        if start_broker is not None:
            start_broker(ctx.tasks)
        ctx.tasks.spawn(hub.watch(), name="ws-hub-check")

    async def stop(ctx: AppContext) -> None:
        close_broker = getattr(ctx.broker, "close", None)
        if close_broker is not None:
            await close_broker()

    ctx.extras.setdefault("starters", []).append(start)
    ctx.extras.setdefault("stoppers", []).append(stop)
