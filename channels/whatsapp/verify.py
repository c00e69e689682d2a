"""Webhook authentication: ``X-Hub-Signature-256`` and the subscription handshake.

The signature is an HMAC-SHA256 of the raw body bytes with the app secret. It
must be checked over the bytes exactly as received: WhatsApp escapes non-ASCII
as ``\\uXXXX`` and ``/`` as ``\\/``, so re-serialised JSON never matches.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(raw: bytes, app_secret: str) -> str:
    """The header value WhatsApp would send for ``raw``."""
    return _PREFIX + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def signature_matches(raw: bytes, header: str | None, app_secret: str | None) -> bool:
    """Constant-time check of a ``sha256=<hex>`` header against ``raw``."""
    if not header or not app_secret:
        return False
    # Starlette hands headers over as latin-1 text; compare bytes so odd input cannot raise.
    given = header.strip().encode("latin-1", errors="replace")
    expected = sign(raw, app_secret).encode("ascii")
    return hmac.compare_digest(given.lower(), expected)


def subscription_challenge(params: Mapping[str, str], verify_token: str | None) -> str | None:
    """The ``hub.challenge`` to echo when the subscription request carries our verify token, else None."""
    if not verify_token or params.get("hub.mode") != "subscribe":
        return None
    given = params.get("hub.verify_token", "").encode("utf-8", errors="replace")
    if not hmac.compare_digest(given, verify_token.encode("utf-8", errors="replace")):
        return None
    return params.get("hub.challenge")
