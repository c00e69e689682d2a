"""The media worker: downloads ``pending`` media files of every channel type and stores them.

Ingest commits a message with ``media_files`` rows in status ``pending``; this
worker fetches each one through ``ctx.fetchers[channel.type]``, so a slow or
failed download never holds a message back. For each due row:

1. claim it (``FOR UPDATE SKIP LOCKED``; ``next_attempt_at`` pushed a lease
   ahead, so a worker that dies mid-download leaves it to be retried later);
2. fetch the bytes (no transaction open meanwhile);
3. check the sha256 the provider announced, when it did;
4. store the file under ``GATEWAY_MEDIA_DIR``, named by its sha256 and row id;
5. mark the row ``stored`` and log ``message.updated`` for the messages that
   carry it (``call.updated`` for a call recording), in one transaction, then publish.

A fetch error or a digest mismatch is retried with exponential backoff and
jitter until ``max_attempts``, then the row is ``failed`` with the last error;
:class:`schema.media.MediaTooLarge` is final at once (``too_large``), and so is
:class:`schema.media.MediaRefused` (``failed``: e.g. a URL the token must not go to).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg

from gateway.context import AppContext
from gateway.http import DB_ERRORS
from gateway.metrics import MEDIA_DOWNLOAD_FAILURES
from gateway.pipeline import publish
from gateway.secret_box import SecretsUnreadable
from gateway.supervise import poll_loop
from inbox import eventlog
from inbox.calls import call_json
from inbox.eventlog import EventRecord, PendingEvent
from inbox.views import message_json
from schema.enums import ChannelType, EventName, MediaStatus
from schema.media import MediaDownload, MediaFetchError, MediaRefused, MediaTooLarge

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class MediaWorkerConfig:
    concurrency: int = 2  # loops per process
    poll_interval: float = 1.0  # seconds between looks at an empty queue
    retry_base: float = 5.0  # first retry after ~base seconds, then doubling
    retry_cap: float = 3600.0
    max_attempts: int = 6
    # Longer than any download may take: a claim older than this is retried.
    lease_seconds: float = 900.0
    fetch_timeout: float = 600.0


def media_worker_config(ctx: AppContext) -> MediaWorkerConfig:
    config = ctx.extras.get("media_worker_config")
    return config if isinstance(config, MediaWorkerConfig) else MediaWorkerConfig()


@dataclass(frozen=True)
class _Claimed:
    id: int
    account_id: int
    channel_type: ChannelType
    channel_config: dict[str, Any]
    sealed_secrets: str | None  # opened only for the fetch (gateway/secret_box.py)
    provider_id: str | None
    source_url: str | None
    expected_sha256: str | None
    attempts: int


class _Retry(Exception):
    """This attempt failed; the row may be tried again."""


@contextlib.asynccontextmanager
async def _connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn:
        yield cast(asyncpg.Connection, conn)


def storage_key(sha256: str, media_id: int) -> str:
    """Where a file lives under the media dir: ``ab/cd/abcd…-<id>``, relative so the dir can move.

    Fanned out by digest, but one file per row: retention unlinks the file of a
    deleted row, which must never take away the bytes of another row that
    happened to have the same content (a forwarded photo, a popular sticker).
    """
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}-{media_id}"


def media_path(media_dir: Path, storage_path: str) -> Path | None:
    """The stored file, or None when the row's path resolves outside the media dir (symlinks followed):
    whatever a row says, only files under ``GATEWAY_MEDIA_DIR`` are ever served."""
    root = os.path.realpath(media_dir)
    real = os.path.realpath(os.path.join(root, storage_path))
    return Path(real) if os.path.commonpath([root, real]) == root and real != root else None


def _write_file(media_dir: Path, key: str, content: bytes) -> None:
    target = media_dir / key
    if target.is_file() and target.stat().st_size == len(content):
        return  # stored by an earlier attempt that died before recording it
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class MediaWorker:
    def __init__(self, ctx: AppContext, config: MediaWorkerConfig | None = None) -> None:
        self.ctx = ctx
        self.config = config or media_worker_config(ctx)
        self._wakeup = asyncio.Event()
        self._rng = random.Random()

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        for n in range(self.config.concurrency):
            self.ctx.tasks.spawn(self.run(), name=f"media-worker-{n}")

    async def run(self) -> None:
        """Work until cancelled; database outages are waited out."""
        await poll_loop("media worker", self.run_once, self._wakeup, self.config.poll_interval,
                        retry_on=DB_ERRORS)

    async def run_once(self) -> bool:
        """Process one due media file; False when none is due."""
        job = await self._claim()
        if job is None:
            return False
        try:
            download = await self._fetch(job)
            digest = hashlib.sha256(download.content).hexdigest()
            if job.expected_sha256 and digest != job.expected_sha256.lower():
                raise _Retry(f"sha256 mismatch: the provider announced {job.expected_sha256}, the download is {digest}")
            key = storage_key(digest, job.id)
            await asyncio.to_thread(_write_file, self.ctx.settings.media_dir, key, download.content)
        except MediaTooLarge as exc:
            MEDIA_DOWNLOAD_FAILURES.labels(job.channel_type, "final").inc()
            records = await self._finish(job, MediaStatus.TOO_LARGE, error=str(exc) or "media too large")
        except MediaRefused as exc:
            log.warning("media %s refused: %s", job.id, exc)
            MEDIA_DOWNLOAD_FAILURES.labels(job.channel_type, "final").inc()
            records = await self._finish(job, MediaStatus.FAILED, error=f"refused: {exc}")
        except _Retry as exc:
            records = await self._retry(job, str(exc))
        else:
            records = await self._finish(job, MediaStatus.STORED, download=download, digest=digest, key=key)
        await self._publish(records)
        return True

    async def _claim(self) -> _Claimed | None:
        async with _connection(self.ctx.pool) as conn:
            row = await conn.fetchrow(
                """
                WITH due AS (
                    SELECT id FROM media_files
                    WHERE status = 'pending' AND next_attempt_at <= now()
                    ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
                )
                UPDATE media_files f SET attempts = f.attempts + 1, updated_at = now(),
                       next_attempt_at = now() + make_interval(secs => $1)
                FROM due, channels ch
                WHERE f.id = due.id AND ch.id = f.channel_id
                RETURNING f.id, f.account_id, f.provider_id, f.source_url, f.expected_sha256, f.attempts,
                          ch.type, ch.config, ch.secrets_enc
                """,
                self.config.lease_seconds,
            )
        if row is None:
            return None
        return _Claimed(
            id=row["id"], account_id=row["account_id"], channel_type=ChannelType(row["type"]),
            channel_config=row["config"], sealed_secrets=row["secrets_enc"],
            provider_id=row["provider_id"],
            source_url=row["source_url"], expected_sha256=row["expected_sha256"], attempts=row["attempts"],
        )

    async def _fetch(self, job: _Claimed) -> MediaDownload:
        fetcher = self.ctx.fetchers.get(job.channel_type)
        if fetcher is None:
            raise _Retry(f"no media fetcher for {job.channel_type} channels in this process")
        try:
            secrets = self.ctx.secret_box.open(job.sealed_secrets)
        except SecretsUnreadable as exc:
            raise _Retry(str(exc)) from exc
        try:
            async with asyncio.timeout(self.config.fetch_timeout):
                return await fetcher.fetch(
                    provider_id=job.provider_id,
                    source_url=job.source_url,
                    channel_config=job.channel_config,
                    channel_secrets=secrets,
                )
        except (MediaTooLarge, MediaRefused):
            raise
        except MediaFetchError as exc:
            raise _Retry(f"download failed: {exc}") from exc
        except TimeoutError as exc:
            raise _Retry(f"download took longer than {self.config.fetch_timeout:g}s") from exc
        except Exception as exc:
            # A fetcher bug (an untranslated exception): retried, and visible in the row's error.
            log.exception("media fetcher for %s raised %s", job.channel_type, type(exc).__name__)
            raise _Retry(f"fetcher error: {type(exc).__name__}: {exc}") from exc

    def _delay(self, attempts: int) -> float:
        ceiling = min(self.config.retry_cap, self.config.retry_base * 2.0 ** max(0, attempts - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def _retry(self, job: _Claimed, error: str) -> list[EventRecord]:
        final = job.attempts >= self.config.max_attempts
        MEDIA_DOWNLOAD_FAILURES.labels(job.channel_type, "final" if final else "retried").inc()
        if final:
            log.warning("media %s failed after %d attempts: %s", job.id, job.attempts, error)
            return await self._finish(job, MediaStatus.FAILED, error=error)
        async with _connection(self.ctx.pool) as conn:
            await conn.execute(
                """UPDATE media_files SET error = $2, updated_at = now(),
                       next_attempt_at = now() + make_interval(secs => $3)
                   WHERE id = $1 AND status = 'pending'""",
                job.id,
                error,
                self._delay(job.attempts),
            )
        return []

    async def _finish(self, job: _Claimed, status: MediaStatus, *, error: str | None = None,
                      download: MediaDownload | None = None, digest: str | None = None,
                      key: str | None = None) -> list[EventRecord]:
        async with _connection(self.ctx.pool) as conn, conn.transaction():
            changed = await conn.fetchval(
                """UPDATE media_files SET status = $2, error = $3, updated_at = now(),
                       sha256 = COALESCE($4, sha256), storage_path = COALESCE($5, storage_path),
                       size = COALESCE($6, size), mime_type = COALESCE($7, mime_type), name = COALESCE(name, $8)
                   WHERE id = $1 AND status = 'pending' RETURNING id""",
                job.id,
                str(status),
                error,
                digest,
                key,
                len(download.content) if download else None,
                download.mime_type if download else None,
                download.name if download else None,
            )
            if changed is None:
                return []  # settled meanwhile by another worker (a lease that ran out)
            return await self._log_message_updates(conn, job)

    async def _log_message_updates(self, conn: asyncpg.Connection, job: _Claimed) -> list[EventRecord]:
        rows = await conn.fetch(
            """SELECT m.id FROM message_media mm JOIN messages m ON m.id = mm.message_id
               WHERE mm.media_id = $1 AND m.account_id = $2 ORDER BY m.id""",
            job.id,
            job.account_id,
        )
        pending: list[PendingEvent] = []
        for row in rows:
            data = await message_json(conn, job.account_id, row["id"])
            pending.append(PendingEvent(EventName.MESSAGE_UPDATED, data["conversation_id"], data))
        # A call recording (Asterisk) is media too: its call changes with it.
        calls = await conn.fetch(
            "SELECT id FROM calls WHERE recording_media_id = $1 AND account_id = $2 ORDER BY id",
            job.id,
            job.account_id,
        )
        for row in calls:
            call = await call_json(conn, job.account_id, row["id"])
            pending.append(PendingEvent(EventName.CALL_UPDATED, call["conversation_id"], call))
        return await eventlog.append(conn, job.account_id, pending)

    async def _publish(self, records: Sequence[EventRecord]) -> None:
        await publish(self.ctx, records)


def install(ctx: AppContext) -> None:
    """Register the worker (all channel types); it starts with the app when workers are on."""
    worker = MediaWorker(ctx)
    ctx.extras["media_worker"] = worker
    add_listener = getattr(ctx.broker, "add_listener", None)
    if add_listener is not None:
        def on_event(record: EventRecord) -> None:
            # A new message with media: look now rather than at the next poll.
            if record.event == EventName.MESSAGE_CREATED and record.data.get("media"):
                worker.wake()

        add_listener(on_event)
    if not ctx.settings.gateway_workers:
        return

    async def start(ctx: AppContext) -> None:
        worker.start()

    ctx.extras.setdefault("starters", []).append(start)
