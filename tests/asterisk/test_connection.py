"""Our panoramisk adapter against the fake AMI server over real TCP."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.asterisk.backoff import Backoff
from channels.asterisk.connection import (
    AmiActionUnknown,
    AmiAuthError,
    AmiConnectError,
    AmiConnection,
    AmiConnectionLost,
)
from tests.fakes.ami_server import FakeAmiServer, get, trace_events
from tests.redis_server import free_port


def connect(server: FakeAmiServer, secret: str = "s3cret") -> AmiConnection:
    return AmiConnection(host="127.0.0.1", port=server.port, username="gateway", secret=secret,
                         connect_timeout=5, action_timeout=5)


async def drain(conn: AmiConnection) -> list[dict[str, str]]:
    out = []
    with pytest.raises(AmiConnectionLost):
        while True:
            out.append(await conn.next_event())
    return out


async def test_login_then_events_arrive_in_wire_order():
    async with FakeAmiServer() as server:
        conn = connect(server)
        await conn.open()
        assert (await conn.next_event())["event"] == "FullyBooted"
        events = trace_events("inbound_answered.ami")
        server.emit(events)
        got = [await conn.next_event() for _ in events]
        assert [e["event"] for e in got] == [get(f, "Event") for f in events]
        assert got[0]["linkedid"] == "1741947613.212"
        conn.close()


async def test_a_wrong_secret_is_an_auth_error_and_the_server_closes():
    async with FakeAmiServer() as server:
        with pytest.raises(AmiAuthError, match="Authentication failed"):
            await connect(server, secret="wrong").open()
        assert (server.login_attempts, server.failed_logins) == (1, 1)


async def test_nobody_listening_is_a_connect_error():
    conn = AmiConnection(host="127.0.0.1", port=free_port(), username="u", secret="s", connect_timeout=2)
    with pytest.raises(AmiConnectError):
        await conn.open()


async def test_ping_gets_pong_and_a_silent_server_is_detected_as_dead():
    async with FakeAmiServer() as server:
        conn = connect(server)
        await conn.open()
        await conn.ping(answer_within=2)
        server.answer_pings = False
        with pytest.raises(AmiConnectionLost, match="Ping"):
            await conn.ping(answer_within=0.2)
        assert conn.closed
        events = await drain(conn)
        assert [e["event"] for e in events] == ["FullyBooted"]


async def test_events_received_before_a_drop_are_delivered_before_the_loss():
    async with FakeAmiServer() as server:
        conn = connect(server)
        await conn.open()
        server.emit(trace_events("inbound_noanswer.ami")[:3])
        await conn.ping(answer_within=2)  # the events were written before the Pong
        server.drop()
        events = await drain(conn)
        assert [e["event"] for e in events] == ["FullyBooted", "Newchannel", "Newexten", "Newchannel"]


async def test_core_show_channels_answers_then_lists_channels_as_events():
    async with FakeAmiServer() as server:
        server.emit(trace_events("inbound_answered.ami")[:16])  # up to the bridge, nobody connected
        conn = connect(server)
        await conn.open()
        reply = await conn.send({"Action": "CoreShowChannels", "ActionID": "gw-resync-1"})
        assert reply["eventlist"] == "start"
        listed = []
        while True:
            e = await conn.next_event()
            if e["event"] == "CoreShowChannelsComplete":
                break
            if e["event"] == "CoreShowChannel":
                listed.append(e)
        assert {e["uniqueid"] for e in listed} == {"1741947613.212", "1741947613.213"}
        assert {e["bridgeid"] for e in listed} == {"3f9a2c61-5e0b-4d7a-9c3e-8b1f0a6d2e47"}
        assert all(e["actionid"] == "gw-resync-1" for e in listed)
        conn.close()


async def test_an_originate_cut_off_by_a_drop_is_unknown_and_never_sent_again():
    async with FakeAmiServer() as server:
        server.originate_mode = "drop"
        conn = connect(server)
        await conn.open()
        with pytest.raises(AmiActionUnknown):
            await conn.send({"Action": "Originate", "Channel": "PJSIP/1001", "Exten": "+15551234567",
                             "Context": "from-internal", "Priority": "1", "Async": "true", "ChannelId": "gw-x"})
        await drain(conn)
        # A new session (what the runner does next) sends only what it is asked to.
        server.originate_mode = "answer"
        again = connect(server)
        await again.open()
        await again.ping(answer_within=2)
        await again.send({"Action": "CoreShowChannels"})
        assert len(server.originates) == 1
        assert [get(a, "Action") for a in server.actions].count("Originate") == 1
        again.close()


async def test_an_action_sent_after_the_loss_fails_at_once():
    async with FakeAmiServer() as server:
        conn = connect(server)
        await conn.open()
        server.drop()
        await drain(conn)
        with pytest.raises(AmiConnectionLost):
            await conn.send({"Action": "Ping"})


def test_backoff_grows_from_one_second_to_a_sixty_second_cap():
    b = Backoff(rng=lambda: 1.0)
    assert [b.next_delay() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    b.reset()
    assert b.next_delay() == 1


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=20, max_size=20))
def test_backoff_never_allows_more_than_six_attempts_in_thirty_seconds(randoms):
    it = iter(randoms)
    b = Backoff(rng=lambda: next(it))
    times = [0.0]
    for _ in range(19):
        times.append(times[-1] + b.next_delay())
    for start in times:
        assert sum(1 for t in times if start <= t < start + 30) <= 6


async def test_the_recorded_login_failure_is_an_auth_error():
    """login_failed.ami as on the wire (banner, Response: Error, then the server closes)."""
    from tests.fakes.ami_server import FIXTURES

    raw = (FIXTURES / "login_failed.ami").read_bytes()
    banner, _, reply = raw.partition(b"\r\n")

    async def replay(reader, writer):
        writer.write(banner + b"\r\n")
        action = await reader.readuntil(b"\r\n\r\n")
        action_id = next(line.split(b": ", 1)[1] for line in action.split(b"\r\n") if line.startswith(b"ActionID"))
        writer.write(reply.replace(b"gw-login-9", action_id))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(replay, "127.0.0.1", 0)
    try:
        conn = AmiConnection(host="127.0.0.1", port=server.sockets[0].getsockname()[1], username="gateway",
                             secret="wrong", connect_timeout=5, action_timeout=5)
        with pytest.raises(AmiAuthError, match="Authentication failed"):
            await conn.open()
    finally:
        server.close()
        await server.wait_closed()
