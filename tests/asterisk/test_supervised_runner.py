"""The real AMI runner under the real channel supervisor: fake PBXs over TCP, real PostgreSQL.

Deleting a channel as its AMI socket drops used to leave the runner reconnecting
forever (its cancellation swallowed while it tore the session down) and the
supervisor waiting on it forever, so no other channel of the node was started again.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime

from gateway.asterisk_runtime import run_channel
from gateway.broker import InProcessBroker
from gateway.channel_supervisor import ChannelSupervisor
from gateway.config import load_settings
from gateway.context import AppContext
from inbox.accounts import create_account
from inbox.channels import get_channel_any_account
from inbox.originates import request_click_to_call
from schema.enums import ChannelType
from tests.asterisk.helpers import eventually
from tests.asterisk.test_runner import FAST
from tests.fakes.ami_server import FakeAmiServer
from tests.sealed import seal

ROUNDS = 20


async def _channel_on(pool, account_id: int, pbx: FakeAmiServer) -> int:
    config = {"host": "127.0.0.1", "port": pbx.port, "username": "gateway", "inbound_contexts": ["from-carrier"],
              "agent_pattern": r"PJSIP/1\d{3}"}
    return await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
           VALUES ($1, 'asterisk', 'PBX', $2, $3, $4) RETURNING id""",
        account_id, config, seal({"secret": "s3cret"}), f"127.0.0.1:{pbx.port}:gateway",
    )


async def _click_to_call(pool, channel_id: int) -> None:
    channel = await get_channel_any_account(pool, channel_id)
    async with pool.acquire() as conn, conn.transaction():
        await request_click_to_call(conn, channel=channel, agent="1001", to_number="+15551234567",
                                    at=datetime.now(UTC))


async def _delete_as_the_socket_drops(pool, supervisor: ChannelSupervisor, pbx: FakeAmiServer, channel_id: int,
                                      round_: int) -> None:
    """Both in the same turn of the event loop, in either order; every third round with an Originate in flight
    that the PBX answers by dropping the socket (the session then ends while it records that outcome)."""
    if round_ % 3 == 2:
        pbx.originate_mode = "drop"
        await _click_to_call(pool, channel_id)
        await pbx.wait_until(lambda: len(pbx.originates) == 1, within=5)
        await pool.execute("UPDATE channels SET deleted_at = now() WHERE id = $1", channel_id)
        supervisor.wake()
        return
    await pool.execute("UPDATE channels SET deleted_at = now() WHERE id = $1", channel_id)
    if round_ % 2:
        pbx.drop()
        supervisor.wake()
    else:
        supervisor.wake()
        pbx.drop()


async def test_deleting_channels_as_their_ami_sockets_drop_never_stalls_the_supervisor(db_url, pool):
    ctx = AppContext(settings=load_settings(database_url=db_url), pool=pool, broker=InProcessBroker())
    ctx.extras["asterisk_options"] = FAST
    ctx.runners[ChannelType.ASTERISK] = run_channel
    supervisor = ChannelSupervisor(ctx, interval=0.2, stop_timeout=5)
    account_id, _ = await create_account(pool, "acme")
    deleted: list[tuple[FakeAmiServer, int, int]] = []  # (its PBX, its channel, logins seen when it stopped)
    async with AsyncExitStack() as servers:
        task = asyncio.create_task(supervisor.run())
        try:
            async with asyncio.timeout(120):
                for round_ in range(ROUNDS + 1):
                    pbx = await servers.enter_async_context(FakeAmiServer())
                    channel_id = await _channel_on(pool, account_id, pbx)
                    supervisor.wake()  # as the channels API does
                    # A new channel logs in within seconds: the supervisor is still serving.
                    await pbx.wait_logged_in(1, within=5)
                    if round_ == ROUNDS:
                        break
                    await _delete_as_the_socket_drops(pool, supervisor, pbx, channel_id, round_)
                    # Its runner ended (not abandoned: it honoured the cancellation).
                    await eventually(lambda cid=channel_id: cid not in supervisor.running, within=5)
                    assert supervisor.abandoned == set()
                    deleted.append((pbx, channel_id, pbx.login_attempts))
                # Several more passes of the supervisor, then: no deleted channel came back.
                passes = supervisor.passes
                await eventually(lambda: supervisor.passes >= passes + 3)
            assert supervisor.running == {channel_id}
            for old_pbx, old_id, logins in deleted:
                assert (old_pbx.login_attempts, old_pbx.logged_in) == (logins, 0), f"deleted channel {old_id} is back"
        finally:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            assert task in done, "the supervisor did not stop when cancelled"
