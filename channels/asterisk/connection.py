"""One AMI session through panoramisk 1.4, with its weaknesses covered.

panoramisk's ``Manager`` is built to reconnect by itself; what it does then is
not what we need, so we use its framing, parser and action bookkeeping
(``AMIProtocol``, ``Message``, ``Action``) and drive the connection ourselves:

1. It retries every ``reconnect_timeout`` seconds forever, also after a
   refused login: a wrong secret becomes a steady loop. → We never call
   ``Manager.connect``; ``connection_lost`` does not reconnect. One
   ``AmiConnection`` is one session; the runner reconnects with ``Backoff``.
2. Actions sent without an answer when the socket drops are queued in
   ``awaiting_actions`` and re-sent after the next ``FullyBooted``: an
   ``Originate`` could ring twice. → Nothing is ever re-sent. Whatever was in
   flight fails with ``AmiActionUnknown`` (sent, outcome unknown).
3. Its pinger fires ``Ping`` without waiting for the answer, so a dead TCP peer
   is never noticed. → ``ping`` waits for ``Pong`` with a timeout; the runner
   drops the session when it does not come.
4. Event callbacks returning coroutines are scheduled fire-and-forget, out of
   order. → Every event (also those answering an action, such as
   ``CoreShowChannel`` and ``OriginateResponse``) goes, in wire order, into one
   queue read with ``next_event``.
5. Futures of actions in flight when the socket drops are never resolved (and
   an async ``Originate`` only resolves on its ``OriginateResponse``). → We
   keep our own future per action, resolved by its first ``Response``.
6. A block with two ``Event:`` headers (two messages run together) makes its
   dispatch raise inside ``data_received``, and asyncio closes the transport:
   one bad block would drop the session and every live call with it. → A
   malformed block is logged (header names only) and skipped; nothing else in
   the stream is lost.

Exception tree::

    AmiError
    ├── AmiConnectError       no AMI server answered (one message for every cause)
    │   └── AmiHostRefused    the host is outside GATEWAY_CHANNEL_ALLOWED_NETWORKS
    ├── AmiAuthError          Login refused (wrong username or secret)
    ├── AmiConnectionLost     the session ended (socket closed, Shutdown, no Pong)
    ├── AmiActionRefused      not sent: a field holds CR, LF or NUL (it would inject lines)
    └── AmiActionUnknown      an action was sent but no answer came: it may or may not have run
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager

from channels.asterisk.codec import AmiMessage, describe, malformed, normalize
from channels.netpolicy import NetworkPolicy, NetworkRefused
from schema.text import line_safe

log = logging.getLogger(__name__)

_action_ids = itertools.count(1)
# Added to every event: the epoch seconds it was received (Asterisk sends no such header).
RECEIVED_AT = "_received_at"
_PAUSE_AT = 10_000  # queued events before we stop reading the socket
_RESUME_AT = 1_000


class AmiError(Exception):
    pass


class AmiConnectError(AmiError):
    pass


class AmiHostRefused(AmiConnectError):
    pass


class AmiAuthError(AmiError):
    pass


class AmiConnectionLost(AmiError):
    pass


class AmiActionUnknown(AmiError):
    pass


class AmiActionRefused(AmiError):
    pass


class _Protocol(AMIProtocol):  # type: ignore[misc]
    def handle_message(self, message: Any) -> None:
        owner: AmiConnection | None = getattr(self.factory, "owner", None)
        problem = malformed(message)
        if problem is not None:
            log.warning("AMI: skipped a malformed block (%s; headers: %s)", problem, describe(message))
            if owner is not None:
                owner.skipped += 1
            return
        if owner is not None:
            owner._on_message(message)
        try:
            super().handle_message(message)
        except Exception as exc:
            # An exception here would close the transport (asyncio treats it as fatal): keep the session.
            log.warning("AMI: panoramisk could not dispatch a block (%r; headers: %s)", exc, describe(message))


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager with its reconnect, re-send and pinger switched off."""

    def __init__(self, owner: AmiConnection, **config: Any) -> None:
        super().__init__(**config)
        self.owner = owner
        self.callbacks.clear()  # drops the FullyBooted -> send_awaiting_actions hook
        self.patterns.clear()

    def ping(self) -> None:  # its Ping never waits for the answer; AmiConnection.ping does
        return None

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        self.owner._on_lost(exc)

    async def send_awaiting_actions(self, *_: Any) -> None:
        # Never re-send after a reconnect (there is no reconnect here anyway).
        self.awaiting_actions.clear()


