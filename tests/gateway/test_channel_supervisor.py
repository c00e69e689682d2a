"""Exactly one node runs each channel's connection; another takes over when it dies."""

from __future__ import annotations

import asyncio

from gateway.broker import InProcessBroker
from gateway.channel_supervisor import ChannelSupervisor
from gateway.config import load_settings
from gateway.context import AppContext
from inbox.db import create_pool
from schema.enums import ChannelType
from tests.inbox.helpers import make_account_with_channel


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
        await asyncio.sleep(1.0)  # several passes: still exactly one runner
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
