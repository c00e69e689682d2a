"""A fake Asterisk Manager Interface over TCP, for functional tests.

It speaks what the gateway uses: the banner, ``Login`` (good or bad secret; a
bad one is answered ``Authentication failed`` and the socket closed, as
Asterisk does), ``Ping``, ``CoreSettings`` (the ``banner`` and
``asterisk_version`` it is given, so it can pose as an Asterisk 11),
``Getvar CDR(answer,f)`` (when a channel went up, or what a test set in
``cdr_answer``), ``CoreShowChannels`` (answered from a channel table
it keeps from the events it has emitted, so a reconnecting client sees the
truth), ``Originate`` (``Async``; answered ``successfully queued`` and followed
by the call's events and ``OriginateResponse``) and ``Logoff``. Events come
from recorded traces or from ``originate_events``. Tests can drop every
connection, stop answering pings, or make the server drop the socket right
after it reads an ``Originate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

Fields = list[tuple[str, str]]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "ami"
EOL = "\r\n"
BANNER = "Asterisk Call Manager/9.0.0"

OriginateMode = Literal["answer", "answer_and_hold", "busy", "no_answer", "error", "drop", "drop_after_queued"]


def parse_raw(text: str) -> list[Fields]:
    """Messages of a trace with their header case and order kept (the banner skipped)."""
    out: list[Fields] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: Fields = []
        for line in block.split("\n"):
            if ": " in line or line.endswith(":"):
                key, _, value = line.partition(":")
                fields.append((key, value[1:] if value.startswith(" ") else value))
        if fields:
            out.append(fields)
    return out


def trace_events(name: str) -> list[Fields]:
    """The events of a trace, without the ``FullyBooted`` the server sends itself after a login."""
    return [m for m in parse_raw((FIXTURES / name).read_text()) if m[0][0] == "Event" and m[0][1] != "FullyBooted"]


def get(fields: Fields, key: str, default: str = "") -> str:
    for k, v in fields:
        if k.lower() == key.lower():
            return v
    return default


def render(fields: Fields) -> bytes:
    return ("".join(f"{k}: {v}{EOL}" for k, v in fields) + EOL).encode()


def _channel_fields(prefix: str, ch: dict[str, str]) -> Fields:
    keys = ["Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
            "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid"]
    return [(f"{prefix}{k}", ch.get(k, "")) for k in keys]


def channel(name: str, uniqueid: str, linkedid: str, *, num: str, cid_name: str = "<unknown>",
            context: str = "agents", exten: str = "s", state: str = "0") -> dict[str, str]:
    desc = {"0": "Down", "4": "Ring", "5": "Ringing", "6": "Up"}[state]
    return {"Channel": name, "ChannelState": state, "ChannelStateDesc": desc, "CallerIDNum": num,
            "CallerIDName": cid_name, "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
            "Language": "en", "AccountCode": "", "Context": context, "Exten": exten, "Priority": "1",
            "Uniqueid": uniqueid, "Linkedid": linkedid}


def event(name: str, *parts: Fields | dict[str, str], **extra: str) -> Fields:
    fields: Fields = [("Event", name), ("Privilege", "call,all")]
    for part in parts:
        fields += list(part.items()) if isinstance(part, dict) else part
    fields += [(k.replace("_", "-"), v) for k, v in extra.items()]
    return fields


def with_state(ch: dict[str, str], state: str) -> dict[str, str]:
    return {**ch, "ChannelState": state, "ChannelStateDesc": {"0": "Down", "5": "Ringing", "6": "Up"}[state]}


_counter = itertools.count(1)


def originate_events(
    originate_id: str, *, agent: str, to_number: str, action_id: str, outcome: str = "answer", hangup: bool = True
) -> list[Fields]:
    """What Asterisk 20 emits for ``Originate Channel=PJSIP/<agent> Exten=<number> ChannelId=<id> Async=true``."""
    n = next(_counter)
    agent_ch = channel(f"PJSIP/{agent}-{0x900 + n:08x}", originate_id, originate_id, num=agent,
                       context="from-internal", exten=to_number)
    out: list[Fields] = [
        event("Newchannel", agent_ch),
        event("DialBegin", _channel_fields("Dest", agent_ch), DialString=agent),
        event("Newstate", with_state(agent_ch, "5")),
    ]
    if outcome in ("busy", "no_answer"):
        status, cause, txt, reason = (
            ("BUSY", "17", "User busy", "5") if outcome == "busy" else ("NOANSWER", "19", "No answer", "3")
        )
        return [*out,
                event("DialEnd", _channel_fields("Dest", agent_ch), DialStatus=status),
                event("Hangup", with_state(agent_ch, "5"), Cause=cause, Cause_txt=txt),
                event("OriginateResponse", ActionID=action_id, Response="Failure", Channel=f"PJSIP/{agent}",
                      Context="from-internal", Exten=to_number, Reason=reason, Uniqueid=originate_id,
                      CallerIDNum="<unknown>", CallerIDName="<unknown>")]
    up = with_state(agent_ch, "6")
    remote_uid = f"1741960000.{600 + n}"
    remote = channel(f"PJSIP/carrier-{0xA00 + n:08x}", remote_uid, originate_id, num=to_number,
                     context="from-carrier", exten="s")
    bridge = f"b{n:07d}-0000-4000-8000-000000000000"
    out += [
        event("Newstate", up),
        event("DialEnd", _channel_fields("Dest", up), DialStatus="ANSWER"),
        event("OriginateResponse", ActionID=action_id, Response="Success", Channel=agent_ch["Channel"],
              Context="from-internal", Exten=to_number, Reason="4", Uniqueid=originate_id,
              CallerIDNum=agent, CallerIDName="<unknown>"),
        event("Newexten", up, Extension=to_number, Application="Dial", AppData=f"PJSIP/{to_number}@carrier"),
        event("Newchannel", remote),
        event("DialBegin", up, _channel_fields("Dest", remote), DialString=f"{to_number}@carrier"),
        event("DialEnd", up, _channel_fields("Dest", with_state(remote, "6")), DialStatus="ANSWER"),
        event("BridgeEnter", {"BridgeUniqueid": bridge, "BridgeType": "basic"}, up),
        event("BridgeEnter", {"BridgeUniqueid": bridge, "BridgeType": "basic"}, with_state(remote, "6")),
    ]
    if hangup:
        out += hangup_events(bridge, [with_state(remote, "6"), up])
    return out


def hangup_events(bridge: str, channels: Sequence[dict[str, str]]) -> list[Fields]:
    out: list[Fields] = []
    for ch in channels:
        out.append(event("BridgeLeave", {"BridgeUniqueid": bridge, "BridgeType": "basic"}, ch))
        out.append(event("Hangup", ch, Cause="16", Cause_txt="Normal Clearing"))
    return out


class _Session:
    def __init__(self, server: FakeAmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.authenticated = False
        self.events = True

    def send(self, fields: Fields) -> None:
        if not self.writer.is_closing():
            self.writer.write(render(fields))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def run(self) -> None:
        self.writer.write(f"{self.server.banner}{EOL}".encode())
        buffer = ""
        try:
            while True:
                chunk = await self.reader.read(65536)
                if not chunk:
                    return
                buffer += chunk.decode()
                *blocks, buffer = buffer.replace("\r\n", "\n").split("\n\n")
                for block in blocks:
                    msgs = parse_raw(block)
                    if msgs and not await self.handle(msgs[0]):
                        return
                await self.writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.close()
            self.server.sessions.discard(self)
            self.server.changed()

    async def handle(self, action: Fields) -> bool:
        """Answer one action; False closes the connection."""
        s = self.server
        name = get(action, "Action").lower()
        aid = get(action, "ActionID")
        s.actions.append(action)
        if name == "login":
            s.login_attempts += 1
            s.login_times.append(time.monotonic())
            s.changed()
            if get(action, "Username") == s.username and get(action, "Secret") == s.secret:
                self.authenticated = True
                self.events = get(action, "Events", "on").lower() not in ("off", "no", "false")
                self.send([("Response", "Success"), ("ActionID", aid), ("Message", "Authentication accepted")])
                self.send([("Event", "FullyBooted"), ("Privilege", "system,all"), ("Status", "Fully Booted")])
                for fields in s.after_login:
                    self.send(fields)
                s.changed()
                return True
            s.failed_logins += 1
            self.send([("Response", "Error"), ("ActionID", aid), ("Message", "Authentication failed")])
            await self.writer.drain()
            return False
        if not self.authenticated:
            self.send([("Response", "Error"), ("ActionID", aid), ("Message", "Permission denied")])
            return True
        if name == "ping":
            s.pings += 1
            s.changed()
            if s.answer_pings:
                self.send([("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"),
                           ("Timestamp", f"{time.time():.6f}")])
            return True
        if name == "coresettings":
            ami_version = s.banner.rpartition("/")[2]
            self.send([("Response", "Success"), ("ActionID", aid), ("AMIversion", ami_version),
                       ("AsteriskVersion", s.asterisk_version), ("SystemName", ""), ("CoreMaxCalls", "0"),
                       ("CoreMaxLoadAvg", "0.000000"), ("CoreRunUser", "asterisk"), ("CoreRunGroup", "asterisk"),
                       ("CoreMaxFilehandles", "0"), ("CoreRealTimeEnabled", "No"), ("CoreCDRenabled", "Yes"),
                       ("CoreHTTPenabled", "No")])
            return True
        if name == "getvar":
            ch = next((c for c in s.channels.values() if c.get("Channel") == get(action, "Channel")), None)
            if ch is None:
                self.send([("Response", "Error"), ("ActionID", aid), ("Message", "No such channel")])
                return True
            variable = get(action, "Variable")
            value = s.cdr_answer.get(ch["Uniqueid"], "0.000000") if variable == "CDR(answer,f)" else ""
            self.send([("Response", "Success"), ("ActionID", aid), ("Variable", variable), ("Value", value)])
            return True
        if name == "coreshowchannels":
            s.core_show_channels += 1
            s.changed()
            self.send([("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                       ("Message", "Channels will follow")])
            for ch in s.list_channels():
                self.send([("Event", "CoreShowChannel"), ("ActionID", aid), *ch])
            self.send([("Event", "CoreShowChannelsComplete"), ("ActionID", aid), ("EventList", "Complete"),
                       ("ListItems", str(len(s.channels)))])
            return True
        if name == "originate":
            s.originates.append(action)
            s.changed()
            mode = s.originate_mode
            if mode == "drop":
                return False
            if mode == "error":
                self.send([("Response", "Error"), ("ActionID", aid), ("Message", "Extension does not exist.")])
                return True
            self.send([("Response", "Success"), ("ActionID", aid), ("Message", "Originate successfully queued")])
            if mode == "drop_after_queued":
                await self.writer.drain()
                return False
            oid = get(action, "ChannelId")
            agent = get(action, "Channel").split("/", 1)[-1]
            outcome = {"busy": "busy", "no_answer": "no_answer"}.get(mode, "answer")
            events = originate_events(oid, agent=agent, to_number=get(action, "Exten"), action_id=aid,
                                      outcome=outcome, hangup=mode != "answer_and_hold")
            s.emit_soon(events)
            return True
        if name == "logoff":
            self.send([("Response", "Goodbye"), ("ActionID", aid), ("Message", "Thanks for all the fish.")])
            return False
        self.send([("Response", "Error"), ("ActionID", aid), ("Message", "Invalid/unknown command")])
        return True


class FakeAmiServer:
    def __init__(
        self, *, username: str = "gateway", secret: str = "s3cret", banner: str = BANNER,
        asterisk_version: str = "20.11.0", after_login: Sequence[Fields] = (),
    ) -> None:
        self.username = username
        self.secret = secret
        self.banner = banner
        self.asterisk_version = asterisk_version
        # Events written right after a successful login, before the client can ask anything.
        self.after_login = list(after_login)
        self.port = 0
        self.sessions: set[_Session] = set()
        self.actions: list[Fields] = []
        self.originates: list[Fields] = []
        self.login_attempts = 0
        self.login_times: list[float] = []  # when each Login was read (time.monotonic)
        self.failed_logins = 0
        self.pings = 0
        self.core_show_channels = 0
        self.answer_pings = True
        self.originate_mode: OriginateMode = "answer"
        self._change = asyncio.Event()
        # Live channels by Uniqueid, as CoreShowChannel would list them.
        self.channels: dict[str, dict[str, str]] = {}
        # Uniqueid -> CDR(answer,f) (epoch seconds): when a channel went up, as Asterisk's CDR keeps it.
        self.cdr_answer: dict[str, str] = {}
        self._born: dict[str, float] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FakeAmiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        # Let every session see its socket close (Python 3.11 logs handler tasks cancelled at loop end).
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await session.run()
        finally:
            self._handlers.discard(task)

    # --- controls ------------------------------------------------------------------------------

    @property
    def logged_in(self) -> int:
        return sum(1 for s in self.sessions if s.authenticated)

    def changed(self) -> None:
        """Wake whoever waits in ``wait_until``."""
        self._change.set()
        self._change = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                await self._change.wait()

    async def wait_logged_in(self, count: int = 1, within: float = 10) -> None:
        await self.wait_until(lambda: self.logged_in >= count, within)

    def drop(self) -> None:
        """Close every client connection (the server keeps listening)."""
        for session in list(self.sessions):
            session.close()

    def emit(self, events: Iterable[Fields]) -> None:
        """Send events to every logged-in client and keep the channel table current."""
        for fields in events:
            self.track(fields)
            for session in list(self.sessions):
                if session.authenticated and session.events:
                    session.send(fields)

    def emit_soon(self, events: list[Fields]) -> None:
        async def later() -> None:
            await asyncio.sleep(0)
            self.emit(events)

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def track(self, fields: Fields) -> None:
        """Update the channel table as Asterisk would (also used for events nobody hears)."""
        name = get(fields, "Event")
        if name == "CoreShowChannel":
            ch = {k: v for k, v in fields if k not in ("Event", "ActionID")}
            self.channels[ch["Uniqueid"]] = ch
            self._born[ch["Uniqueid"]] = time.monotonic() - _seconds(ch.get("Duration", "0"))
            return
        uid = get(fields, "Uniqueid")
        if name == "Newchannel":
            keep = [k for k, _ in _channel_fields("", {})]
            self.channels[uid] = {k: get(fields, k) for k in keep} | {"Application": "", "ApplicationData": "",
                                                                       "BridgeId": ""}
            self._born[uid] = time.monotonic()
            return
        ch = self.channels.get(uid)
        if ch is None:
            return
        if name == "Hangup":
            self.channels.pop(uid, None)
            return
        if get(fields, "ChannelState") == "6":
            self.cdr_answer.setdefault(uid, f"{time.time():.6f}")
        for key in ("ChannelState", "ChannelStateDesc", "Linkedid", "Context", "Exten", "CallerIDNum",
                    "CallerIDName", "ConnectedLineNum", "ConnectedLineName"):
            if get(fields, key):
                ch[key] = get(fields, key)
        if name == "Newexten":
            ch["Application"], ch["ApplicationData"] = get(fields, "Application"), get(fields, "AppData")
        elif name == "BridgeEnter":
            ch["BridgeId"] = get(fields, "BridgeUniqueid")
        elif name == "BridgeLeave":
            ch["BridgeId"] = ""

    def list_channels(self) -> list[Fields]:
        out = []
        for uid, ch in self.channels.items():
            age = int(time.monotonic() - self._born.get(uid, time.monotonic()))
            ch = {**ch, "Duration": f"{age // 3600:02d}:{age // 60 % 60:02d}:{age % 60:02d}"}
            out.append(list(ch.items()))
        return out


def _seconds(duration: str) -> int:
    total = 0
    for part in duration.split(":"):
        total = total * 60 + int(part or 0)
    return total
