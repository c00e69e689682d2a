"""When the channels of calls rebuilt after a reconnect were answered, asked of Asterisk.

A call answered while no gateway listened is only seen in ``CoreShowChannels``:
up, bridged, and as old as ``Duration`` says. The agent channel's creation is
the ringing, not the answer (3.8 s early in a real run). Asterisk keeps the
answer time in each channel's CDR: ``Getvar CDR(answer,f)`` (epoch seconds; a
channel never answered gives ``0.000000`` or nothing). ``Getvar`` rather than
``Status Variables=…``: the latter splits its list on commas, and the ``f``
option needs one. A channel we cannot ask about keeps the estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from channels.asterisk.connection import AmiActionUnknown, AmiConnection

ANSWER_VARIABLE = "CDR(answer,f)"
MAX_ASKED = 200  # per reconnect: a PBX with more live calls keeps estimates for the rest


def answer_time(value: str | None) -> datetime | None:
    """``"1741951012.250419"`` → that instant; ``None`` for empty, zero or garbage."""
    try:
        seconds = float((value or "").strip())
    except ValueError:
        return None
    if seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def worth_asking(listed: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """Listed channels that are up and in a bridge: the only ones an answer time can matter for."""
    out = [
        e for e in listed
        if e.get("bridgeid") and e.get("channel") and e.get("uniqueid")
        and (e.get("channelstate") == "6" or e.get("channelstatedesc", "").lower() == "up")
    ]
    return out[:MAX_ASKED]


async def answer_times(conn: AmiConnection, listed: Sequence[Mapping[str, str]]) -> dict[str, datetime]:
    """Uniqueid → answer time, for the listed channels Asterisk could tell us about."""
    out: dict[str, datetime] = {}
    for e in worth_asking(listed):
        try:
            reply = await conn.send({"Action": "Getvar", "Channel": e["channel"], "Variable": ANSWER_VARIABLE})
        except AmiActionUnknown:
            break  # no answer: not worth waiting out once per channel
        if reply.get("response", "").lower() != "success":
            continue  # the channel hung up meanwhile, or no permission
        at = answer_time(reply.get("value"))
        if at is not None:
            out[e["uniqueid"]] = at
    return out
