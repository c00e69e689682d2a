"""Provider webhooks: requests authenticated by the provider's own mechanism, not an API key."""

from __future__ import annotations

from starlette.requests import Request

from gateway.http import ApiError, ctx_of
from gateway.log_redaction import remember_secrets
from inbox.channels import ChannelRow, get_channel_any_account
from schema.enums import ChannelType

_MAX_ID = 2**63 - 1


async def webhook_channel(request: Request, type_: ChannelType, label: str) -> ChannelRow:
    """The live channel of ``type_`` named by the URL, else 404 (also for ids that cannot exist)."""
    raw = str(request.path_params["channel_id"])
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= _MAX_ID:
        channel = await get_channel_any_account(ctx_of(request).pool, int(raw))
        if channel is not None and channel.type == type_:
            remember_secrets(channel.secrets)
            return channel
    raise ApiError(404, "not_found", f"no such {label} channel")
