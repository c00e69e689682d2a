"""/ws while PostgreSQL is unreachable: refuse what needs the database (1013), keep live sockets serving."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from tests.server import run_server
from tests.tcp_proxy import through
from tests.ws.helpers import make_account, seqs, write_events, ws_connect


async def test_during_a_database_outage_new_sockets_get_1013_and_live_ones_keep_receiving(db_url, pool, db_proxy):
    account_id, key = await make_account(pool)
    async with (
        run_server(through(db_url, db_proxy.port), gateway_workers=False) as srv,
        ws_connect(srv.ws_url, key) as live,
        ws_connect(srv.ws_url, key) as idle,
    ):
        await live.subscribe(["account"])
        await live.send({"type": "ping"})  # answered once the subscribe (and its log read) is done
        assert await live.recv() == {"type": "pong"}
        await db_proxy.cut()
        async with ws_connect(srv.ws_url, key) as newcomer:
            with pytest.raises(ConnectionClosed) as closed:
                await newcomer.recv()
            assert closed.value.rcvd.code == 1013
        # A subscribe needs the log: refused the same way, the client resumes later with after.
        with pytest.raises(ConnectionClosed) as closed:
            await idle.send({"type": "subscribe", "topics": ["account"], "after": 0})
            await idle.recv()
        assert closed.value.rcvd.code == 1013
        # Events committed elsewhere (this test's own pool bypasses the cut) still reach live sockets.
        await write_events(pool, account_id, 3, broker=srv.ctx.broker)
        assert seqs(await live.events_until(3)) == [1, 2, 3]
        await live.send({"type": "ping"})
        assert await live.recv() == {"type": "pong"}
