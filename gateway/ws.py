"""``GET /ws``: live events over a WebSocket (DESIGN §7).

A connection is three tasks: the reader (client frames, in order — a
subscribe with ``after`` replays before the next frame is read), the writer
(drains the bounded queue onto the socket), and this endpoint waiting for the
first of them to end or for the hub to drop the subscriber (slow consumer).

Semantics the contract leaves open:

- ``subscribed.topics`` lists every topic the connection holds after the
  frame (an ``unsubscribe`` is answered with ``subscribed`` too);
- a connection has one position in its account's seq: ``after`` sets it when
  the connection holds no topic (``null``: the latest seq; a value beyond the
  latest is taken as the latest). Topics added later join at the current
  position; ``after`` on a connection that already streams is refused;
- a frame naming a conversation of another account, or one that does not
  exist, is refused whole with ``not_found``: nothing of it is applied.

Error frame codes: ``malformed_frame`` (not a JSON object, binary, too
large), ``unknown_type``, ``invalid_frame`` (fields), ``invalid_topic``,
``not_found``, ``too_many_topics``, ``already_streaming``.

Auth: ``?token=``, ``Authorization: Bearer``, or (browsers) the subprotocols
``inbox-gateway.v1`` and ``inbox-gateway.bearer.<key>`` offered together.

Close codes: 4401 bad or missing API key, or the key was revoked
(``gateway.key_revocation``); 4008 send queue overflowed (resume with
``after``); 4429 the key already holds ``GATEWAY_WS_MAX_PER_KEY`` open
sockets on this process; 1009 a frame over 64 KiB (refused by the server
before it is buffered); 1013 the database is unreachable (retry later); 1001
the process is shutting down (reconnect, through the load balancer, with
``after``); 1011 an unexpected server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gateway.config import WS_MAX_FRAME_BYTES
from gateway.context import AppContext
from gateway.key_revocation import key_sockets
from gateway.ws_hub import DB_ERRORS, WS_CONNECTIONS, Subscriber, WsHub
from gateway.ws_limits import CLOSE_TOO_MANY_SOCKETS, SocketQuota, TooManySockets
from inbox.accounts import authenticate
from schema.ws import (
    MAX_TOPICS,
    ErrorFrame,
    FrameError,
    PingFrame,
    PongFrame,
    SubscribedFrame,
    SubscribeFrame,
    Topic,
    UnsubscribeFrame,
    dump,
    parse_client_frame,
    parse_topics,
)

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_INTERNAL_ERROR = 1011
# How long a close may wait for a client that stopped reading to take the
# close frame. ASGI has no way to abort a socket: after this the app lets go
# and the server closes the transport, whose buffer is bounded by its
# high-water mark.
CLOSE_GRACE = 10.0
# Client frames are small (at most MAX_TOPICS topics); bigger ones are not parsed
# (the server already refuses frames over this many bytes: gateway.serve).
MAX_CLIENT_FRAME = WS_MAX_FRAME_BYTES


# Browsers cannot set headers on a WebSocket: they offer these two subprotocols,
# the second carrying the key; the server selects the first, so the key is never echoed.
WS_PROTOCOL = "inbox-gateway.v1"
WS_KEY_PROTOCOL_PREFIX = "inbox-gateway.bearer."


def _token(websocket: WebSocket) -> str | None:
    if token := websocket.query_params.get("token"):
        return token
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return _protocol_token(websocket)


def _protocol_token(websocket: WebSocket) -> str | None:
    for offered in websocket.scope.get("subprotocols", []):
        if offered.startswith(WS_KEY_PROTOCOL_PREFIX) and len(offered) > len(WS_KEY_PROTOCOL_PREFIX):
            return str(offered[len(WS_KEY_PROTOCOL_PREFIX):])
    return None


def _selected_protocol(websocket: WebSocket) -> str | None:
    return WS_PROTOCOL if WS_PROTOCOL in websocket.scope.get("subprotocols", []) else None


class WsEndpoint:
    """The ASGI app of ``/ws``. An app rather than a Starlette endpoint function so that the
    writer can hand frames straight to the server's ``send``: the path that runs once per
    delivery skips Starlette's per-message wrappers (state checks, exception shims)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_socket(WebSocket(scope, receive=receive, send=send), send)


async def serve_socket(websocket: WebSocket, send: Send) -> None:
    ctx: AppContext = websocket.app.state.ctx
    hub: WsHub = ctx.extras["ws_hub"]
    await websocket.accept(subprotocol=_selected_protocol(websocket))
    token = _token(websocket)
    try:
        principal = await authenticate(ctx.pool, token) if token else None
    except DB_ERRORS:
        await _close(websocket, CLOSE_TRY_AGAIN_LATER, "database unavailable")
        return
    if principal is None:
        await _close(websocket, CLOSE_UNAUTHORIZED, "invalid or missing API key")
        return
    session = WsSession(hub, websocket, send, principal.account_id, ctx.settings.gateway_ws_queue_size)
    quota: SocketQuota = ctx.extras.setdefault("ws_socket_quota", SocketQuota(ctx.settings.gateway_ws_max_per_key))
    sessions: set[WsSession] = ctx.extras.setdefault("ws_sessions", set())
    sessions.add(session)
    try:
        with quota.hold(principal.key_id), key_sockets(ctx).tracking(principal.key_id, session.sub):
            await session.run()
    except TooManySockets as exc:
        await _close(websocket, CLOSE_TOO_MANY_SOCKETS, str(exc))
    finally:
        sessions.discard(session)
        if not session.finished.done():
            session.finished.set_result(None)


