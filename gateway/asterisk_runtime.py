"""Asterisk channels at run time: the AMI runner, click-to-call execution, setup, the installer.

**Runner** (``ctx.runners[asterisk]``; the channel supervisor runs it on exactly
one node, under a Postgres advisory-lock lease). One AMI session at a time:

1. connect and log in (``channels.asterisk.connection``); a refused login or an
   unreachable host backs off from 1 s to a 60 s cap with jitter; the backoff
   is only reset by a session that stayed up ``stable_after`` seconds; a PBX
   older than Asterisk 12 (``channels.asterisk.version``) is refused the same
   way, with the channel ``failed``: "Asterisk 12 or later required";
2. ``CoreShowChannels``: calls still up are rebuilt (answered ones with the
   answer time Asterisk's CDR has), calls we knew that are gone are closed
   (``unknown`` cause, a ``reconciled`` event), and so are calls the database
   still has open that Asterisk no longer lists; they end when the PBX was last
   heard from (``gateway.asterisk_last_seen``), not at the reconnect;
3. then every event goes through the tracker, and each change is committed and
   published (``gateway.pipeline.apply_and_publish``) in arrival order;
4. meanwhile a ``Ping`` every ``ping_interval`` must be answered within
   ``ping_timeout``, else the session is dropped and we reconnect;
5. click-to-call requests (``inbox.originates``) are claimed and placed, one at
   a time, woken by ``NOTIFY igw_originate`` or a short poll.

Nothing sent to Asterisk is ever re-sent: an Originate whose answer was lost is
recorded as ``unknown`` and reconciliation tells whether it rang.

When a session ends (socket lost, or the runner is stopped), the click-to-call
loop is not cancelled halfway through a request: it is told to stop and gets
``stop_grace`` seconds to write down what Asterisk answered to an Originate in
flight. Cancelled while recording ``accepted``, the request would stay
``sending`` and the next reconciliation would call it ``unknown``.
The runner's own cancellation always propagates (``gateway.supervise.stop_tasks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from channels.asterisk.answer_times import answer_times
from channels.asterisk.backoff import Backoff
from channels.asterisk.config import AsteriskConfig
from channels.asterisk.connection import (
    RECEIVED_AT,
    AmiActionRefused,
    AmiActionUnknown,
    AmiAuthError,
    AmiConnectError,
    AmiConnection,
    AmiConnectionLost,
    AmiHostRefused,
)
from channels.asterisk.recordings import RecordingFetcher
from channels.asterisk.tracker import ORIGINATE_ACTION_PREFIX, CallTracker
from channels.asterisk.version import AmiUnsupportedVersion, probe
from channels.netpolicy import NetworkRefused
from gateway.asterisk_last_seen import LastSeen
from gateway.context import AppContext, ChannelSetup
from gateway.http import DB_ERRORS, DB_UNAVAILABLE, ApiError
from gateway.pipeline import apply_and_publish
from gateway.supervise import stop_tasks, wait_event
from inbox import originates
from inbox.calls import open_calls
from inbox.channels import ChannelRow, update_state
from inbox.originates import OriginateRequest, OriginateStatus
from schema.calls import CallSnapshot
from schema.enums import ChannelType
from schema.events import CallChange
from schema.text import line_safe

log = logging.getLogger(__name__)

# Worth waiting out; any other database error is a bug or bad data, and retrying it would stall the channel.
_DB_TRANSIENT: tuple[type[BaseException], ...] = (
    *DB_UNAVAILABLE,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.QueryCanceledError,
)


@dataclass(frozen=True)
class AsteriskOptions:
    """Run-time knobs (not channel config); tests shorten them through ``ctx.extras["asterisk_options"]``."""

    connect_timeout: float = 10.0
    action_timeout: float = 10.0
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    stable_after: float = 30.0
    originate_poll: float = 2.0
    originate_max_age: float = 60.0
    resync_timeout: float = 60.0
    stop_grace: float = 2.0  # for a click-to-call in flight to record its outcome when the session ends
    last_seen_every: float = 5.0  # seconds between heartbeat writes


def options(ctx: AppContext) -> AsteriskOptions:
    found = ctx.extras.get("asterisk_options")
    return found if isinstance(found, AsteriskOptions) else AsteriskOptions()


def _now() -> datetime:
    return datetime.now(UTC)


def _received(event: dict[str, str]) -> datetime:
    try:
        return datetime.fromtimestamp(float(event[RECEIVED_AT]), UTC)
    except (KeyError, ValueError):
        return _now()


async def _set_state(ctx: AppContext, channel: ChannelRow, status: str, error: str | None = None) -> None:
    """What the connection is doing and which process holds it (``channels.state.ami``); never fatal."""
    state = {"status": status, "error": error, "node": ctx.node_id, "at": _now().isoformat()}
    with contextlib.suppress(*DB_ERRORS):
        await update_state(ctx.pool, channel.id, {"ami": state})


class _Runner:
    def __init__(self, ctx: AppContext, channel: ChannelRow) -> None:
        self.ctx = ctx
        self.channel = channel
        self.config = AsteriskConfig.model_validate(channel.config)
        self.opts = options(ctx)
        self.tracker = CallTracker.from_config(self.config)
        self.backoff = Backoff(self.opts.backoff_base, self.opts.backoff_cap)
        self.wake = asyncio.Event()
        self.lost_at: datetime | None = None
        self.last_seen = LastSeen(ctx, channel, self.opts.last_seen_every)
        self.sessions = 0
        self._apply_lock = asyncio.Lock()

    # -- the supervised loop ------------------------------------------------------------------

    async def run(self) -> None:
        listener = await self._listen()
        try:
            while True:
                began = asyncio.get_running_loop().time()
                conn = AmiConnection(
                    host=self.config.host, port=self.config.port, username=self.config.username,
                    secret=str(self.ctx.channel_secrets(self.channel).get("secret", "")),
                    connect_timeout=self.opts.connect_timeout, action_timeout=self.opts.action_timeout,
                    policy=self.ctx.settings.channel_networks,
                )
                try:
                    await conn.open()
                    await probe(conn)
                    await _set_state(self.ctx, self.channel, "connected")
                    await self._session(conn)
                except AmiUnsupportedVersion as exc:
                    log.error("asterisk channel %s: %s", self.channel.id, exc)
                    await _set_state(self.ctx, self.channel, "failed", str(exc))
                except AmiAuthError as exc:
                    log.warning("asterisk channel %s: %s", self.channel.id, exc)
                    await _set_state(self.ctx, self.channel, "auth_failed", str(exc))
                except AmiHostRefused as exc:
                    log.warning("asterisk channel %s: %s", self.channel.id, exc)
                    await _set_state(self.ctx, self.channel, "host_not_allowed", str(exc))
                except AmiConnectError as exc:
                    log.warning("asterisk channel %s: %s", self.channel.id, exc)
                    await _set_state(self.ctx, self.channel, "unreachable", str(exc))
                except AmiConnectionLost as exc:
                    log.warning("asterisk channel %s: %s", self.channel.id, exc)
                    await _set_state(self.ctx, self.channel, "disconnected", str(exc))
                finally:
                    conn.close()
                self.lost_at = self.lost_at or _now()
                if asyncio.get_running_loop().time() - began >= self.opts.stable_after:
                    self.backoff.reset()
                await asyncio.sleep(self.backoff.next_delay())
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await listener.close()

    async def _listen(self) -> asyncpg.Connection | None:
        """NOTIFY wakes us for click-to-calls at once; without it we still poll."""
        dsn = self.ctx.settings.database_url
        if not dsn:
            return None
        try:
            conn = await asyncpg.connect(dsn)

            def on_notify(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
                if payload == str(self.channel.id):
                    self.wake.set()

            await conn.add_listener(originates.NOTIFY_CHANNEL, on_notify)
            return conn
        except (*DB_ERRORS,) as exc:
            log.warning("asterisk channel %s: no NOTIFY listener (%r); polling only", self.channel.id, exc)
            return None

    async def _session(self, conn: AmiConnection) -> None:
        self.sessions += 1
        pinger = asyncio.create_task(self._pinger(conn), name=f"ami-ping-{self.channel.id}")
        placer: asyncio.Task[None] | None = None
        stopping = asyncio.Event()
        try:
            await self._resync(conn)
            self.lost_at = None
            placer = asyncio.create_task(self._place_calls(conn, stopping), name=f"ami-originate-{self.channel.id}")

            def placer_done(task: asyncio.Task[None]) -> None:
                # The session must not go on without click-to-call: start over.
                if not task.cancelled() and task.exception() is not None:
                    conn.abort(f"click-to-call loop stopped: {task.exception()!r}")

            placer.add_done_callback(placer_done)
            while True:
                event = await conn.next_event()
                self.last_seen.note(_received(event))
                await self._apply(self._feed(event))
                await self.last_seen.flush()
        finally:
            try:
                if placer is not None and not placer.done():
                    # A request in flight records its outcome first (module docstring).
                    stopping.set()
                    self.wake.set()
                    await asyncio.wait({placer}, timeout=self.opts.stop_grace)
            finally:
                # Also when we are cancelled while waiting above: no task outlives its session.
                await stop_tasks((pinger, placer), within=self.opts.stop_grace,
                                 what=f"asterisk channel {self.channel.id}")
            self.lost_at = self.lost_at or self.last_seen.at or _now()

    def _feed(self, event: dict[str, str]) -> list[CallSnapshot]:
        try:
            return self.tracker.feed(event, _received(event))
        except Exception:
            # A tracker bug on one odd event must not stop the channel; reconnects reconcile.
            log.exception("asterisk channel %s: event not understood: %s", self.channel.id, event)
            return []

    async def _pinger(self, conn: AmiConnection) -> None:
        while True:
            await asyncio.sleep(self.opts.ping_interval)
            await conn.ping(self.opts.ping_timeout)  # drops the session when no Pong comes
            self.last_seen.note(_now())
            await self.last_seen.flush()

    # -- reconciliation -----------------------------------------------------------------------

    async def _resync(self, conn: AmiConnection) -> None:
        lost_at = await self.last_seen.before_this_session(self.lost_at)
        for request in await self._db(originates.in_flight, self.ctx.pool, self.channel.id):
            self.tracker.expect_originate(request.originate_id, agent=request.agent,
                                          to_number=request.to_number, at=request.created_at)
        action_id = f"gw-resync-{self.channel.id}-{self.sessions}"
        reply = await conn.send({"Action": "CoreShowChannels", "ActionID": action_id})
        if reply.get("response", "").lower() != "success":
            # Without the list we cannot tell what ended: close nothing, follow the events.
            log.warning("asterisk channel %s: CoreShowChannels refused (%s); not reconciling",
                        self.channel.id, reply.get("message"))
            return
        listed: list[dict[str, str]] = []
        try:
            async with asyncio.timeout(self.opts.resync_timeout):
                while True:
                    event = await conn.next_event()
                    name = event.get("event", "").lower()
                    if event.get("actionid") == action_id and name == "coreshowchannel":
                        listed.append(event)
                    elif event.get("actionid") == action_id and name == "coreshowchannelscomplete":
                        break
                    else:  # happened before the list was taken: older than it
                        await self._apply(self._feed(event))
        except TimeoutError:
            conn.abort("CoreShowChannels list did not complete")
            raise AmiConnectionLost("CoreShowChannels list did not complete in time") from None
        answered = await answer_times(conn, listed)
        at = _now()
        await self._apply(self.tracker.resync(listed, at=at, lost_at=lost_at, answered=answered))
        stale = await self._db(open_calls, self.ctx.pool, self.channel.id)
        closed = self.tracker.close_missing(stale, at=at, lost_at=lost_at)
        await self._apply(closed)
        lost = [c.originate_id for c in closed if c.originate_id]
        if lost:
            await self._db(originates.mark_unknown, self.ctx.pool, self.channel.id, lost)

    # -- click-to-call ------------------------------------------------------------------------

    async def _place_calls(self, conn: AmiConnection, stopping: asyncio.Event) -> None:
        """Until ``stopping`` is set; it is only looked at between requests, never halfway through one."""
        while not stopping.is_set():
            self.wake.clear()  # before looking: a NOTIFY from now on is not missed
            expired = await self._db(originates.expire_stale, self.ctx.pool, self.channel.id,
                                     self.opts.originate_max_age)
            for request in expired:
                await self._fail_originate(request, "not placed: the AMI connection was unavailable for too long")
            if stopping.is_set() or conn.closed:
                return  # claim nothing we would not place
            request = await self._db(originates.claim_next, self.ctx.pool, self.channel.id, self.ctx.node_id,
                                     self.opts.originate_max_age)
            if request is not None:
                await self._originate(conn, request)
                continue
            await wait_event(self.wake, self.opts.originate_poll)

    async def _originate(self, conn: AmiConnection, request: OriginateRequest) -> None:
        """Place one claimed request. The claim is committed: whatever happens, it is never sent twice."""
        oid = request.originate_id
        self.tracker.expect_originate(oid, agent=request.agent, to_number=request.to_number, at=request.created_at)
        action = {
            "Action": "Originate",
            "ActionID": ORIGINATE_ACTION_PREFIX + oid,
            "Channel": self.config.originate_channel.format(agent=request.agent),
            "Context": self.config.originate_context,
            "Exten": request.to_number,
            "Priority": "1",
            "Timeout": str(self.config.originate_timeout * 1000),
            "Async": "true",
            "ChannelId": oid,
        }
        try:
            reply = await conn.send(action)
        except AmiConnectionLost:
            # Raised before anything was written: it may be taken again by the next session.
            await self._db(originates.unclaim, self.ctx.pool, request.id)
            raise
        except AmiActionRefused as exc:
            await self._db(originates.finish, self.ctx.pool, request.id, OriginateStatus.REJECTED, str(exc))
            await self._fail_originate(request, str(exc))
            return
        except AmiActionUnknown as exc:
            log.warning("click-to-call %s: outcome unknown, not retried: %s", oid, exc)
            await self._db(originates.finish, self.ctx.pool, request.id, OriginateStatus.UNKNOWN,
                           f"no answer from Asterisk; not retried ({exc})")
            return
        if reply.get("response", "").lower() == "success":
            await self._db(originates.finish, self.ctx.pool, request.id, OriginateStatus.ACCEPTED)
            return
        message = reply.get("message") or "Originate refused"
        await self._db(originates.finish, self.ctx.pool, request.id, OriginateStatus.REJECTED, message)
        await self._fail_originate(request, message)

    async def _fail_originate(self, request: OriginateRequest, message: str) -> None:
        self.tracker.expect_originate(request.originate_id, agent=request.agent, to_number=request.to_number,
                                      at=request.created_at)
        await self._apply(self.tracker.originate_failed(request.originate_id, at=_now(), message=message))

    # -- committing ------------------------------------------------------------------------------

    async def _apply(self, snapshots: Sequence[CallSnapshot]) -> None:
        """Commit and publish, in order; a database outage is waited out (the AMI socket pauses meanwhile)."""
        if not snapshots:
            return
        events = [CallChange(call=s) for s in snapshots]
        async with self._apply_lock:
            try:
                await self._db(apply_and_publish, self.ctx, channel=self.channel, events=events)
            except asyncpg.PostgresError:
                # Not transient: keep the channel flowing; reconciliation repairs the state on the next connect.
                log.exception("asterisk channel %s: call change not stored: %s", self.channel.id, snapshots)

    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a database step, waiting out outages (the AMI socket stops being read meanwhile)."""
        delay = 0.2
        while True:
            try:
                return await fn(*args, **kwargs)
            except _DB_TRANSIENT as exc:
                log.warning("asterisk channel %s: database error %r; retrying in %.1fs", self.channel.id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


async def run_channel(ctx: AppContext, channel: ChannelRow) -> None:
    """``ctx.runners[asterisk]``: runs until cancelled (the supervisor stops it on lease loss or change)."""
    try:
        runner = _Runner(ctx, channel)
    except ValidationError as exc:
        await _set_state(ctx, channel, "invalid_config", str(exc))
        raise
    await runner.run()


async def setup_channel(
    ctx: AppContext, config: dict[str, Any], secrets: dict[str, Any], channel_id: int | None
) -> ChannelSetup:
    """``ctx.setup_hooks[asterisk]``: a config we can run, and a login refused by Asterisk is a 422.

    An unreachable AMI is accepted: the runner keeps trying and ``channels.state.ami`` tells why.
    """
    try:
        parsed = AsteriskConfig.model_validate(config)
    except ValidationError as exc:
        raise ApiError(422, "invalid_config", "; ".join(e["msg"] for e in exc.errors())) from exc
    secret = secrets.get("secret")
    if not isinstance(secret, str) or not secret:
        raise ApiError(422, "invalid_credentials", "secrets.secret (the AMI password) is required")
    try:
        line_safe(secret, "secrets.secret")
    except ValueError as exc:
        raise ApiError(422, "invalid_credentials", str(exc)) from None
    policy = ctx.settings.channel_networks
    try:
        await policy.resolve(parsed.host, parsed.port)
    except NetworkRefused as exc:
        raise ApiError(422, "host_not_allowed", f"config.host: {exc}") from None
    conn = AmiConnection(host=parsed.host, port=parsed.port, username=parsed.username, secret=secret,
                         connect_timeout=3, action_timeout=3, policy=policy)
    try:
        await conn.open()
        await probe(conn)
    except AmiAuthError as exc:
        raise ApiError(422, "invalid_credentials", str(exc)) from exc
    except AmiUnsupportedVersion as exc:
        raise ApiError(422, "unsupported_version", str(exc)) from exc
    except (AmiConnectError, AmiConnectionLost):
        pass
    finally:
        conn.close()
    return ChannelSetup(parsed.provider_key, config)


def install(ctx: AppContext) -> None:
    ctx.runners[ChannelType.ASTERISK] = run_channel
    ctx.setup_hooks[ChannelType.ASTERISK] = setup_channel
    ctx.fetchers[ChannelType.ASTERISK] = RecordingFetcher(ctx.settings.gateway_recordings_dir)
