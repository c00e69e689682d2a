"""The tracker's working state: channels, calls, and how a call becomes a ``CallSnapshot``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from schema.calls import CallEventRecord, CallSnapshot
from schema.enums import CallDirection, CallDisposition, CallStatus

# Hangup causes (Q.850) that say the far end was busy.
_BUSY_CAUSES = {"17"}

# OriginateResponse ``Reason`` (an ast_control frame): 3 rang out, 5 busy, 1 hung up.
_ORIGINATE_REASONS = {
    "1": CallDisposition.NO_ANSWER,
    "3": CallDisposition.NO_ANSWER,
    "5": CallDisposition.BUSY,
}


def originate_disposition(reason: str | None) -> CallDisposition:
    return _ORIGINATE_REASONS.get((reason or "").strip(), CallDisposition.FAILED)


def cause_name(cause_txt: str | None, cause: str | None) -> str | None:
    """``"Normal Clearing"`` → ``"normal_clearing"``; the number when there is no text."""
    if cause_txt and cause_txt.strip():
        return re.sub(r"[^a-z0-9]+", "_", cause_txt.strip().lower()).strip("_") or None
    if cause and cause.strip() and cause.strip() != "0":
        return f"cause_{cause.strip()}"
    return "unknown" if cause is not None else None


def seconds(later: datetime, earlier: datetime) -> int:
    return max(0, int((later - earlier).total_seconds() + 0.5))


@dataclass
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    agent: str | None
    created_at: datetime
    context: str = ""
    exten: str = ""
    caller_num: str | None = None
    caller_name: str | None = None
    bridge: str | None = None
    up: bool = False
    was_up: bool = False
    remote_hangup: bool = False
    hung_up: bool = False
    cause: str | None = None
    cause_txt: str | None = None


@dataclass
class Originate:
    originate_id: str
    agent: str
    to_number: str
    requested_at: datetime
    disposition: CallDisposition | None = None  # set by a failed OriginateResponse


@dataclass
class Call:
    linkedid: str
    originator: str  # uniqueid of the channel that started the call
    direction: CallDirection
    started_at: datetime
    originate: Originate | None = None
    # Agent-originated calls stay provisional until we see what they dial.
    direction_settled: bool = True
    from_number: str | None = None
    to_number: str | None = None
    caller_name: str | None = None
    party: str | None = None  # uniqueid of the customer's channel (the caller, or who we called)
    channels: dict[str, Channel] = field(default_factory=dict)
    dials: dict[str, str] = field(default_factory=dict)  # dest uniqueid -> DialStatus
    answered_at: datetime | None = None
    agent: str | None = None
    agent_channel: str | None = None
    ended_at: datetime | None = None
    hangup_cause: str | None = None
    forced_disposition: CallDisposition | None = None
    recording_path: str | None = None
    events: list[CallEventRecord] = field(default_factory=list)
    last: CallSnapshot | None = None

    def add_event(self, type_: str, at: datetime, key: str, **data: object) -> None:
        if any(e.key == key for e in self.events):
            return
        clean = {k: v for k, v in data.items() if v is not None}
        self.events.append(CallEventRecord(type=type_, data=clean, occurred_at=at, key=key))

    @property
    def live_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if not c.hung_up]

    def disposition(self) -> CallDisposition:
        if self.answered_at is not None:
            return CallDisposition.ANSWERED
        if self.forced_disposition is not None:
            return self.forced_disposition
        if self.originate is not None and self.originate.disposition is not None:
            return self.originate.disposition
        statuses = [s.upper() for s in self.dials.values()]
        if "CANCEL" in statuses:
            return CallDisposition.CANCELLED
        if statuses and all(s == "BUSY" for s in statuses):
            return CallDisposition.BUSY
        if "NOANSWER" in statuses:
            return CallDisposition.NO_ANSWER
        if statuses:
            return CallDisposition.FAILED
        origin = self.channels.get(self.originator)
        if self.originate is not None and origin is not None and not origin.was_up:
            # The agent's own phone never picked up a click-to-call.
            return CallDisposition.BUSY if origin.cause in _BUSY_CAUSES else CallDisposition.NO_ANSWER
        party = self.channels.get(self.party or self.originator)
        if party is not None and party.remote_hangup:
            return CallDisposition.CANCELLED
        return CallDisposition.FAILED

    def status(self) -> CallStatus:
        if self.ended_at is not None:
            return CallStatus.ENDED
        if self.answered_at is not None:
            return CallStatus.IN_PROGRESS
        return CallStatus.RINGING

    def snapshot(self) -> CallSnapshot:
        ended = self.ended_at
        return CallSnapshot(
            external_id=self.linkedid,
            originate_id=self.originate.originate_id if self.originate else None,
            direction=self.direction,
            from_number=self.from_number,
            to_number=self.to_number,
            caller_name=self.caller_name,
            status=self.status(),
            disposition=self.disposition() if ended else None,
            agent=self.agent,
            started_at=self.started_at,
            answered_at=self.answered_at,
            ended_at=ended,
            duration=seconds(ended, self.started_at) if ended else None,
            billsec=(seconds(ended, self.answered_at) if self.answered_at else 0) if ended else None,
            hangup_cause=self.hangup_cause if ended else None,  # the party may hang up before the call ends
            recording_path=self.recording_path,
            events=tuple(self.events),
        )