async def close_all_sockets(ctx: AppContext, code: int, reason: str, *, within: float) -> int:
    """Ask every live socket of this process to close with ``code``; wait (bounded) until they have.

    Returns how many sockets were asked. Used by the graceful shutdown (1001).
    """
    sessions: set[WsSession] = ctx.extras.get("ws_sessions", set())
    asked = list(sessions)
    for session in asked:
        session.close_with(code, reason)
    if asked:
        await asyncio.wait([s.finished for s in asked], timeout=within)
    return len(asked)


def _drop_reason(code: int) -> str:
    if code == CLOSE_UNAUTHORIZED:
        return "API key revoked"
    return "send queue overflowed: resume with after"


async def _close(websocket: WebSocket, code: int, reason: str = "") -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, TimeoutError):
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_GRACE)


class WsSession:
    def __init__(self, hub: WsHub, websocket: WebSocket, send: Send, account_id: int, queue_size: int) -> None:
        self.hub = hub
        self.websocket = websocket
        self.send = send
        self.account_id = account_id
        self.sub = Subscriber(account_id, queue_size)
        # Resolved with (code, reason) when the server closes this socket on its own (shutdown).
        self.closing: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def close_with(self, code: int, reason: str) -> None:
        if not self.closing.done():
            self.closing.set_result((code, reason))

    async def run(self) -> None:
        WS_CONNECTIONS.inc()
        reader = asyncio.create_task(self._read_loop(), name="ws-reader")
        writer = asyncio.create_task(self._write_loop(), name="ws-writer")
        code: int | None = None
        reason = ""
        try:
            waiters: set[asyncio.Future[Any]] = {reader, writer, self.sub.dropped, self.closing}
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if self.closing in done:
                code, reason = self.closing.result()
            elif self.sub.dropped in done:
                code = self.sub.dropped.result()
                reason = _drop_reason(code)
            elif reader in done and (exc := reader.exception()) is not None:
                if isinstance(exc, DB_ERRORS):
                    code, reason = CLOSE_TRY_AGAIN_LATER, "database unavailable"
                else:
                    log.error("ws session of account %s failed", self.account_id, exc_info=exc)
                    code, reason = CLOSE_INTERNAL_ERROR, "internal error"
        finally:
            self.hub.detach(self.sub)
            WS_CONNECTIONS.dec()
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        if code is not None:
            await _close(self.websocket, code, reason)

    async def _write_loop(self) -> None:
        queue, send = self.sub.queue, self.send
        try:
            while True:
                frame = await queue.get()
                await send({"type": "websocket.send", "text": frame})
        except OSError:
            return  # the client went away (uvicorn raises ClientDisconnected, an OSError)

    async def _read_loop(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._reply(ErrorFrame(code="malformed_frame", message="send JSON text frames"))
                continue
            if len(text) > MAX_CLIENT_FRAME:
                await self._reply(ErrorFrame(code="malformed_frame", message=f"frame over {MAX_CLIENT_FRAME} bytes"))
                continue
            try:
                frame = parse_client_frame(text)
                if isinstance(frame, PingFrame):
                    await self._reply(PongFrame())
                elif isinstance(frame, SubscribeFrame):
                    await self._subscribe(frame)
                elif isinstance(frame, UnsubscribeFrame):
                    await self._unsubscribe(frame)
            except FrameError as exc:
                await self._reply(exc.frame())

    async def _reply(self, frame: ErrorFrame | PongFrame | SubscribedFrame) -> None:
        await self.sub.put(dump(frame))

    async def _subscribed(self, latest: int) -> None:
        await self._reply(SubscribedFrame(topics=[str(t) for t in self.sub.topics], seq=latest))

    async def _subscribe(self, frame: SubscribeFrame) -> None:
        topics = parse_topics(frame.topics)
        await self._check_owned(topics)
        merged = self.sub.topics + [t for t in topics if t not in self.sub.topics]
        if len(merged) > MAX_TOPICS:
            raise FrameError("too_many_topics", f"a connection holds at most {MAX_TOPICS} topics")
        if self.sub.streaming:
            if frame.after is not None:
                raise FrameError(
                    "already_streaming",
                    "after applies to the whole connection: unsubscribe every topic (or reconnect) to replay",
                )
            self.sub.set_topics(merged)
            await self._subscribed(await self.hub.latest(self.account_id))
            return
        latest = await self.hub.latest(self.account_id)
        self.sub.set_topics(merged)
        # A client cannot have seen seqs beyond the log's latest: clamp rather
        # than skip whatever is written up to its bogus position.
        self.sub.cursor = latest if frame.after is None else min(frame.after, latest)
        await self._subscribed(latest)
        await self.hub.go_live(self.sub)

    async def _unsubscribe(self, frame: UnsubscribeFrame) -> None:
        gone = parse_topics(frame.topics)
        self.sub.set_topics([t for t in self.sub.topics if t not in gone])
        if not self.sub.streaming:
            self.hub.detach(self.sub)
        await self._subscribed(await self.hub.latest(self.account_id))

    async def _check_owned(self, topics: list[Topic]) -> None:
        """A conversation of another account is answered exactly like one that does not exist."""
        wanted = [t.conversation_id for t in topics if t.conversation_id is not None]
        if not wanted:
            return
        rows = await self.hub.pool.fetch(
            "SELECT id FROM conversations WHERE account_id = $1 AND id = ANY($2::bigint[])",
            self.account_id,
            wanted,
        )
        found = {r["id"] for r in rows}
        for conversation_id in wanted:
            if conversation_id not in found:
                raise FrameError("not_found", f"conversation {conversation_id} not found")


routes = [WebSocketRoute("/ws", WsEndpoint())]
