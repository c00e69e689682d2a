"""The channel-independent media download contract.

Exception tree::

    MediaFetchError          transient: retried with backoff
    ├── MediaTooLarge        permanent: recorded with its reason, never retried
    └── MediaRefused         permanent: the source is not one the gateway may fetch
                             (a path outside the allowed directory, a non-HTTP file path…);
                             the row is ``failed`` with the reason at once
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


class MediaDownload(BaseModel):
    model_config = ConfigDict(frozen=True)

    content: bytes
    mime_type: str | None = None
    name: str | None = None


class MediaFetchError(Exception):
    pass


class MediaTooLarge(MediaFetchError):
    pass


class MediaRefused(MediaFetchError):
    pass


class MediaFetcher(Protocol):
    """One per channel type; the media worker calls it for each pending media file."""

    async def fetch(
        self,
        *,
        provider_id: str | None,
        source_url: str | None,
        channel_config: dict[str, Any],
        channel_secrets: dict[str, Any],
    ) -> MediaDownload: ...
