"""MixMonitor recordings as media: the media worker fetches them through ``RecordingFetcher``.

The file name comes from ``VarSet MIXMONITOR_FILENAME`` (an absolute path on the
Asterisk host). The gateway reads it when it can see the file: on the same host,
or through a mount named by the channel's ``recordings_dir``. A file that is not
readable (yet) is a transient error: the media worker retries with backoff and
finally marks the media ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import mimetypes
import posixpath
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from channels.asterisk.config import AsteriskConfig
from schema.media import MediaDownload, MediaFetchError, MediaTooLarge

MAX_RECORDING_BYTES = 512 * 1024 * 1024
_MIME = {".wav": "audio/wav", ".wav49": "audio/wav", ".gsm": "audio/gsm", ".mp3": "audio/mpeg",
         ".ogg": "audio/ogg", ".sln": "audio/L16"}


def recording_mime(path: str) -> str | None:
    ext = posixpath.splitext(path)[1].lower()
    return _MIME.get(ext) or mimetypes.guess_type(path)[0]


def local_path(path: str, config: AsteriskConfig) -> Path:
    """Asterisk's path, seen from the gateway (``recordings_dir`` replaces ``monitor_dir``)."""
    if config.recordings_dir:
        root = config.monitor_dir.rstrip("/") + "/"
        if path.startswith(root):
            return Path(config.recordings_dir) / path[len(root):]
        if not posixpath.isabs(path):
            return Path(config.recordings_dir) / path
    return Path(path)


def _read(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_RECORDING_BYTES:
        raise MediaTooLarge(f"recording is {size} bytes, over {MAX_RECORDING_BYTES}")
    return path.read_bytes()


class RecordingFetcher:
    """``schema.media.MediaFetcher`` for asterisk channels: ``source_url`` is the recording's path."""

    async def fetch(
        self,
        *,
        provider_id: str | None,
        source_url: str | None,
        channel_config: dict[str, Any],
        channel_secrets: dict[str, Any],
    ) -> MediaDownload:
        if not source_url:
            raise MediaFetchError("the recording has no file name")
        try:
            config = AsteriskConfig.model_validate(channel_config)
        except ValidationError as exc:
            raise MediaFetchError(f"channel config is invalid: {exc}") from exc
        path = local_path(source_url, config)
        try:
            content = await asyncio.to_thread(_read, path)
        except OSError as exc:
            raise MediaFetchError(f"recording {path} is not readable by the gateway: {exc.strerror or exc}") from exc
        return MediaDownload(content=content, mime_type=recording_mime(source_url), name=path.name)
