"""The tracker's bookkeeping: channels by Uniqueid, calls by Linkedid, bridges, and what changed.

``CallTracker`` (tracker.py) feeds events into these; this part decides which
call a channel belongs to, what direction a new call has, when a bridge is an
agent answer, and which snapshots to hand out.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime

from channels.asterisk._state import Call, Channel, Originate
from channels.asterisk.config import AgentMatcher, clean_caller_id, normalize_number, unescape
from schema.calls import CallSnapshot
from schema.enums import CallDirection

# ``Local/<exten>@<context>-<n>;1`` (or ``;2``): the two halves of a Local channel pair.
_LOCAL = re.compile(r"Local/(?P<exten>[^@/;]+)@[^;]*;(?P<half>[12])")

# Events that may introduce a channel we have not seen (others about unknown channels are ignored).
_CREATING = {"newchannel", "newstate", "dialbegin", "bridgeenter", "coreshowchannel"}


class CallBook:
    def __init__(self, *, agent_pattern: str, inbound_contexts: Iterable[str], remember_ended: int = 2000) -> None:
        self._agents = AgentMatcher(agent_pattern)
        self._inbound = frozenset(inbound_contexts)
        self._channels: dict[str, Channel] = {}
        self._calls: dict[str, Call] = {}
        self._bridges: dict[str, dict[str, None]] = {}  # bridge id -> member uniqueids, in entry order
        self._originates: dict[str, Originate] = {}
        self._ended: OrderedDict[str, Call] = OrderedDict()
        self._remember = remember_ended
        self._touched: dict[int, Call] = {}

    def _synthetic(self, orig: Originate) -> Call:
        """A click-to-call that never produced a channel."""
        return Call(
            linkedid=orig.originate_id,
            originator=orig.originate_id,
            direction=CallDirection.OUTBOUND,
            started_at=orig.requested_at,
            originate=orig,
            from_number=orig.agent,
            to_number=orig.to_number,
            agent=orig.agent,
        )

    @staticmethod
    def _tech(ch: Channel | None) -> str:
        return ch.name.split("/", 1)[0] if ch is not None and "/" in ch.name else "PJSIP"

    def _touch(self, call: Call) -> Call:
        self._touched[id(call)] = call
        return call

    def _call_of(self, ch: Channel | None) -> Call | None:
        if ch is None:
            return None
        call = self._calls.get(ch.linkedid)
        if call is None:
            ended = self._ended.get(ch.linkedid)
            return self._touch(ended) if ended is not None and ch.uniqueid in ended.channels else None
        return self._touch(call)

    def _channel(self, e: Mapping[str, str], prefix: str, at: datetime, *, create: bool) -> Channel | None:
        uid = e.get(f"{prefix}uniqueid")
        if not uid or uid == "<null>":
            return None
        linkedid = e.get(f"{prefix}linkedid") or uid
        ch = self._channels.get(uid)
        if ch is None:
            name = e.get("event", "").lower()
            if not create or name not in _CREATING or (linkedid in self._ended and linkedid not in self._calls):
                return None
            ch = Channel(uid, e.get(f"{prefix}channel", ""), linkedid, None, at)
            ch.agent = self._agents.agent_of(ch.name)
            self._update(ch, e, prefix)
            self._channels[uid] = ch
            self._attach(ch, at)
            return ch
        self._update(ch, e, prefix)
        if linkedid != ch.linkedid:
            self._move(ch, linkedid, at)
        return ch

    @staticmethod
    def _update(ch: Channel, e: Mapping[str, str], prefix: str) -> None:
        if e.get(f"{prefix}channel"):
            ch.name = e[f"{prefix}channel"]
        for attr, key in (("context", "context"), ("exten", "exten")):
            if e.get(prefix + key):
                setattr(ch, attr, e[prefix + key])
        if f"{prefix}calleridnum" in e:
            ch.caller_num = e[f"{prefix}calleridnum"]
        if f"{prefix}calleridname" in e:
            ch.caller_name = e[f"{prefix}calleridname"]
        state = e.get(f"{prefix}channelstate")
        if state:
            ch.up = state == "6"
            ch.was_up = ch.was_up or ch.up

    def _attach(self, ch: Channel, at: datetime) -> None:
        call = self._calls.get(ch.linkedid)
        if call is None:
            call = self._new_call(ch, at)
            self._calls[ch.linkedid] = call
            self._ended.pop(ch.linkedid, None)
        self._touch(call)
        call.channels[ch.uniqueid] = ch
        if ch.uniqueid == call.originator:
            return
        if ch.agent is None and call.direction != CallDirection.INBOUND:
            call.party = call.party or ch.uniqueid
            if not call.direction_settled:
                call.direction, call.direction_settled = CallDirection.OUTBOUND, True
                call.to_number = call.to_number or normalize_number(ch.caller_num)
        elif ch.agent is not None and not call.direction_settled:
            call.direction, call.direction_settled = CallDirection.INTERNAL, True
            call.to_number = ch.agent

    def _new_call(self, ch: Channel, at: datetime) -> Call:
        orig = self._originates.get(ch.linkedid) or self._originates.get(ch.uniqueid)
        call = Call(linkedid=ch.linkedid, originator=ch.uniqueid, direction=CallDirection.INBOUND, started_at=at)
        if orig is not None:
            call.direction, call.originate = CallDirection.OUTBOUND, orig
            call.from_number, call.to_number, call.agent = orig.agent, orig.to_number, orig.agent
        elif ch.agent is not None and ch.context not in self._inbound:
            call.from_number, call.party = ch.agent, ch.uniqueid
            if self._agents.is_agent_extension(self._tech(ch), ch.exten):
                call.direction, call.to_number = CallDirection.INTERNAL, ch.exten
            elif normalize_number(ch.exten) and (normalize_number(ch.exten) or "").lstrip("+").isdigit():
                call.direction, call.to_number = CallDirection.OUTBOUND, normalize_number(ch.exten)
                call.party = None  # the customer is whoever the agent reaches
            else:
                call.direction, call.direction_settled = CallDirection.INTERNAL, False
        else:
            # A caller from outside: an inbound context (which wins over a name that looks like an
            # agent's), or a context we were not told about.
            call.party = ch.uniqueid
            call.from_number = normalize_number(ch.caller_num)
            call.to_number = normalize_number(ch.exten) if ch.exten not in ("", "s") else None
            call.caller_name = unescape(clean_caller_id(ch.caller_name))
        return call

    def _move(self, ch: Channel, linkedid: str, at: datetime) -> None:
        """Asterisk rewrote this channel's Linkedid (bridges merged): it now belongs to that call."""
        old = self._calls.get(ch.linkedid)
        if old is not None:
            old.channels.pop(ch.uniqueid, None)
            self._touch(old)
        ch.linkedid = linkedid
        self._attach(ch, at)
        if old is not None and not old.live_channels and old.ended_at is None:
            old.hangup_cause = old.hangup_cause or "merged"
            old.add_event("merged", at, f"merged:{old.linkedid}:{linkedid}", into=linkedid)
            self._end(old, at)

    def _check_answer(
        self, call: Call, bridge: str, at: datetime, *, estimated: bool = False,
        answered: Mapping[str, datetime] | None = None,
    ) -> None:
        """``estimated``: rebuilt after a reconnect, the answer was not seen. The latest answer time
        Asterisk told us (``answered``, by Uniqueid) of the customer's and the agent's channels is it
        (an IVR may have answered the customer long before); never before the agent channel existed."""
        members = self._bridged_with(bridge)
        if call.party is None or not any(m.uniqueid == call.party for m in members):
            return
        agents = [m for m in members if m.agent is not None and m.uniqueid != call.party]
        if not agents:
            return
        agent = agents[-1]  # the latest to enter
        bridge = agent.bridge or bridge
        if call.answered_at is None and not estimated:
            call.answered_at = at
        elif call.answered_at is None:
            told = [answered[uid] for uid in (agent.uniqueid, call.party) if answered and uid in answered]
            call.answered_at = max([*told, agent.created_at, call.started_at])
        if call.agent_channel != agent.uniqueid:
            call.agent, call.agent_channel = agent.agent, agent.uniqueid
        call.add_event("answered", at, f"answered:{agent.uniqueid}:{bridge}", agent=agent.agent)

    def _agent_reached(
        self, name: str, uid: str | None, *, tech: str, bridges: list[str], exclude: set[str]
    ) -> tuple[str | None, str | None]:
        """The agent (and their channel's Uniqueid) a transfer reached through channel ``name``/``uid``.

        Asterisk names the target as it sees it: an agent's own channel, or (when
        the dialplan dials ``Local/...``) the ``;1`` half of a Local pair whose
        ``;2`` half is bridged with the agent, or nothing at all. In that order:
        the channel's agent; the agent bridged with the Local channel's other
        half; an agent bridged in ``bridges`` (the transfer's bridges, Local
        pairs followed; ``exclude`` the transferers); the extension a Local
        channel's name dials.
        """
        ch = self._channels.get(uid or "")
        if ch is not None and ch.agent is not None:
            return ch.agent, ch.uniqueid
        local = _LOCAL.fullmatch(name or "")
        if local is not None:
            twin_name = name[:-1] + ("2" if local["half"] == "1" else "1")
            twin_bridges = [c.bridge for c in self._channels.values() if c.name == twin_name and c.bridge]
            bridges = twin_bridges + bridges
        for bridge in bridges:
            agents = [m for m in self._bridged_with(bridge) if m.agent is not None and m.uniqueid not in exclude]
            if agents:
                return agents[-1].agent, agents[-1].uniqueid
        if local is not None:
            return self._agents.agent_of(f"{tech}/{local['exten']}"), None
        return None, None

    def _bridged_with(self, bridge: str) -> list[Channel]:
        """Members of a bridge, plus those reached through a Local channel pair (``;1`` in one
        bridge, ``;2`` in another, as queues and ``Dial(Local/...)`` leave them when not optimised away)."""
        out: list[Channel] = []
        seen: set[str] = set()
        todo = [bridge]
        while todo:
            current = todo.pop(0)
            if current in seen:
                continue
            seen.add(current)
            for uid in self._bridges.get(current, {}):
                member = self._channels.get(uid)
                if member is None:
                    continue
                out.append(member)
                if member.name.startswith("Local/") and member.name[-2:] in (";1", ";2"):
                    twin = member.name[:-1] + ("2" if member.name.endswith("1") else "1")
                    todo += [c.bridge for c in self._channels.values() if c.name == twin and c.bridge]
        return out

    def _end(self, call: Call, at: datetime) -> None:
        if call.ended_at is not None:
            return
        call.ended_at = max(at, call.started_at)
        call.add_event(
            "hangup", at, f"hangup:{call.linkedid}", cause=call.hangup_cause, disposition=str(call.disposition())
        )
        self._touch(call)

    def _flush(self) -> list[CallSnapshot]:
        out: list[CallSnapshot] = []
        for call in self._touched.values():
            snap = call.snapshot()
            if snap != call.last:
                out.append(snap)
                call.last = snap
            if call.ended_at is None:
                continue
            if self._calls.get(call.linkedid) is call:
                del self._calls[call.linkedid]
                for uid in list(call.channels):
                    self._channels.pop(uid, None)
            # Kept a while: late events (an OriginateResponse after the Hangup) still find the call.
            self._ended[call.linkedid] = call
            self._ended.move_to_end(call.linkedid)
            while len(self._ended) > self._remember:
                self._ended.popitem(last=False)
            if call.originate is not None:
                self._originates.pop(call.originate.originate_id, None)
        self._touched = {}
        return out
