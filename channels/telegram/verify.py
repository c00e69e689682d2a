"""Webhook authentication: Telegram echoes the ``secret_token`` given to ``setWebhook``
in the ``X-Telegram-Bot-Api-Secret-Token`` header of every delivery."""

from __future__ import annotations

import hmac
import re

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# What setWebhook accepts as secret_token.
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def valid_webhook_secret(value: object) -> bool:
    return isinstance(value, str) and _SECRET_SHAPE.fullmatch(value) is not None


def secret_matches(expected: object, given: str | None) -> bool:
    """Constant-time comparison; a channel without a secret accepts nothing."""
    if not isinstance(expected, str) or not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))
