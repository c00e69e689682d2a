"""WebSocket frames of ``GET /ws`` (DESIGN §7), as pydantic models.

Client → server: ``subscribe``, ``unsubscribe``, ``ping``.
Server → client: ``subscribed``, ``event``, ``pong``, ``error``.

``parse_client_frame`` is the whole decoder: text in, a frame model out, or a
``FrameError`` carrying the ``error`` frame's code. It does no I/O.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from schema import strict_json
from schema.enums import EventName

# A connection may hold this many topics at most; a subscribe frame this many.
MAX_TOPICS = 100

_CONVERSATION_RE = re.compile(r"^conversation:([1-9][0-9]{0,18})$")


class Topic(BaseModel):
    """One subscription: ``account``, ``calls`` or ``conversation:<id>``."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["account", "calls", "conversation"]
    conversation_id: int | None = None

    def __str__(self) -> str:
        if self.kind == "conversation":
            return f"conversation:{self.conversation_id}"
        return self.kind

    def matches(self, event: str, conversation_id: int | None) -> bool:
        if self.kind == "account":
            return True
        if self.kind == "calls":
            return event.startswith("call.")
        return conversation_id is not None and conversation_id == self.conversation_id


def parse_topic(text: str) -> Topic:
    """``"account"`` / ``"calls"`` / ``"conversation:<id>"``; anything else raises ``ValueError``."""
    if text in ("account", "calls"):
        return Topic(kind="account" if text == "account" else "calls")
    match = _CONVERSATION_RE.match(text)
    if match is None:
        raise ValueError(f"unknown topic {text!r}: use account, calls or conversation:<id>")
    conversation_id = int(match.group(1))
    if conversation_id > strict_json.INT64_MAX:  # 19 digits can still overflow a bigint
        raise ValueError(f"no such conversation id: {conversation_id}")
    return Topic(kind="conversation", conversation_id=conversation_id)


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubscribeFrame(_Frame):
    type: Literal["subscribe"]
    topics: list[StrictStr] = Field(min_length=1, max_length=MAX_TOPICS)
    # Replay every event with seq > after from the log first; null: live from now.
    after: StrictInt | None = Field(default=None, ge=0, le=2**63 - 1)


class UnsubscribeFrame(_Frame):
    type: Literal["unsubscribe"]
    topics: list[StrictStr] = Field(min_length=1, max_length=MAX_TOPICS)


class PingFrame(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[SubscribeFrame | UnsubscribeFrame | PingFrame, Field(discriminator="type")]
_client_frame: TypeAdapter[SubscribeFrame | UnsubscribeFrame | PingFrame] = TypeAdapter(ClientFrame)
CLIENT_FRAME_TYPES = ("subscribe", "unsubscribe", "ping")


class SubscribedFrame(_Frame):
    type: Literal["subscribed"] = "subscribed"
    topics: list[str]  # every topic the connection now holds
    seq: int  # the account's latest seq (0 when it has none)


class EventFrame(_Frame):
    """Same fields as an ``/api/v1/events`` item (``inbox.eventlog.EventRecord.to_json``)."""

    type: Literal["event"] = "event"
    seq: int
    event: EventName
    account_id: int
    conversation_id: int | None
    data: dict[str, Any]
    ts: datetime


class PongFrame(_Frame):
    type: Literal["pong"] = "pong"


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: str
    message: str


ServerFrame = Annotated[SubscribedFrame | EventFrame | PongFrame | ErrorFrame, Field(discriminator="type")]


class FrameError(ValueError):
    """A client frame that cannot be acted on; becomes an ``error`` frame, the socket stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def frame(self) -> ErrorFrame:
        return ErrorFrame(code=self.code, message=self.message)


def parse_client_frame(text: str) -> SubscribeFrame | UnsubscribeFrame | PingFrame:
    try:
        raw = strict_json.loads(text)
    except strict_json.NumberRejected as exc:
        # Well-formed, like an ``after`` one past int64: a field error, not a malformed frame.
        raise FrameError("invalid_frame", str(exc)) from None
    except strict_json.JsonRejected as exc:
        raise FrameError("malformed_frame", f"frame is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise FrameError("malformed_frame", "frame must be a JSON object")
    if (problem := strict_json.unstorable(raw)) is not None:
        raise FrameError("malformed_frame", problem)
    kind = raw.get("type")
    if kind not in CLIENT_FRAME_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {kind!r}: use subscribe, unsubscribe or ping")
    try:
        return _client_frame.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or kind
        raise FrameError("invalid_frame", f"{kind}: {where}: {first['msg']}") from exc


def parse_topics(texts: list[str]) -> list[Topic]:
    """All topics of a frame, or ``FrameError`` naming the first bad one (nothing is applied)."""
    topics: list[Topic] = []
    for text in texts:
        try:
            topic = parse_topic(text)
        except ValueError as exc:
            raise FrameError("invalid_topic", str(exc)) from exc
        if topic not in topics:
            topics.append(topic)
    return topics


def dump(frame: BaseModel) -> str:
    return frame.model_dump_json()
