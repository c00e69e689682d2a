"""A thin aiohttp client for the WhatsApp Cloud (Graph) API.

The base URL includes the API version (``WHATSAPP_API_BASE``); requests go to
``{base}/{phone_number_id}/messages`` and ``{base}/{media_id}``. One client (one
connection pool) serves every channel: the access token is passed per call.

Exception tree::

    GraphError
    ├── GraphTransportError   no HTTP answer: connection refused, reset, timeout
    ├── GraphApiError         an HTTP error answer, with the Graph error envelope when there is one
    ├── GraphTooLarge         a media file over the size we accept
    └── GraphUntrustedUrl     a media URL (or a redirect) the access token must not be sent to
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from channels.whatsapp._content import normalise_sha256
from channels.whatsapp.media_hosts import MediaHostPolicy, UntrustedMediaUrl


class GraphError(Exception):
    pass


class GraphTransportError(GraphError):
    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        # False only when the connection was never made: the request surely had no effect.
        self.request_sent = request_sent


class GraphApiError(GraphError):
    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        details: str | None = None,
        retry_after: float | None = None,
        is_transient: bool | None = None,
    ) -> None:
        super().__init__(f"HTTP {status} code {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after
        self.is_transient = is_transient

    @property
    def reason(self) -> str:
        """A readable reason: Graph's message, and the details that explain it."""
        if self.details and self.details not in self.message:
            return f"{self.message}: {self.details}"
        return self.message


class GraphTooLarge(GraphError):
    pass


class GraphUntrustedUrl(GraphError):
    pass


# Redirects are followed by hand, each hop checked against the media host policy.
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class MediaInfo:
    url: str
    mime_type: str | None
    sha256: str | None  # lowercase hex
    file_size: int | None


class GraphApiClient:
    def __init__(self, base_url: str, *, timeout: float = 30.0, download_timeout: float = 300.0,
                 media_hosts: MediaHostPolicy | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._media_hosts = media_hosts or MediaHostPolicy(base_url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._download_timeout = aiohttp.ClientTimeout(total=download_timeout, sock_read=60)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop; closed by ``close``.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "inbox-gateway"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, *parts: str) -> str:
        return "/".join([self._base, *(quote(p, safe="") for p in parts)])

    async def send_text(
        self, *, phone_number_id: str, access_token: str, to: str, body: str, reply_to: str | None = None
    ) -> str:
        """Send a text (a reply when ``reply_to`` is a wamid); return the new message's wamid."""
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **recipient_fields(to),
            "type": "text",
            "text": {"preview_url": False, "body": body},
        }
        if reply_to:
            payload["context"] = {"message_id": reply_to}
        answer = await self._request("POST", self.url(phone_number_id, "messages"), access_token, payload)
        try:
            wamid = answer["messages"][0]["id"]
        except (KeyError, IndexError, TypeError) as exc:
            raise GraphApiError(200, "invalid_response", "the send answer carries no message id") from exc
        if not isinstance(wamid, str) or not wamid:
            raise GraphApiError(200, "invalid_response", "the send answer carries no message id")
        return wamid

    async def mark_read(self, *, phone_number_id: str, access_token: str, message_id: str) -> None:
        payload = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        await self._request("POST", self.url(phone_number_id, "messages"), access_token, payload)

    async def media_info(self, *, media_id: str, access_token: str) -> MediaInfo:
        answer = await self._request("GET", self.url(media_id), access_token, None)
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            raise GraphApiError(200, "invalid_response", f"media {media_id} has no download url")
        size = answer.get("file_size")
        mime = answer.get("mime_type")
        digest = answer.get("sha256")
        return MediaInfo(
            url=url,
            mime_type=mime if isinstance(mime, str) else None,
            sha256=normalise_sha256(digest) if isinstance(digest, str) else None,
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        )

    async def download(self, *, url: str, access_token: str, max_bytes: int) -> tuple[bytes, str | None]:
        """The bytes at a media URL (the bearer token is required there too) and their content type.

        The token goes only where the media host policy allows, the first URL and every
        redirect alike (GraphUntrustedUrl otherwise, before anything is sent).
        """
        headers = {"Authorization": f"Bearer {access_token}"}
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                try:
                    self._media_hosts.check(url)
                except UntrustedMediaUrl as exc:
                    raise GraphUntrustedUrl(str(exc)) from None
                async with self._http().get(
                    url, headers=headers, timeout=self._download_timeout, allow_redirects=False
                ) as resp:
                    if resp.status in _REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise GraphApiError(resp.status, "invalid_response", "a redirect without a Location")
                        url = str(resp.url.join(URL(location)))
                        continue
                    return await _read_media(resp, max_bytes)
            raise GraphApiError(200, "invalid_response", f"more than {_MAX_REDIRECTS} redirects")
        except aiohttp.ClientConnectorError as exc:
            raise GraphTransportError(f"cannot connect: {exc}", request_sent=False) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GraphTransportError(f"download failed: {type(exc).__name__}: {exc}", request_sent=True) from exc

    async def _request(self, method: str, url: str, access_token: str, payload: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}"}
        try:
            async with self._http().request(
                method, url, json=payload, headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status >= 400:
                    raise await _api_error(resp)
                raw = await resp.read()
        except aiohttp.ClientConnectorError as exc:
            raise GraphTransportError(f"cannot connect: {exc}", request_sent=False) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GraphTransportError(f"request failed: {type(exc).__name__}: {exc}", request_sent=True) from exc
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise GraphApiError(resp.status, "invalid_response", "the answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise GraphApiError(resp.status, "invalid_response", "the answer is not a JSON object")
        return answer


async def _read_media(resp: aiohttp.ClientResponse, max_bytes: int) -> tuple[bytes, str | None]:
    if resp.status >= 400:
        raise await _api_error(resp)
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise GraphTooLarge(f"media is {resp.content_length} bytes, over the {max_bytes} byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise GraphTooLarge(f"media is over the {max_bytes} byte limit")
        chunks.append(chunk)
    return b"".join(chunks), resp.headers.get("Content-Type")


def recipient_fields(to: str) -> dict[str, str]:
    """A phone number goes in ``to``; a business-scoped user id (``CC.digits``) in ``recipient``."""
    digits = to.removeprefix("+")
    if digits.isascii() and digits.isdigit():
        return {"to": digits}
    return {"recipient": to}


async def _api_error(resp: aiohttp.ClientResponse) -> GraphApiError:
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    try:
        envelope = json.loads(await resp.read())
        error = envelope["error"]
        if not isinstance(error, dict):
            raise TypeError("error is not an object")
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        return GraphApiError(resp.status, None, resp.reason or f"HTTP {resp.status}", retry_after=retry_after)
    code = error.get("code")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    message = error.get("message")
    transient = error.get("is_transient")
    return GraphApiError(
        resp.status,
        str(code) if isinstance(code, int | str) and not isinstance(code, bool) else None,
        message if isinstance(message, str) and message else resp.reason or f"HTTP {resp.status}",
        details=details if isinstance(details, str) else None,
        retry_after=retry_after,
        is_transient=transient if isinstance(transient, bool) else None,
    )


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
