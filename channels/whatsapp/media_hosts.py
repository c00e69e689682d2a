"""Where the WhatsApp access token may go: the media URL allow-list (pure, no I/O).

The media metadata (``GET /{media_id}``) names a download URL, and the download
needs the bearer token. The metadata comes over the network, so a compromised or
spoofed API (or a misdirected ``WHATSAPP_API_BASE``) could name any host and
collect the token. It goes only to Meta's media hosts (``WHATSAPP_MEDIA_HOSTS``,
https only) and to the API base's own origin (scheme, host and port as configured:
the fakes in tests and a self-hosted proxy speak plain http on loopback).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

# Meta serves Cloud API media from lookaside.fbsbx.com; the wider patterns cover its other
# media hosts (fbsbx.com and whatsapp.net subdomains).
DEFAULT_MEDIA_HOSTS = ("lookaside.fbsbx.com", "*.fbsbx.com", "*.whatsapp.net")


class UntrustedMediaUrl(ValueError):
    """The URL is not one the access token may be sent to; the message says why, without the URL's query."""


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".").lower()
    scheme = parts.scheme.lower()
    if not host or scheme not in ("http", "https"):
        return None
    return scheme, host, port or (443 if scheme == "https" else 80)


def parse_host_patterns(value: str | Iterable[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(p.strip().rstrip(".").lower() for p in items if p.strip())


class MediaHostPolicy:
    def __init__(self, api_base: str, patterns: str | Iterable[str] = DEFAULT_MEDIA_HOSTS) -> None:
        self._api_origin = _origin(api_base)
        self._patterns = parse_host_patterns(patterns)

    def _host_listed(self, host: str) -> bool:
        for pattern in self._patterns:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def check(self, url: str) -> None:
        """Raise UntrustedMediaUrl unless the token may be sent to ``url``."""
        origin = _origin(url)
        if origin is None:
            raise UntrustedMediaUrl("the media URL is not an http(s) URL with a host")
        if origin == self._api_origin:
            return
        scheme, host, port = origin
        if not self._host_listed(host):
            raise UntrustedMediaUrl(
                f"the media URL points at {host}, which is not on WHATSAPP_MEDIA_HOSTS; the access token is not sent"
            )
        if scheme != "https" or port != 443:
            raise UntrustedMediaUrl(f"the media URL for {host} is not https on port 443; the access token is not sent")
