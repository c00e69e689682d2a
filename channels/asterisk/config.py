"""An ``asterisk`` channel's settings, and the small text rules the tracker relies on."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schema.text import compile_linear, line_safe, storable_text

DEFAULT_AGENT_PATTERN = r"PJSIP/1\d{3}"
# Longer channel names are cut before matching: Asterisk's are under 80 characters.
MAX_CHANNEL_NAME = 256


def compile_agent_pattern(pattern: str) -> Any:
    return compile_linear(pattern, "agent_pattern")


class AsteriskConfig(BaseModel):
    """``channels.config`` of an asterisk channel (DESIGN §6); the AMI secret lives in ``secrets``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    host: str = Field(min_length=1)
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = Field(min_length=1)
    inbound_contexts: tuple[str, ...] = ("from-external", "from-pstn", "from-trunk", "from-carrier")
    agent_pattern: str = DEFAULT_AGENT_PATTERN
    # Where a click-to-call continues once the agent picked up: Exten = the number.
    originate_context: str = "from-internal"
    # The agent's device for click-to-call; ``{agent}`` is the extension.
    originate_channel: str = "PJSIP/{agent}"
    # Seconds the agent's phone rings for a click-to-call.
    originate_timeout: int = Field(default=30, ge=1, le=300)
    # Where Asterisk writes MixMonitor files: this prefix of a recording's name is
    # replaced by GATEWAY_RECORDINGS_DIR (channels/asterisk/recordings.py).
    monitor_dir: str = "/var/spool/asterisk/monitor"
    # A subfolder of the operator's GATEWAY_RECORDINGS_DIR holding this PBX's
    # recordings (several PBXs can share one mount); never a path of its own.
    recordings_dir: str | None = None

    @model_validator(mode="after")
    def _no_line_breaks(self) -> AsteriskConfig:
        for name in ("host", "username", "agent_pattern", "originate_context", "originate_channel",
                     "monitor_dir", "recordings_dir"):
            value = getattr(self, name)
            if value is not None:
                line_safe(value, name)
        for context in self.inbound_contexts:
            line_safe(context, "inbound_contexts")
        return self

    @field_validator("agent_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_agent_pattern(value)
        return value

    @field_validator("recordings_dir")
    @classmethod
    def _a_subfolder(cls, value: str | None) -> str | None:
        if not value:
            return None
        if posixpath.isabs(value) or ".." in value.split("/") or "\\" in value:
            raise ValueError("recordings_dir must be a relative subfolder of GATEWAY_RECORDINGS_DIR (no '..')")
        return value

    @field_validator("originate_channel")
    @classmethod
    def _names_the_agent(cls, value: str) -> str:
        try:
            filled = value.format(agent="1001")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("originate_channel may only use the {agent} placeholder") from exc
        if "{agent}" not in value or "/" not in filled:
            raise ValueError("originate_channel must look like PJSIP/{agent}")
        return value

    @field_validator("inbound_contexts", mode="before")
    @classmethod
    def _list_of_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        return value

    @property
    def provider_key(self) -> str:
        return f"{self.host}:{self.port}:{self.username}"

    def agents(self) -> AgentMatcher:
        return AgentMatcher(self.agent_pattern)


class AgentMatcher:
    """Tells agent channels (``PJSIP/1001-0000004f``) from others and names the agent (``"1001"``)."""

    def __init__(self, pattern: str) -> None:
        self._re = compile_agent_pattern(pattern)

    def agent_of(self, channel_name: str | None) -> str | None:
        if not channel_name:
            return None
        channel_name = storable_text(channel_name[:MAX_CHANNEL_NAME])
        m = self._re.match(channel_name)
        # The pattern must cover the whole device part: "PJSIP/1001" matches
        # "PJSIP/1001-0000004f" but not "PJSIP/10012-...".
        if m is None or (m.end() < len(channel_name) and channel_name[m.end()] not in "-;"):
            return None
        if m.groups() and m.group(1):
            return str(m.group(1))
        return str(m.group(0)).split("/", 1)[-1]

    def is_agent_extension(self, tech: str, exten: str) -> bool:
        return bool(exten) and self.agent_of(f"{tech}/{exten}") is not None


_UNKNOWN_IDS = {"", "<unknown>", "unknown", "anonymous", "restricted", "private", "unavailable"}


def clean_caller_id(value: str | None) -> str | None:
    """``<unknown>`` and friends mean "no caller id"."""
    if value is None or value.strip().lower() in _UNKNOWN_IDS:
        return None
    return value.strip()


# "\0" becomes U+FFFD, not NUL: PostgreSQL text cannot hold NUL, and a caller name must not lose its call.
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\ufffd"}


def unescape(value: str | None) -> str | None:
    """Undo AMI's C-style escaping of caller names (``O\\'Neil`` → ``O'Neil``)."""
    if value is None or "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def normalize_number(value: str | None) -> str | None:
    """E.164 when the number says its country (``+…`` or ``00…``); otherwise the digits as dialled."""
    value = clean_caller_id(value)
    if value is None:
        return None
    compact = re.sub(r"[\s().\-/]", "", value)
    if re.fullmatch(r"\+\d{6,15}", compact):
        return compact
    if re.fullmatch(r"00\d{6,15}", compact):
        return "+" + compact[2:]
    if re.fullmatch(r"\+?\d+", compact):
        return compact
    return value
