"""A call as the telephony adapter sees it: a snapshot after each change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schema.enums import CallDirection, CallDisposition, CallStatus


class CallEventRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str  # ringing, answered, transfer, hold, unhold, recording, hangup, reconciled, originate
    data: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime
    # Stable across re-deliveries of the same AMI event, so replays add nothing.
    key: str


class CallSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    external_id: str | None  # the Asterisk Linkedid; None until known (click-to-call)
    originate_id: str | None = None  # the ChannelId we chose for an Originate
    direction: CallDirection
    from_number: str | None = None
    to_number: str | None = None
    caller_name: str | None = None
    status: CallStatus
    disposition: CallDisposition | None = None
    agent: str | None = None
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration: int | None = None
    billsec: int | None = None
    hangup_cause: str | None = None
    recording_path: str | None = None
    events: tuple[CallEventRecord, ...] = ()
