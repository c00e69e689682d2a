"""Everything the lifespan creates, passed explicitly to routes and workers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.config import Settings
from gateway.supervise import TaskGroup
from schema.enums import ChannelType
from schema.outbound import OutboundSender

if TYPE_CHECKING:
    from gateway.broker import Broker


@dataclass
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    broker: Broker
    tasks: TaskGroup = field(default_factory=TaskGroup)
    # One sender per channel type, plugged into the outbound worker.
    senders: dict[ChannelType, OutboundSender] = field(default_factory=dict)
    # Identifies this process in leases and job locks.
    node_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    extras: dict[str, Any] = field(default_factory=dict)
