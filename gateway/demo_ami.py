"""A pretend Asterisk for ``inbox-gateway demo``: an AMI server on loopback that places calls.

It speaks just enough of the Manager protocol for the real AMI adapter
(banner, Login, Ping, CoreShowChannels, Originate) and emits the event
sequence Asterisk 20 emits for an answered or a missed inbound call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

Block = dict[str, str]


def _encode(block: Block) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in block.items()).encode() + b"\r\n"


class DemoPbx:
    def __init__(self, *, username: str, secret: str) -> None:
        self.username = username
        self.secret = secret
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        authenticated = False
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action: Block = {}
                for line in raw.decode(errors="replace").split("\r\n"):
                    key, sep, value = line.partition(":")
                    if sep:
                        action[key.strip().lower()] = value.strip()
                name = action.get("action", "").lower()
                reply: Block = {"Response": "Success", "ActionID": action.get("actionid", "")}
                if name == "login":
                    if action.get("username") != self.username or action.get("secret") != self.secret:
                        writer.write(_encode({**reply, "Response": "Error", "Message": "Authentication failed"}))
                        return
                    authenticated = True
                    self._writers.add(writer)
                    writer.write(_encode({**reply, "Message": "Authentication accepted"}))
                    writer.write(_encode({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"}))
                elif not authenticated:
                    writer.write(_encode({**reply, "Response": "Error", "Message": "Permission denied"}))
                elif name == "ping":
                    writer.write(_encode({**reply, "Ping": "Pong", "Timestamp": f"{time.time():.6f}"}))
                elif name == "coreshowchannels":
                    writer.write(_encode({**reply, "EventList": "start", "Message": "Channels will follow"}))
                    writer.write(_encode({"Event": "CoreShowChannelsComplete", "ActionID": reply["ActionID"],
                                          "EventList": "Complete", "ListItems": "0"}))
                elif name == "originate":
                    writer.write(_encode({**reply, "Message": "Originate successfully queued"}))
                    writer.write(_encode({"Event": "OriginateResponse", "ActionID": reply["ActionID"],
                                          "Response": "Failure", "Reason": "0",
                                          "Channel": action.get("channel", ""), "Uniqueid": "<null>"}))
                else:
                    writer.write(_encode({**reply, "Response": "Error", "Message": "Invalid/unknown command"}))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    def _emit(self, block: Block) -> None:
        for writer in list(self._writers):
            writer.write(_encode({"Privilege": "call,all", **block, "Timestamp": f"{time.time():.6f}"}))

    async def call(self, *, caller: str, name: str, agent: str, answer: bool, ring: float = 2.0, talk: float = 4.0,
                   recording: str | None = None) -> None:
        """Play one inbound call from ``caller`` to ``agent``: answered and talked, or rung out.

        ``recording`` is the MixMonitor file name the dialplan sets before Dial
        (``MixMonitor(...)`` then ``VarSet MIXMONITOR_FILENAME``), as Asterisk announces it.
        """
        n = next(self._ids)
        base = f"{time.time():.0f}"
        caller_uid, agent_uid, bridge = f"{base}.{n * 2}", f"{base}.{n * 2 + 1}", f"demo-bridge-{base}-{n}"
        caller_ch, agent_ch = f"PJSIP/carrier-{n:08x}", f"PJSIP/{agent}-{n:08x}"
        who = {"Channel": caller_ch, "CallerIDNum": caller, "CallerIDName": name, "Context": "from-carrier",
               "Exten": "15105550100", "Uniqueid": caller_uid, "Linkedid": caller_uid}
        dest = {"DestChannel": agent_ch, "DestCallerIDNum": agent, "DestContext": "from-internal",
                "DestExten": agent, "DestUniqueid": agent_uid, "DestLinkedid": caller_uid}
        leg = {"Channel": agent_ch, "CallerIDNum": agent, "Context": "from-internal", "Exten": agent,
               "Uniqueid": agent_uid, "Linkedid": caller_uid}
        self._emit({"Event": "Newchannel", "ChannelState": "4", "ChannelStateDesc": "Ring", **who})
        if recording is not None:
            self._emit({"Event": "VarSet", "Privilege": "dialplan,all", **who,
                        "Variable": "MIXMONITOR_FILENAME", "Value": recording})
        self._emit({"Event": "DialBegin", "ChannelState": "4", **who, **dest, "DialString": agent})
        self._emit({"Event": "Newchannel", "ChannelState": "5", "ChannelStateDesc": "Ringing", **leg})
        await asyncio.sleep(ring)
        if not answer:
            self._emit({"Event": "DialEnd", **who, **dest, "DialStatus": "NOANSWER"})
            self._emit({"Event": "Hangup", **leg, "Cause": "0", "Cause-txt": "Unknown"})
            self._emit({"Event": "Hangup", **who, "Cause": "16", "Cause-txt": "Normal Clearing"})
            return
        self._emit({"Event": "DialEnd", **who, **dest, "DialStatus": "ANSWER"})
        self._emit({"Event": "Newstate", "ChannelState": "6", "ChannelStateDesc": "Up", **leg})
        self._emit({"Event": "Newstate", "ChannelState": "6", "ChannelStateDesc": "Up", **who})
        for party in (who, leg):
            self._emit({"Event": "BridgeEnter", **party, "BridgeUniqueid": bridge, "BridgeType": "basic"})
        await asyncio.sleep(talk)
        for party in (leg, who):
            self._emit({"Event": "BridgeLeave", **party, "BridgeUniqueid": bridge, "BridgeType": "basic"})
        self._emit({"Event": "Hangup", **leg, "Cause": "16", "Cause-txt": "Normal Clearing"})
        self._emit({"Event": "Hangup", **who, "Cause": "16", "Cause-txt": "Normal Clearing"})
