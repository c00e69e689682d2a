"""Two real gateway processes against one PBX: one AMI connection, each event applied once, takeover
when the holder is killed (-9) or stopped (SIGTERM)."""

from __future__ import annotations

import asyncio
import signal

import psutil
import pytest

from inbox.accounts import create_account
from tests.asterisk.helpers import eventually
from tests.fakes.ami_server import FakeAmiServer, trace_events
from tests.sealed import seal
from tests.ws.helpers import gateway_process


def _holds_ami_connection(pid: int, port: int) -> bool:
    return any(c.raddr and c.raddr.port == port for c in psutil.Process(pid).net_connections(kind="tcp"))


async def _lease_refused(pool, times: int) -> None:
    """Until a node has tried for a channel lease (and, holding none yet, been refused) ``times`` times:
    each try is a new ``state_change`` of its lease session in pg_stat_activity."""
    seen: set[tuple[int, object]] = set()
    async with asyncio.timeout(30):
        while len(seen) < times:
            rows = await pool.fetch(
                """SELECT pid, state_change FROM pg_stat_activity
                   WHERE datname = current_database() AND query = 'SELECT pg_try_advisory_lock($1, $2)'""")
            seen.update((r["pid"], r["state_change"]) for r in rows)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill_9", "sigterm"])
async def test_two_gateway_processes_share_one_pbx_and_the_survivor_takes_over(db_url, pool, stop):
    """kill -9: PostgreSQL drops the dead node's lease session. SIGTERM: the graceful shutdown
    releases the lease itself (gateway.shutdown step 4) and exits 0."""
    account_id, _ = await create_account(pool, "acme")
    env = {"GATEWAY_WORKERS": "true", "GATEWAY_LEASE_INTERVAL": "0.3"}
    async with FakeAmiServer() as pbx, gateway_process(db_url, **env) as a, gateway_process(db_url, **env) as b:
        await pool.execute(
            """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
               VALUES ($1, 'asterisk', 'PBX', $2, $3, $4)""",
            account_id,
            {"host": "127.0.0.1", "port": pbx.port, "username": "gateway", "inbound_contexts": ["from-carrier"],
             "agent_pattern": r"PJSIP/1\d{3}"},
            seal({"secret": "s3cret"}),
            f"127.0.0.1:{pbx.port}:gateway",
        )
        await pbx.wait_logged_in(1, within=30)
        await _lease_refused(pool, 4)  # several lease rounds of the standby later: still one connection
        assert pbx.logged_in == 1 and pbx.login_attempts == 1
        holders = [p for p in (a, b) if _holds_ami_connection(p.pid, pbx.port)]
        assert len(holders) == 1
        holder, standby = (a, b) if holders[0] is a else (b, a)

        pbx.emit(trace_events("inbound_answered.ami"))
        await eventually(lambda: pool.fetchval("SELECT count(*) = 1 FROM calls WHERE status = 'ended'"), within=20)

        holder.proc.send_signal(stop)
        code = await asyncio.wait_for(holder.proc.wait(), 30)
        if stop == signal.SIGTERM:
            assert code == 0
        await pbx.wait_until(lambda: pbx.login_attempts >= 2 and pbx.logged_in == 1, within=30)
        assert _holds_ami_connection(standby.pid, pbx.port)

        pbx.emit(trace_events("recorded_call.ami"))
        await eventually(lambda: pool.fetchval("SELECT count(*) = 2 FROM calls WHERE status = 'ended'"), within=20)
        assert await pool.fetchval("SELECT count(*) FROM calls") == 2
        assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'call.created'") == 2
        assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'call.ended'") == 2
        duplicates = await pool.fetch("SELECT call_id, dedup_key FROM call_events GROUP BY 1, 2 HAVING count(*) > 1")
        assert duplicates == []