class AmiConnection:
    """One logged-in AMI session. Not reusable: open a new one to reconnect."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        connect_timeout: float = 10.0,
        action_timeout: float = 10.0,
        policy: NetworkPolicy | None = None,
    ) -> None:
        self.host, self.port, self.username = host, port, username
        self.policy = policy or NetworkPolicy()
        self._secret = secret
        self.connect_timeout = connect_timeout
        self.action_timeout = action_timeout
        self._events: asyncio.Queue[AmiMessage | None] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[AmiMessage]] = {}
        self._manager: _Manager | None = None
        self._transport: asyncio.Transport | None = None
        self._protocol: Any = None
        self._paused = False
        self._logged_in = False
        self.lost_reason: str | None = None
        self.skipped = 0  # malformed blocks dropped from the stream

    @property
    def ami_version(self) -> str | None:
        """The protocol version of the banner (``Asterisk Call Manager/9.0.0`` → ``"9.0.0"``), once read."""
        version = getattr(self._protocol, "version", None)
        return str(version) if version else None

    @property
    def closed(self) -> bool:
        return self.lost_reason is not None

    @property
    def unreachable(self) -> str:
        """The one message for a host that is no AMI server we can log in to.

        Closed, filtered, timing out or speaking another protocol all read the
        same, so a channel's settings cannot be used to scan ports.
        """
        return f"no AMI server answered at {self.host}:{self.port}"

    async def open(self) -> None:
        """Connect and log in. Raises ``AmiConnectError`` (``AmiHostRefused``) or ``AmiAuthError``."""
        loop = asyncio.get_running_loop()
        try:
            addresses = await self.policy.resolve(self.host, self.port)
        except NetworkRefused as exc:
            raise AmiHostRefused(f"AMI host {self.host}: {exc}") from None
        transport = protocol = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                for address in addresses:
                    try:
                        transport, protocol = await loop.create_connection(_Protocol, address, self.port)
                        break
                    except OSError:
                        continue
        except TimeoutError:
            pass
        if transport is None:
            raise AmiConnectError(self.unreachable) from None
        self._transport = transport
        self._protocol = protocol
        manager = _Manager(self, host=self.host, port=self.port, loop=loop, ping_delay=3600, events="on")
        done: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        done.set_result((transport, protocol))
        manager.connection_made(done)  # wires the protocol to the manager; no login (no username in config)
        self._manager = manager
        try:
            reply = await self.send(
                {"Action": "Login", "Username": self.username, "Secret": self._secret, "Events": "on"}
            )
        except (AmiActionUnknown, AmiConnectionLost):
            self.close()
            raise AmiConnectError(self.unreachable) from None
        except AmiActionRefused:
            # Stored before values were checked: never sent, and no retry can fix it.
            self.close()
            raise AmiAuthError("the AMI username or secret holds CR, LF or NUL; not sent") from None
        response = reply.get("response", "").lower()
        if response != "success":
            self.close()
            if response != "error":  # not an AMI answer: something else listens there
                raise AmiConnectError(self.unreachable)
            reason = (reply.get("message") or "no reason given")[:200]
            raise AmiAuthError(f"AMI login as {self.username!r} refused: {reason}")
        self._logged_in = True

    async def send(self, action: Mapping[str, str], *, answer_within: float | None = None) -> AmiMessage:
        """Send an action; return its first ``Response`` (Success or Error).

        Events that belong to the action (lists, ``OriginateResponse``) arrive
        through ``next_event``. ``AmiActionUnknown``: the action was written but
        no answer came — it may or may not have run, and it is NOT re-sent.
        """
        if self._manager is None or self.closed:
            raise AmiConnectionLost(self.lost_reason or "not connected")
        fields = dict(action)
        for key, value in fields.items():
            # The last line of defence against action injection: one field, one line.
            try:
                line_safe(str(key), "an AMI field name")
                line_safe(str(value), f"AMI field {key}")
            except ValueError as exc:
                raise AmiActionRefused(f"refused to send {fields.get('Action')}: {exc}") from None
        action_id = next((v for k, v in fields.items() if k.lower() == "actionid"), "")
        if not action_id:
            action_id = fields["ActionID"] = f"gw-{next(_action_ids)}"
        fut: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._waiting[action_id] = fut
        try:
            self._manager.send_action(fields)
            async with asyncio.timeout(answer_within if answer_within is not None else self.action_timeout):
                return await fut
        except TimeoutError as exc:
            raise AmiActionUnknown(f"no answer to {fields.get('Action')} within the timeout") from exc
        finally:
            self._waiting.pop(action_id, None)

    async def ping(self, answer_within: float) -> None:
        """Raises ``AmiConnectionLost`` (and drops the session) when no Pong comes in time."""
        try:
            await self.send({"Action": "Ping"}, answer_within=answer_within)
        except AmiActionUnknown as exc:
            self.abort(f"no answer to Ping within {answer_within:g}s")
            raise AmiConnectionLost(self.lost_reason or "ping timeout") from exc

    async def next_event(self) -> AmiMessage:
        """The next event in wire order (with ``RECEIVED_AT``); ``AmiConnectionLost`` once the session is over and
        drained."""
        item = await self._events.get()
        if self._paused and self._events.qsize() < _RESUME_AT and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        if item is None:
            self._events.put_nowait(None)  # stays over for any later reader
            raise AmiConnectionLost(self.lost_reason or "connection lost")
        return item

    def abort(self, reason: str) -> None:
        """Drop the session now (a dead peer): pending actions fail, readers see the loss."""
        if self.closed:
            return
        self._on_lost(reason)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._manager is not None:
            with contextlib.suppress(Exception):
                self._manager.close()
        self._on_lost("closed by the gateway")

    async def logoff(self) -> None:
        with contextlib.suppress(AmiError):
            await self.send({"Action": "Logoff"}, answer_within=2)
        self.close()

    # --- called by panoramisk -------------------------------------------------------------------

    def _on_message(self, message: Any) -> None:
        msg = normalize(message)
        if "event" in msg:
            # When it came off the wire, not when a (possibly busy) reader gets to it.
            msg[RECEIVED_AT] = repr(time.time())
            self._events.put_nowait(msg)
            if self._events.qsize() >= _PAUSE_AT and self._transport is not None and not self._paused:
                self._paused = True
                self._transport.pause_reading()
            return
        fut = self._waiting.get(msg.get("actionid", ""))
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _on_lost(self, exc: Any) -> None:
        if self.lost_reason is not None:
            return
        self.lost_reason = exc if isinstance(exc, str) else f"AMI connection lost: {exc!r}"
        if self._logged_in:
            # Before the login the cause would tell what else listens on the port: open() reports it generically.
            log.info("AMI %s:%s: %s", self.host, self.port, self.lost_reason)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(AmiActionUnknown(f"sent, but the connection dropped before an answer ({exc!r})"))
        manager = self._manager
        if manager is not None:
            pinger = getattr(manager, "pinger", None)
            if pinger is not None:
                pinger.cancel()
                manager.pinger = None
            # panoramisk would keep these for re-sending, or leave them pending forever.
            for action in list(manager.awaiting_actions):
                action.future.cancel()
            manager.awaiting_actions.clear()
            responses = getattr(manager.protocol, "responses", {}) or {}
            for action in list(responses.values()):
                action.future.cancel()
            responses.clear()
        self._events.put_nowait(None)
