"""Which Asterisk we are talking to, and whether we can record its calls.

Calls are tracked by ``Linkedid`` and the bridge events of Asterisk 12's
bridging core (``BridgeEnter``, ``DialBegin``, ``AttendedTransfer``). Asterisk
11 and older send ``Dial``/``Bridge``/``Link`` events and channel events
without ``Linkedid``: every channel would look like a call of its own (one
real call became four ghost calls). Such a PBX is refused, clearly, rather
than recorded wrongly.

Two clues, both from the PBX itself: the banner's AMI protocol version
(``Asterisk Call Manager/1.3`` up to Asterisk 11; ``2.x`` from Asterisk 12,
``9.x`` for Asterisk 20) and ``CoreSettings``' ``AsteriskVersion``. A clue we
cannot read (``GIT-master-…``, a refused ``CoreSettings``) does not refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from channels.asterisk.connection import AmiActionUnknown, AmiConnection, AmiError

REQUIRED = "Asterisk 12 or later required"
_FIRST_AMI_MAJOR = 2  # the AMI protocol version Asterisk 12 introduced
_FIRST_ASTERISK_MAJOR = 12
_MAJOR = re.compile(r"(?:certified[/-])?(\d+)\.\d+")


class AmiUnsupportedVersion(AmiError):
    """The PBX is older than Asterisk 12: its event stream cannot be tracked."""


@dataclass(frozen=True)
class PbxVersion:
    ami: str | None  # from the banner, e.g. "9.0.0"
    asterisk: str | None  # from CoreSettings, e.g. "22.1.0"

    def refusal(self) -> str | None:
        """Why calls from this PBX cannot be recorded, or ``None``."""
        ami, asterisk = _major(self.ami), _major(self.asterisk)
        too_old = (ami is not None and ami < _FIRST_AMI_MAJOR) or (
            asterisk is not None and asterisk < _FIRST_ASTERISK_MAJOR
        )
        if not too_old:
            return None
        seen = ", ".join(
            part
            for part in (f"Asterisk {self.asterisk}" if self.asterisk else None,
                         f"AMI {self.ami}" if self.ami else None)
            if part
        )
        return f"{REQUIRED} (this PBX runs {seen}); no calls are recorded from it"


def _major(version: str | None) -> int | None:
    match = _MAJOR.match((version or "").strip().lower())
    return int(match.group(1)) if match else None


async def probe(conn: AmiConnection) -> PbxVersion:
    """Read the version of a logged-in session; raises ``AmiUnsupportedVersion`` for Asterisk 11 and older."""
    try:
        reply = await conn.send({"Action": "CoreSettings"})
    except AmiActionUnknown:
        reply = {}  # no answer: the pinger tells a dead session; the banner alone decides
    if reply.get("response", "").lower() != "success":
        reply = {}  # e.g. no "system" read permission: the banner alone decides
    found = PbxVersion(ami=conn.ami_version or reply.get("amiversion"), asterisk=reply.get("asteriskversion"))
    reason = found.refusal()
    if reason is not None:
        raise AmiUnsupportedVersion(reason)
    return found
