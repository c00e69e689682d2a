"""Exactly one node runs each channel's connection; another takes over when it dies."""

from __future__ import annotations

import asyncio
import logging

from gateway.broker import InProcessBroker
from gateway.channel_supervisor import ChannelSupervisor
from gateway.config import load_settings
from gateway.context import AppContext
from inbox.db import create_pool
from schema.enums import ChannelType
from tests.inbox.helpers import make_account_with_channel, make_channel


class Node:
    def __init__(self, name: str, ctx: AppContext, active: dict[int, set[str]], starts: list[tuple[str, int]],
                 stop_delay: float = 0.0):
        self.name = name
        self.ctx = ctx
        self.supervisor = ChannelSupervisor(ctx, interval=0.2)
        self.task: asyncio.Task[None] | None = None
        self.active = active
        self.starts = starts

        async def runner(ctx: AppContext, channel) -> None:
            starts.append((name, channel.id))
            active.setdefault(channel.id, set()).add(name)
            try:
                await asyncio.Event().wait()
            finally:
                active[channel.id].discard(name)
                if stop_delay:
                    await asyncio.sleep(stop_delay)  # a connection that takes a while to close

        ctx.runners[ChannelType.ASTERISK] = runner

    def start(self) -> None:
        self.task = asyncio.create_task(self.supervisor.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=10)
        assert self.task in done, "the supervisor did not stop when cancelled"
        assert self.task.cancelled()


