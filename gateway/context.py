"""Everything the lifespan creates, passed explicitly to routes and workers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.config import Settings
from gateway.log_redaction import remember_secrets
from gateway.secret_box import SecretBox, box_for
from gateway.supervise import TaskGroup
from schema.enums import ChannelType
from schema.media import MediaFetcher
from schema.outbound import OutboundSender

if TYPE_CHECKING:
    from gateway.broker import Broker
    from inbox.channels import ChannelRow

# Runs a channel's connection until cancelled.
ChannelRunner = Callable[["AppContext", "ChannelRow"], Awaitable[None]]


@dataclass(frozen=True)
class ChannelSetup:
    provider_key: str | None
    config: dict[str, Any]  # config as stored (derived fields added, e.g. the bot id)


# (ctx, config, secrets, channel_id) -> what to store. Raises gateway.http.ApiError (422) on bad credentials.
ChannelSetupHook = Callable[["AppContext", dict[str, Any], dict[str, Any], int | None], Awaitable[ChannelSetup]]


@dataclass
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    broker: Broker
    tasks: TaskGroup = field(default_factory=TaskGroup)
    # One sender per channel type, plugged into the outbound worker.
    senders: dict[ChannelType, OutboundSender] = field(default_factory=dict)
    # One media downloader per channel type, used by the media worker.
    fetchers: dict[ChannelType, MediaFetcher] = field(default_factory=dict)
    # Long-running connections (AMI, Telegram polling), one task per channel,
    # started by the channel supervisor only while this node holds the lease.
    runners: dict[ChannelType, ChannelRunner] = field(default_factory=dict)
    # Called when a channel is created through the API, before it is stored:
    # checks credentials with the provider and fills derived config.
    setup_hooks: dict[ChannelType, ChannelSetupHook] = field(default_factory=dict)
    # Identifies this process in leases and job locks.
    node_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    extras: dict[str, Any] = field(default_factory=dict)
    # Built from settings on first use (GATEWAY_SECRET_KEY); the lifespan touches it first to fail fast.
    _box: SecretBox | None = field(default=None, repr=False)

    @property
    def secret_box(self) -> SecretBox:
        if self._box is None:
            self._box = box_for(self.settings)
        return self._box

    def channel_secrets(self, channel: ChannelRow) -> dict[str, Any]:
        """A channel's secrets in clear, for the provider call about to use them; never store or log them."""
        secrets = self.secret_box.open(channel.sealed_secrets)
        # Libraries log provider requests whole (URLs with tokens): what is opened is redacted.
        remember_secrets(secrets)
        return secrets
