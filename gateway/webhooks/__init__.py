"""Provider webhooks: requests authenticated by the provider's own mechanism, not an API key."""

from __future__ import annotations

from starlette.requests import Request

from gateway.http import ApiError, ctx_of, parse_db_id
from gateway.logs import ACCOUNT_ID, CHANNEL_ID
from inbox.channels import ChannelRow, get_channel_any_account
from schema.enums import ChannelType


async def webhook_channel(request: Request, type_: ChannelType, label: str) -> ChannelRow:
    """The live channel of ``type_`` named by the URL, else 404 (also for ids that cannot exist)."""
    raw = str(request.path_params["channel_id"])
    if (channel_id := parse_db_id(raw)) is not None:
        channel = await get_channel_any_account(ctx_of(request).pool, channel_id)
        if channel is not None and channel.type == type_:
            ACCOUNT_ID.set(channel.account_id)
            CHANNEL_ID.set(channel.id)
            return channel
    raise ApiError(404, "not_found", f"no such {label} channel")