async def _eventually(predicate, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls state other tasks change
            await asyncio.sleep(0.05)


async def _nodes(db_url: str, n: int, stop_delay: float = 0.0):
    active: dict[int, set[str]] = {}
    starts: list[tuple[str, int]] = []
    nodes = []
    for i in range(n):
        pool = await create_pool(db_url, max_size=3)
        ctx = AppContext(settings=load_settings(database_url=db_url), pool=pool, broker=InProcessBroker())
        nodes.append(Node(f"node{i}", ctx, active, starts, stop_delay))
    return nodes, active, starts


async def test_two_nodes_run_each_channel_once_and_the_survivor_takes_over(db_url, pool):
    _, _, channel = await make_account_with_channel(pool, type_="asterisk", provider_key="pbx:5038:gw")
    (a, b), active, starts = await _nodes(db_url, 2)
    try:
        a.start()
        b.start()
        await _eventually(lambda: len(active.get(channel.id, ())) == 1)
        passes = (a.supervisor.passes, b.supervisor.passes)
        await _eventually(lambda: a.supervisor.passes >= passes[0] + 3 and b.supervisor.passes >= passes[1] + 3)
        # Several passes of both nodes later: still exactly one runner.
        assert len(active[channel.id]) == 1 and len(starts) == 1
        holder, other = (a, b) if starts[0][0] == "node0" else (b, a)
        await holder.stop()
        await _eventually(lambda: active.get(channel.id) == {other.name})
        assert [s[0] for s in starts] == [holder.name, other.name]
    finally:
        for node in (a, b):
            if node.task and not node.task.done():
                await node.stop()
            await node.ctx.pool.close()


async def test_a_node_that_loses_its_database_session_stops_its_runner_and_another_takes_over(db_url, pool):
    _, _, channel = await make_account_with_channel(pool, type_="asterisk", provider_key="pbx:5038:gw")
    (a, b), active, _ = await _nodes(db_url, 2)
    try:
        a.start()
        await _eventually(lambda: active.get(channel.id) == {"node0"})
        b.start()
        # Kill node0's lease session from the server side, as a network partition would.
        await pool.execute(
            """SELECT pg_terminate_backend(pid) FROM pg_locks
               WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND granted""",
            0x1B0C, channel.id,
        )
        await _eventually(lambda: active.get(channel.id) == {"node1"})
    finally:
        for node in (a, b):
            if node.task and not node.task.done():
                await node.stop()
            await node.ctx.pool.close()


async def test_changing_a_channel_restarts_its_runner_and_deleting_it_stops_it(db_url, pool):
    _, _, channel = await make_account_with_channel(pool, type_="asterisk", provider_key="pbx:5038:gw")
    (a,), active, starts = await _nodes(db_url, 1)
    try:
        a.start()
        await _eventually(lambda: active.get(channel.id) == {"node0"})
        await pool.execute("UPDATE channels SET config = '{\"host\": \"new\"}', updated_at = now() WHERE id = $1",
                           channel.id)
        await _eventually(lambda: len(starts) == 2 and active.get(channel.id) == {"node0"})
        await pool.execute("UPDATE channels SET deleted_at = now() WHERE id = $1", channel.id)
        await _eventually(lambda: not active.get(channel.id))
    finally:
        await a.stop()
        await a.ctx.pool.close()


async def test_stopping_the_supervisor_while_it_restarts_a_slow_runner_stops_it(db_url, pool):
    _, _, channel = await make_account_with_channel(pool, type_="asterisk", provider_key="pbx:5038:gw")
    (a,), active, _ = await _nodes(db_url, 1, stop_delay=1.0)
    try:
        a.start()
        await _eventually(lambda: active.get(channel.id) == {"node0"})
        await pool.execute("UPDATE channels SET updated_at = now() WHERE id = $1", channel.id)
        await _eventually(lambda: not active.get(channel.id))  # the old runner is winding down
        await a.stop()  # a swallowed cancellation would leave it running
    finally:
        await a.ctx.pool.close()


async def test_a_runner_that_ignores_its_cancellation_is_abandoned_and_every_other_channel_is_still_served(
        db_url, pool, caplog):
    account_id, _, stubborn = await make_account_with_channel(pool, type_="asterisk", provider_key="pbx:1:gw")
    other = await make_channel(pool, account_id, type_="asterisk", provider_key="pbx:2:gw")
    ctx = AppContext(settings=load_settings(database_url=db_url), pool=pool, broker=InProcessBroker())
    released = asyncio.Event()
    starts: list[int] = []
    active: set[int] = set()

    async def runner(ctx: AppContext, channel) -> None:
        starts.append(channel.id)
        active.add(channel.id)
        try:
            if channel.id != stubborn.id:
                await asyncio.Event().wait()
            while not released.is_set():
                try:
                    await released.wait()
                except asyncio.CancelledError:
                    continue  # the bug this test is about: a runner that swallows its cancellation
        finally:
            active.discard(channel.id)

    ctx.runners[ChannelType.ASTERISK] = runner
    supervisor = ChannelSupervisor(ctx, interval=0.2, stop_timeout=0.5)
    task = asyncio.create_task(supervisor.run())
    try:
        await _eventually(lambda: supervisor.running == {stubborn.id, other.id})
        with caplog.at_level(logging.ERROR, logger="gateway.supervise"):
            await pool.execute("UPDATE channels SET deleted_at = now() WHERE id = $1", stubborn.id)
            supervisor.wake()
            await _eventually(lambda: supervisor.abandoned == {stubborn.id})
        assert any("abandoned" in r.getMessage() and f"-{stubborn.id}" in r.getMessage() for r in caplog.records)
        assert stubborn.id in active  # still running: abandoned, not waited for

        # The supervisor goes on: a new channel starts, a changed one restarts.
        third = await make_channel(pool, account_id, type_="asterisk", provider_key="pbx:3:gw")
        await pool.execute("UPDATE channels SET updated_at = now() WHERE id = $1", other.id)
        supervisor.wake()
        await _eventually(lambda: supervisor.running == {other.id, third.id} and starts.count(other.id) == 2)

        # Its shutdown is bounded too, though the abandoned runner still ignores every cancellation.
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert task in done and task.cancelled()
        assert active == {stubborn.id}
    finally:
        released.set()
        task.cancel()
        await asyncio.wait({task}, timeout=10)
    await _eventually(lambda: not active)
