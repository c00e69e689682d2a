"""The key every test process uses for channel secrets at rest, and sealing for tests that insert channels."""

from __future__ import annotations

from typing import Any

from gateway.secret_box import SecretBox

# A fixed test key: gateway processes started by tests get it (conftest puts it in the
# environment, tests.cli_helpers.cli_env passes it on), so rows sealed here open there.
TEST_SECRET_KEY = "xkv2yaEI6RAlcRUcmr90fCVJZVJpoE16foDb2WCGVl4="
_BOX = SecretBox.from_setting(TEST_SECRET_KEY)


def seal(secrets: dict[str, Any]) -> str | None:
    return _BOX.seal(secrets)


def open_sealed(sealed: str | None) -> dict[str, Any]:
    return _BOX.open(sealed)
