"""AMI settings cannot inject actions, scan ports, reach hosts the operator did not allow, or stall the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from channels.asterisk.config import AgentMatcher
from channels.asterisk.connection import AmiActionRefused, AmiAuthError, AmiConnection
from channels.netpolicy import NetworkPolicy, NetworkRefused
from inbox.accounts import create_account
from tests.asterisk.helpers import eventually
from tests.asterisk.test_calls_api import FAST, ami_channel
from tests.fakes.ami_server import FakeAmiServer, Fields, get, trace_events
from tests.server import run_server

INJECTION = "gw\r\n\r\nAction: Originate\r\nChannel: PJSIP/1001\r\nExten: 900"


def serve(db_url, **settings):
    return run_server(db_url, gateway_lease_interval=0.2, extras={"asterisk_options": FAST}, **settings)


def with_config(pbx: FakeAmiServer, **config) -> dict:
    body = ami_channel(pbx)
    body["config"].update(config)
    return body


@pytest.fixture
async def pbx() -> AsyncIterator[FakeAmiServer]:
    async with FakeAmiServer() as server:
        yield server


# --- CR/LF/NUL ------------------------------------------------------------------------------------

BAD_VALUES = [("username", INJECTION), ("username", "gw\nx"), ("host", "127.0.0.1\r\nAction: Ping"),
              ("agent_pattern", "PJSIP/1\\d{3}\r\nAction: Ping"), ("originate_context", "from-internal\rx"),
              ("originate_channel", "PJSIP/{agent}\nAction: Ping"), ("inbound_contexts", ["from-carrier\r\nx"]),
              ("monitor_dir", "/var/spool\n"), ("some_extra", "a\r\nb")]


async def test_cr_lf_and_nul_in_any_ami_value_are_refused_at_create_and_update(db_url, pbx):
    async with serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            for field, value in BAD_VALUES:
                r = await http.post("/api/v1/channels", json=with_config(pbx, **{field: value}))
                assert r.status_code == 422, (field, r.text)
            for secret in ("s3cret\r\nAction: Originate", "s3cret\nx", "s3\x00cret"):
                r = await http.post("/api/v1/channels", json=ami_channel(pbx, secret=secret))
                assert r.status_code == 422, r.text
            assert (await http.get("/api/v1/channels")).json()["items"] == []

            created = await http.post("/api/v1/channels", json=ami_channel(pbx))
            assert created.status_code == 201, created.text
            channel = created.json()
            for field, value in BAD_VALUES:
                r = await http.patch(f"/api/v1/channels/{channel['id']}", json={"config": {field: value}})
                assert r.status_code == 422, (field, r.text)
            r = await http.patch(f"/api/v1/channels/{channel['id']}", json={"secrets": {"secret": "x\r\ny"}})
            assert r.status_code == 422, r.text
            assert (await http.get(f"/api/v1/channels/{channel['id']}")).json()["config"] == channel["config"]
    assert not [a for a in pbx.actions if get(a, "Action").lower() == "originate"]
    assert {get(a, "Username") for a in pbx.actions if get(a, "Action").lower() == "login"} <= {"gateway"}


async def test_the_connection_never_writes_a_value_holding_a_line_break(pbx):
    # Values stored before they were checked, or built by the gateway: refused at the wire.
    hostile = AmiConnection(host="127.0.0.1", port=pbx.port, username=INJECTION, secret="s3cret")
    with pytest.raises(AmiAuthError, match="CR, LF or NUL"):
        await hostile.open()
    conn = AmiConnection(host="127.0.0.1", port=pbx.port, username="gateway", secret="s3cret")
    await conn.open()
    try:
        for action in ({"Action": "Originate", "Exten": "900\r\nAction: Hangup"},
                       {"Action": "Ping\nAction: Originate"}, {"Action": "Ping", "X\r\nY": "z"}):
            with pytest.raises(AmiActionRefused):
                await conn.send(action)
        assert (await conn.send({"Action": "Ping"}))["response"].lower() == "success"
    finally:
        conn.close()
    names = [get(a, "Action").lower() for a in pbx.actions]
    assert names == ["login", "ping"]
    assert [get(a, "Username") for a in pbx.actions if get(a, "Action").lower() == "login"] == ["gateway"]


# --- one message for every kind of unreachable ------------------------------------------------------


@contextlib.asynccontextmanager
async def tcp_service(reply) -> AsyncIterator[int]:
    """A loopback TCP service that is not AMI: ``reply(line)`` answers each line (None: stays silent)."""
    handlers: set[asyncio.Task] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())
        try:
            while line := await reader.readline():
                answer = reply(line)
                if answer:
                    writer.write(answer)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def closed_port() -> int:
    from tests.redis_server import free_port
    return free_port()


async def test_an_unreachable_pbx_reads_the_same_whatever_listens_there(db_url, caplog):
    caplog.set_level(logging.DEBUG)
    redis_like = tcp_service(lambda line: b"-ERR unknown command\r\n")
    echo = tcp_service(lambda line: line)
    silent = tcp_service(lambda line: None)
    async with redis_like as redis_port, echo as echo_port, silent as silent_port, serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        ports = {"closed": closed_port(), "redis": redis_port, "echo": echo_port, "silent": silent_port}
        ids = {}
        async with srv.client(key) as http:
            for kind, port in ports.items():
                body = {"type": "asterisk", "name": kind, "secrets": {"secret": "s3cret"},
                        "config": {"host": "127.0.0.1", "port": port, "username": f"gw-{kind}"}}
                r = await http.post("/api/v1/channels", json=body)
                assert r.status_code == 201, (kind, r.text)  # an unreachable PBX is accepted, as before
                ids[kind] = r.json()["id"]

            async def states():
                rows = await srv.ctx.pool.fetch("SELECT id, state->'ami' AS ami FROM channels")
                got = {r["id"]: r["ami"] for r in rows if r["ami"] and r["ami"]["status"] == "unreachable"}
                return got if len(got) == len(ids) else None

            got = await eventually(states, within=30)
            for kind, port in ports.items():
                assert got[ids[kind]]["error"] == f"no AMI server answered at 127.0.0.1:{port}", kind
                r = await http.post("/api/v1/calls", json={"channel_id": ids[kind], "agent": "1001",
                                                           "to_number": "+15551234567"})
                assert r.status_code == 503
                assert f"unreachable: no AMI server answered at 127.0.0.1:{port}" in r.json()["error"]["message"]
    ami_lines = [r.getMessage() for r in caplog.records if "AMI" in r.getMessage() or "asterisk" in r.name]
    assert any("no AMI server answered" in line for line in ami_lines)
    for line in ami_lines:
        for tell in ("Refused", "ERR", "Action", "Reset", "Timeout", "did not answer", "errno"):
            assert tell not in line, line


# --- GATEWAY_CHANNEL_ALLOWED_NETWORKS --------------------------------------------------------------


def test_the_allowed_networks_setting_parses_networks_and_names():
    policy = NetworkPolicy.parse(" 10.0.0.0/8, 192.168.1.20 ,fd00::/8,pbx.example.com,*.corp.example")
    assert [str(n) for n in policy.networks] == ["10.0.0.0/8", "192.168.1.20/32", "fd00::/8"]
    assert NetworkPolicy.parse("").allows_any and not policy.allows_any
    for bad in ("10.0.0.0/33x", "*.", "a b", "http://x"):
        with pytest.raises(ValueError):
            NetworkPolicy.parse(bad)


async def test_a_host_is_allowed_by_network_by_name_or_by_every_address_it_resolves_to():
    policy = NetworkPolicy.parse("10.0.0.0/8,pbx.example.com,*.corp.example")
    assert await policy.resolve("10.1.2.3", 5038) == ["10.1.2.3"]
    assert await policy.resolve("::ffff:10.1.2.3", 5038) == ["::ffff:10.1.2.3"]
    assert await policy.resolve("pbx.example.com", 5038) == ["pbx.example.com"]
    assert await policy.resolve("a.corp.example", 5038) == ["a.corp.example"]
    for refused in ("127.0.0.1", "169.254.169.254", "localhost", "::1", "no-such-host.invalid"):
        with pytest.raises(NetworkRefused):
            await policy.resolve(refused, 5038)
    loopback = NetworkPolicy.parse("127.0.0.0/8,::1/128")
    assert set(await loopback.resolve("localhost", 5038)) <= {"127.0.0.1", "::1"}


async def test_channels_may_only_point_at_allowed_networks(db_url, pbx):
    async with serve(db_url, gateway_channel_allowed_networks="10.0.0.0/8,pbx.example.com") as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            for host in ("127.0.0.1", "localhost", "169.254.169.254"):
                r = await http.post("/api/v1/channels", json=with_config(pbx, host=host))
                assert r.status_code == 422, r.text
                assert r.json()["error"]["code"] == "host_not_allowed"
            assert (await http.get("/api/v1/channels")).json()["items"] == []
    assert pbx.login_attempts == 0

    async with serve(db_url, gateway_channel_allowed_networks="127.0.0.0/8,::1/128") as srv:
        _, key = await create_account(srv.ctx.pool, "beta")
        async with srv.client(key) as http:
            created = await http.post("/api/v1/channels", json=with_config(pbx, host="localhost"))
            assert created.status_code == 201, created.text
            await pbx.wait_logged_in()
            url = f"/api/v1/channels/{created.json()['id']}"
            for host in ("10.1.1.1", "169.254.169.254"):
                r = await http.patch(url, json={"config": {"host": host}})
                assert r.status_code == 422 and r.json()["error"]["code"] == "host_not_allowed", r.text
            assert (await http.get(url)).json()["config"]["host"] == "localhost"


async def test_a_stored_host_name_resolving_outside_the_allowed_networks_is_refused_at_connect(db_url, pbx):
    # Stored before the operator restricted the networks (or its DNS changed since): checked at every connect.
    async with serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            created = await http.post("/api/v1/channels", json=with_config(pbx, host="localhost"))
            assert created.status_code == 201, created.text
            await pbx.wait_logged_in()
    logins = pbx.login_attempts
    async with serve(db_url, gateway_channel_allowed_networks="10.0.0.0/8") as srv:
        async def refused():
            ami = await srv.ctx.pool.fetchval("SELECT state->'ami' FROM channels WHERE id = $1",
                                              created.json()["id"])
            return ami if ami and ami["status"] == "host_not_allowed" else None

        ami = await eventually(refused, within=20)
    assert "GATEWAY_CHANNEL_ALLOWED_NETWORKS" in ami["error"]
    assert pbx.login_attempts == logins


# --- agent_pattern: linear time ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_an_exponential_backtracking_pattern_matches_in_linear_time():
    agents = AgentMatcher(r"PJSIP/(a+)+b")
    assert agents.agent_of("PJSIP/" + "a" * 100_000 + "-00000001") is None
    assert agents.agent_of("PJSIP/aab-00000001") == "aa"
    assert AgentMatcher(r"PJSIP/1\d{3}").agent_of("PJSIP/1001\ud800-1") is None  # a lone surrogate never raises


async def test_patterns_re2_cannot_compile_are_refused(db_url, pbx):
    async with serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            for bad in (r"PJSIP/(\d)\1", r"PJSIP/(?=1)\d+", r"PJSIP/(?<!x)1", "PJSIP/(1"):
                r = await http.post("/api/v1/channels", json=with_config(pbx, agent_pattern=bad))
                assert r.status_code == 422, (bad, r.text)
            created = await http.post("/api/v1/channels", json=ami_channel(pbx))
            r = await http.patch(f"/api/v1/channels/{created.json()['id']}",
                                 json={"config": {"agent_pattern": r"PJSIP/(\d)\1"}})
            assert r.status_code == 422, r.text


def with_long_caller_channel(events: list[Fields], length: int) -> list[Fields]:
    long_name = "PJSIP/" + "a" * length
    return [[(k, v.replace("PJSIP/carrier", long_name)) for k, v in event] for event in events]


@pytest.mark.timeout(60)
async def test_an_evil_pattern_and_a_long_channel_name_still_record_the_call(db_url, pbx):
    async with serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            created = await http.post("/api/v1/channels", json=with_config(pbx, agent_pattern=r"PJSIP/(a+)+b"))
            assert created.status_code == 201, created.text
            await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
            pbx.emit(with_long_caller_channel(trace_events("inbound_answered.ami"), 5000))

            async def ended():
                items = (await http.get("/api/v1/calls")).json()["items"]
                return items[0] if items and items[0]["status"] == "ended" else None

            call = await eventually(ended, within=30)
            assert call["direction"] == "inbound"
            assert (await http.get("/healthz")).status_code == 200
