"""MixMonitor recordings as media: the media worker fetches them through ``RecordingFetcher``.

The file name comes from the PBX (``VarSet MIXMONITOR_FILENAME``), and whoever
runs the PBX is a tenant, not the operator: the name is a hint, never a path the
gateway opens as given. A recording is read only

1. when the operator set ``GATEWAY_RECORDINGS_DIR`` (unset: recordings stay
   metadata, the media row fails with the reason);
2. from inside that directory: Asterisk's ``monitor_dir`` prefix is replaced by
   it (plus the channel's optional ``recordings_dir`` subfolder), any ``..`` is
   refused, and the realpath (symlinks followed) must still be inside it;
3. when it is a regular file (no FIFO, device or directory) no larger than the cap.

A refusal is permanent (:class:`MediaRefused`); a file that does not exist (yet)
is transient, so the media worker retries it with backoff.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import posixpath
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from channels.asterisk.config import AsteriskConfig
from schema.media import MediaDownload, MediaFetchError, MediaRefused, MediaTooLarge

MAX_RECORDING_BYTES = 512 * 1024 * 1024
_MIME = {".wav": "audio/wav", ".wav49": "audio/wav", ".gsm": "audio/gsm", ".mp3": "audio/mpeg",
         ".ogg": "audio/ogg", ".sln": "audio/L16"}


def recording_mime(path: str) -> str | None:
    ext = posixpath.splitext(path)[1].lower()
    return _MIME.get(ext) or mimetypes.guess_type(path)[0]


def relative_path(path: str, config: AsteriskConfig) -> PurePosixPath:
    """Asterisk's file name as a path relative to ``GATEWAY_RECORDINGS_DIR``; ``MediaRefused`` if it has none.

    Pure: nothing is looked up on disk, so a refusal says nothing about files outside the directory.
    """
    if "\x00" in path or "\\" in path:
        raise MediaRefused("the recording's file name holds a NUL or a backslash")
    if posixpath.isabs(path):
        root = config.monitor_dir.rstrip("/") + "/"
        if not path.startswith(root):
            raise MediaRefused(f"the recording is not under monitor_dir ({config.monitor_dir})")
        path = path[len(root):]
    rel = PurePosixPath(config.recordings_dir or "", path)
    if ".." in rel.parts or rel.is_absolute() or not rel.parts:
        raise MediaRefused("the recording's file name leaves the recordings directory")
    return rel


def _read_inside(root: Path, rel: PurePosixPath, max_bytes: int) -> bytes:
    """The file's bytes once it is proven to be a regular file inside ``root``, symlinks resolved."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *rel.parts))
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        raise MediaRefused("the recording resolves outside GATEWAY_RECORDINGS_DIR")
    try:
        # O_NOFOLLOW: a symlink swapped in after realpath is refused; O_NONBLOCK: a FIFO
        # never blocks the open (it is refused by the fstat below).
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise MediaFetchError("the recording is not (yet) in GATEWAY_RECORDINGS_DIR") from exc
    except OSError as exc:
        raise MediaRefused(f"the recording cannot be opened: {exc.strerror or type(exc).__name__}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MediaRefused("the recording is not a regular file")
        if info.st_size > max_bytes:
            raise MediaTooLarge(f"recording is {info.st_size} bytes, over {max_bytes}")
        with os.fdopen(os.dup(fd), "rb") as f:
            content = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(content) > max_bytes:  # grew while we read it
        raise MediaTooLarge(f"recording is over {max_bytes} bytes")
    return content


class RecordingFetcher:
    """``schema.media.MediaFetcher`` for asterisk channels: ``source_url`` is the recording's file name.

    ``root`` is ``GATEWAY_RECORDINGS_DIR``; None means recordings are never read from disk.
    """

    def __init__(self, root: Path | None, *, max_bytes: int = MAX_RECORDING_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    async def fetch(
        self,
        *,
        provider_id: str | None,
        source_url: str | None,
        channel_config: dict[str, Any],
        channel_secrets: dict[str, Any],
    ) -> MediaDownload:
        if not source_url:
            raise MediaRefused("the recording has no file name")
        if self.root is None:
            raise MediaRefused("recordings are not read: GATEWAY_RECORDINGS_DIR is not set")
        try:
            config = AsteriskConfig.model_validate(channel_config)
        except ValidationError as exc:
            raise MediaFetchError(f"channel config is invalid: {exc}") from exc
        rel = relative_path(source_url, config)
        content = await asyncio.to_thread(_read_inside, self.root, rel, self.max_bytes)
        return MediaDownload(content=content, mime_type=recording_mime(source_url), name=rel.name)
