"""Replaying recorded AMI traces through the real parser into the tracker, with a scripted clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from channels.asterisk.codec import AmiMessage, iter_messages
from channels.asterisk.tracker import CallTracker
from schema.calls import CallSnapshot

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ami"
AGENTS = r"PJSIP/1\d{3}"
INBOUND = ("from-carrier",)


def trace(name: str) -> list[AmiMessage]:
    return list(iter_messages((FIXTURES / name).read_text()))


def events_of(name: str) -> list[AmiMessage]:
    return [m for m in trace(name) if "event" in m]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ev(name: str, **fields: str) -> AmiMessage:
    """A hand-written event; keys as Asterisk spells them, lower-cased like the codec does."""
    return {"event": name, **{k.lower().replace("_", "-"): v for k, v in fields.items()}}


@dataclass
class Milestone:
    """When the ``nth`` (0-based) event named ``event`` arrives, the clock jumps to ``at``."""

    event: str
    nth: int
    at: datetime


@dataclass
class Replay:
    snapshots: list[CallSnapshot] = field(default_factory=list)

    def final(self) -> dict[str, CallSnapshot]:
        """The last snapshot of each call, by Linkedid."""
        out: dict[str, CallSnapshot] = {}
        for s in self.snapshots:
            out[s.external_id or s.originate_id or ""] = s
        return out


def new_tracker() -> CallTracker:
    return CallTracker(agent_pattern=AGENTS, inbound_contexts=INBOUND)


def replay(
    events: Iterable[AmiMessage],
    milestones: Sequence[Milestone] = (),
    *,
    start: datetime | None = None,
    tracker: CallTracker | None = None,
) -> Replay:
    """Feed events in order; ``CoreShowChannel`` lists go through ``resync`` like the runner does."""
    tracker = tracker or new_tracker()
    clock = start or datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    seen: dict[str, int] = {}
    listed: list[AmiMessage] = []
    result = Replay()
    for e in events:
        name = e.get("event", "")
        n = seen.get(name, 0)
        seen[name] = n + 1
        for m in milestones:
            if m.event == name and m.nth == n:
                clock = m.at
        if name == "CoreShowChannel":
            listed.append(e)
            continue
        if name == "CoreShowChannelsComplete":
            result.snapshots += tracker.resync(listed, at=clock)
            listed = []
            continue
        result.snapshots += tracker.feed(e, clock)
    return result


async def eventually(check, *, within: float = 10.0):
    """Poll ``check`` (sync or async) until it returns something truthy."""
    import asyncio
    import inspect

    async with asyncio.timeout(within):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.02)
