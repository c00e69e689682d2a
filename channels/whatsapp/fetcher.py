"""Media download for WhatsApp: metadata by media id, then the file with the bearer token.

The download URL from the metadata is short-lived (about five minutes), so it
is always asked for fresh; a URL found in the webhook itself is only a fallback
for media without an id.
"""

from __future__ import annotations

from typing import Any

from channels.whatsapp.client import (
    GraphApiClient,
    GraphApiError,
    GraphTooLarge,
    GraphTransportError,
    GraphUntrustedUrl,
)
from schema.media import MediaDownload, MediaFetchError, MediaRefused, MediaTooLarge

# The Cloud API's own ceiling is 100 MB (documents); a channel may set a lower one.
DEFAULT_MAX_BYTES = 100 * 1024 * 1024


class WhatsAppFetcher:
    """Implements :class:`schema.media.MediaFetcher` for WhatsApp channels."""

    def __init__(self, client: GraphApiClient, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._client = client
        self._max_bytes = max_bytes

    async def fetch(
        self,
        *,
        provider_id: str | None,
        source_url: str | None,
        channel_config: dict[str, Any],
        channel_secrets: dict[str, Any],
    ) -> MediaDownload:
        token = channel_secrets.get("access_token")
        if not isinstance(token, str) or not token:
            raise MediaFetchError("the channel has no access_token")
        limit = channel_config.get("max_media_bytes")
        max_bytes = limit if isinstance(limit, int) and limit > 0 else self._max_bytes
        try:
            mime_type = None
            url = source_url
            if provider_id:
                info = await self._client.media_info(media_id=provider_id, access_token=token)
                if info.file_size is not None and info.file_size > max_bytes:
                    raise MediaTooLarge(f"media is {info.file_size} bytes, over the {max_bytes} byte limit")
                url, mime_type = info.url, info.mime_type
            if not url:
                raise MediaFetchError("the media has neither a provider id nor a URL")
            content, content_type = await self._client.download(url=url, access_token=token, max_bytes=max_bytes)
        except GraphTooLarge as exc:
            raise MediaTooLarge(str(exc)) from exc
        except GraphUntrustedUrl as exc:
            raise MediaRefused(str(exc)) from exc
        except (GraphApiError, GraphTransportError) as exc:
            raise MediaFetchError(str(exc)) from exc
        return MediaDownload(content=content, mime_type=mime_type or _bare(content_type))


def _bare(content_type: str | None) -> str | None:
    return content_type.split(";", 1)[0].strip() or None if content_type else None
