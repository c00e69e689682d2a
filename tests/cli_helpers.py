"""Run the real ``inbox-gateway`` command in a subprocess, as a user would."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tests import log_leaks
from tests.sealed import TEST_SECRET_KEY

REPO = Path(__file__).resolve().parents[1]

# Settings a developer may have exported must not leak into CLI tests.
_SETTINGS_PREFIXES = ("DATABASE_URL", "REDIS_URL", "GATEWAY_", "WHATSAPP_", "TELEGRAM_")


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


def cli_env(**settings: str) -> dict[str, str]:
    """The environment minus a developer's settings, plus the test secret key (pass
    ``GATEWAY_SECRET_KEY=""`` to start without one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    env["GATEWAY_SECRET_KEY"] = TEST_SECRET_KEY
    env.update(settings)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", *args]


async def run_cli(*args: str, **settings: str) -> Completed:
    proc = await asyncio.create_subprocess_exec(
        *cli_command(*args),
        env=cli_env(**settings),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    log_leaks.collect(f"stderr of inbox-gateway {' '.join(args)}", err.decode(errors="replace"))
    return Completed(proc.returncode, out.decode(), err.decode())
