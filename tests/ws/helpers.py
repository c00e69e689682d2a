"""Shared pieces of the /ws tests: accounts, event writers, a WebSocket client, gateway subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from gateway.broker import Broker
from inbox.accounts import create_account
from inbox.channels import ChannelRow, get_channel_any_account
from inbox.eventlog import EventRecord, PendingEvent, append
from schema.enums import EventName, MessageType
from schema.events import ContactRef, InboundMessage
from tests import log_leaks
from tests.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


async def make_account(pool: asyncpg.Pool, name: str = "acme") -> tuple[int, str]:
    return await create_account(pool, name)


async def write_events(
    pool: asyncpg.Pool,
    account_id: int,
    count: int,
    *,
    broker: Broker | None = None,
    per_tx: int = 1,
    name: EventName = EventName.MESSAGE_UPDATED,
    conversation_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> list[EventRecord]:
    """Commit ``count`` events through the real event log, ``per_tx`` per transaction, publishing each
    transaction's records after commit as every writer does (not at all when ``broker`` is None)."""
    written: list[EventRecord] = []
    while len(written) < count:
        n = min(per_tx, count - len(written))
        events = [PendingEvent(name, conversation_id, data or {"i": len(written) + i}) for i in range(n)]
        async with pool.acquire() as conn, conn.transaction():
            records = await append(conn, account_id, events)
        if broker is not None:
            await broker.publish(records)
        written.extend(records)
    return written


async def make_channel(pool: asyncpg.Pool, account_id: int, provider_key: str = "15550001") -> ChannelRow:
    channel_id = await pool.fetchval(
        "INSERT INTO channels (account_id, type, name, provider_key) VALUES ($1, 'whatsapp', 'wa', $2) RETURNING id",
        account_id,
        provider_key,
    )
    row = await get_channel_any_account(pool, channel_id)
    assert row is not None
    return row


def inbound_text(external_id: str, contact: str, text: str = "hallo") -> InboundMessage:
    return InboundMessage(
        external_id=external_id,
        contact=ContactRef(external_id=contact, name="Lena", phone="+" + contact),
        type=MessageType.TEXT,
        text=text,
        occurred_at=datetime(2026, 3, 14, 12, 0, tzinfo=UTC),
    )


class WsClient:
    """A real WebSocket client with frame helpers; every wait has a deadline."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.conn.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, within: float = 10) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.recv(), within)
        frame: dict[str, Any] = json.loads(raw)
        return frame

    async def subscribe(self, topics: Sequence[str], after: int | None = None) -> dict[str, Any]:
        await self.send({"type": "subscribe", "topics": list(topics), "after": after})
        frame = await self.recv()
        assert frame["type"] == "subscribed", frame
        return frame

    async def events_until(self, last_seq: int, within: float = 30) -> list[dict[str, Any]]:
        """Event frames up to and including ``last_seq`` (other frames fail the test)."""
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(within):
            while not got or got[-1]["seq"] < last_seq:
                frame = await self.recv(within)
                assert frame["type"] == "event", frame
                got.append(frame)
        return got

    async def silent_for(self, seconds: float) -> bool:
        """True when no frame arrives within ``seconds``."""
        try:
            frame = await asyncio.wait_for(self.conn.recv(), seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected frame {frame!r}")


class StuckClient:
    """A WebSocket client that reads nothing until told to: a raw socket with a small receive
    buffer, framed by websockets' sans-I/O protocol. (The asyncio client library keeps reading
    into memory even when its queue is full, so it cannot play a client that stopped reading.)"""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol

    @classmethod
    async def connect(cls, port: int, token: str) -> StuckClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws?token={token}"))
        protocol.send_request(protocol.connect())
        client = cls(sock, protocol)
        await client._flush()
        while not any(isinstance(e, Response) for e in protocol.events_received()):
            data = await loop.sock_recv(sock, 4096)
            assert data, "closed during the handshake"
            protocol.receive_data(data)
        return client

    async def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                await asyncio.get_running_loop().sock_sendall(self.sock, chunk)

    async def send(self, frame: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(frame).encode())
        await self._flush()

    async def read_to_close(self, within: float = 30) -> tuple[int, int | None]:
        """Read everything now: ``(text frames received, close code or None if none came)``."""
        loop = asyncio.get_running_loop()
        frames = 0
        async with asyncio.timeout(within):
            while True:
                data = await loop.sock_recv(self.sock, 1 << 16)
                if not data:
                    self.protocol.receive_eof()
                else:
                    self.protocol.receive_data(data)
                for event in self.protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                        frames += 1
                    elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                        received = self.protocol.close_rcvd
                        return frames, None if received is None else received.code
                if not data:
                    return frames, None

    def close(self) -> None:
        self.sock.close()


@contextlib.asynccontextmanager
async def ws_connect(ws_url: str, token: str | None = None, **kwargs: Any) -> AsyncIterator[WsClient]:
    url = f"{ws_url}/ws" + (f"?token={token}" if token else "")
    async with websockets.connect(url, open_timeout=10, **kwargs) as conn:
        yield WsClient(conn)


async def eventually(predicate: Callable[[], bool], within: float = 10) -> None:
    """Poll a condition owned by something that offers nothing to await (a broker's health)."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


def seqs(frames: Sequence[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames]


@dataclass
class GatewayProcess:
    """A gateway in a process of its own: ``python -m gateway serve``, as deployed."""

    proc: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.asynccontextmanager
async def gateway_process(db_url: str, **env: str) -> AsyncIterator[GatewayProcess]:
    port = free_port()
    full_env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_WORKERS": "false",
        "GATEWAY_LOG_LEVEL": log_leaks.SERVER_LOG_LEVEL,
        **env,
    }
    log_path = log_leaks.server_log("gateway-process")
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            # stdout too: uvicorn's access log goes there.
            sys.executable, "-m", "gateway", "serve", cwd=REPO, env=full_env, stdout=log_file, stderr=log_file
        )
    gateway = GatewayProcess(proc, port, log_path)
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(300):
                if proc.returncode is not None:
                    raise RuntimeError(f"gateway process exited with {proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{gateway.url}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("gateway process did not start")
        yield gateway
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_ready(url: str, expect: int, within: float = 60, status: str | None = None) -> dict[str, Any]:
    """Poll /readyz until it answers ``expect`` (and, if given, the body's ``status``)."""
    async with httpx.AsyncClient(timeout=5) as http, asyncio.timeout(within):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await http.get(f"{url}/readyz")
                if response.status_code == expect:
                    body: dict[str, Any] = response.json()
                    return body
            await asyncio.sleep(0.1)
