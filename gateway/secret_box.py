"""Channel secrets at rest: the one place that encrypts and decrypts them.

Secrets are sealed with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``)
under ``GATEWAY_SECRET_KEY``: comma-separated keys, the first seals, every one
opens (MultiFernet), so a key is rotated by putting the new one first, running
``inbox-gateway secrets rotate``, then dropping the old one. ``channels.secrets_enc``
holds the token; nothing else in the database ever holds a secret value.

Exception tree::

    SecretKeyError        the key setting is missing or malformed (a setting error: exit 2)
    SecretsUnreadable     a stored token opens under none of the keys (wrong key, tampering)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from gateway.config import Settings

KEY_SETTING = "GATEWAY_SECRET_KEY"
# Written once into GATEWAY_DATA_DIR when the embedded database runs without a key.
KEY_FILE_NAME = "secret.key"


class SecretKeyError(Exception):
    """The key setting is missing or malformed; the message is one line and never holds a key."""


class SecretsUnreadable(Exception):
    """A stored token opens under none of the configured keys."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def parse_keys(value: str) -> list[Fernet]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise SecretKeyError(f"invalid setting {KEY_SETTING}: no key given")
    keys: list[Fernet] = []
    for n, part in enumerate(parts, start=1):
        try:
            keys.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            # Say which one, never echo it: it is (part of) a secret.
            raise SecretKeyError(
                f"invalid setting {KEY_SETTING}: key {n} is not a Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `inbox-gateway secrets generate-key`)"
            ) from None
    return keys


class SecretBox:
    """Seals a channel's secrets dict into a text token and opens it again."""

    def __init__(self, keys: Sequence[Fernet]) -> None:
        if not keys:
            raise SecretKeyError(f"invalid setting {KEY_SETTING}: no key given")
        self._first = keys[0]
        self._all = MultiFernet(list(keys))

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        return cls(parse_keys(value))

    def seal(self, secrets: dict[str, Any]) -> str | None:
        """The token to store; None for no secrets (nothing worth encrypting)."""
        if not secrets:
            return None
        return self._all.encrypt(json.dumps(secrets, separators=(",", ":")).encode()).decode("ascii")

    def open(self, sealed: str | None) -> dict[str, Any]:
        if sealed is None:
            return {}
        try:
            value = json.loads(self._all.decrypt(sealed.encode("ascii")))
        except (InvalidToken, UnicodeEncodeError, ValueError) as exc:
            raise SecretsUnreadable("stored channel secrets open under none of the keys in GATEWAY_SECRET_KEY") from exc
        if not isinstance(value, dict):
            raise SecretsUnreadable("stored channel secrets are not an object")
        return value

    def is_current(self, sealed: str) -> bool:
        """Whether the token is already sealed under the first key (rotation skips it)."""
        try:
            self._first.decrypt(sealed.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def reseal(self, sealed: str) -> str:
        """The same secrets sealed under the first key."""
        try:
            return self._all.rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise SecretsUnreadable("stored channel secrets open under none of the keys in GATEWAY_SECRET_KEY") from exc


def resolve_key(configured: str | None, *, embedded: bool, data_dir: Path) -> str:
    """The key setting to use: the configured one, else (embedded database only) the data dir's key file.

    With an external database a generated key would be lost with the machine it
    was written on, and the secrets with it: the operator must choose one.
    """
    if configured:
        parse_keys(configured)
        return configured
    if not embedded:
        raise SecretKeyError(
            f"{KEY_SETTING} is required when DATABASE_URL is set (it encrypts channel secrets at rest); "
            "make one with `inbox-gateway secrets generate-key`"
        )
    return _key_file(data_dir / KEY_FILE_NAME)


def _key_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="ascii").strip()
        try:
            parse_keys(value)
        except SecretKeyError:
            raise SecretKeyError(f"the key file {path.name} in GATEWAY_DATA_DIR is not a Fernet key") from None
        return value
    value = generate_key()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return value


def box_for(settings: Settings) -> SecretBox:
    """The box for these settings (the CLI has already resolved the key for commands that generate one)."""
    key = settings.gateway_secret_key
    value = resolve_key(
        key.get_secret_value() if key is not None else None,
        embedded=settings.database_url is None,
        data_dir=settings.gateway_data_dir,
    )
    return SecretBox.from_setting(value)
