"""The gateway under test: a real ``python -m gateway serve`` process, its account and WhatsApp channel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet

REPO_ROOT = Path(__file__).resolve().parents[2]

APP_SECRET = "bench-app-secret"
PHONE_NUMBER_ID = "110900000000001"


@dataclass(frozen=True)
class Gateway:
    url: str
    ws_url: str
    pid: int
    env: dict[str, str]


@dataclass(frozen=True)
class BenchChannel:
    account_id: int
    api_key: str
    channel_id: int
    phone_number_id: str
    app_secret: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RUN_SECRET_KEY = Fernet.generate_key().decode()


def gateway_env(database_url: str, *, port: int, data_dir: Path, redis_url: str | None,
                log_level: str, redis_prefix: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DATABASE_URL=database_url,
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        GATEWAY_DATA_DIR=str(data_dir),
        GATEWAY_LOG_LEVEL=log_level,
        PYTHONPATH=str(REPO_ROOT),
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
        # Its own channels on a Redis that others (test suites) may share.
        env["GATEWAY_REDIS_PREFIX"] = redis_prefix or f"bench-{secrets.token_hex(4)}"
    # DATABASE_URL is set, so serve needs a key; one per run, shared by every gateway process of the run.
    env.setdefault("GATEWAY_SECRET_KEY", RUN_SECRET_KEY)
    return env


async def _wait_ready(url: str, proc: asyncio.subprocess.Process, seconds: float = 60) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(seconds):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the gateway exited with {proc.returncode} during startup")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running_gateways(database_url: str, count: int, *, redis_url: str | None = None,
                           log_level: str = "warning") -> AsyncIterator[list[Gateway]]:
    """``count`` gateway processes on one database; more than one need ``redis_url`` (one shared prefix)."""
    if count > 1 and not redis_url:
        raise RuntimeError("several gateway processes need Redis")
    prefix = f"bench-{secrets.token_hex(4)}"
    async with contextlib.AsyncExitStack() as stack:
        gateways = []
        for _ in range(count):  # one after the other: each migrates the database at start
            gateways.append(await stack.enter_async_context(
                running_gateway(database_url, redis_url=redis_url, log_level=log_level, redis_prefix=prefix)))
        yield gateways


@contextlib.asynccontextmanager
async def running_gateway(database_url: str, *, redis_url: str | None = None, log_level: str = "warning",
                          redis_prefix: str | None = None) -> AsyncIterator[Gateway]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-gw-") as data_dir:
        env = gateway_env(database_url, port=port, data_dir=Path(data_dir), redis_url=redis_url,
                          log_level=log_level, redis_prefix=redis_prefix)
        # BENCH_GATEWAY_PROFILE=FILE: run the gateway under cProfile (written to FILE at shutdown).
        prof = os.environ.get("BENCH_GATEWAY_PROFILE")
        pre = ["-m", "cProfile", "-o", prof] if prof else []
        proc = await asyncio.create_subprocess_exec(sys.executable, *pre, "-m", "gateway", "serve", env=env,
                                                    cwd=REPO_ROOT)
        try:
            url = f"http://127.0.0.1:{port}"
            await _wait_ready(url, proc)
            yield Gateway(url, f"ws://127.0.0.1:{port}", proc.pid, env)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def create_whatsapp_channel(gateway: Gateway, account_id: int, api_key: str,
                                  phone_number_id: str = PHONE_NUMBER_ID) -> BenchChannel:
    """Through the public REST API (``POST /api/v1/channels``)."""
    body = {
        "type": "whatsapp",
        "name": "bench",
        "config": {"phone_number_id": phone_number_id},
        "secrets": {"access_token": "bench-token", "app_secret": APP_SECRET,
                    "verify_token": secrets.token_hex(8)},
    }
    async with aiohttp.ClientSession() as http, http.post(
        f"{gateway.url}/api/v1/channels", json=body, headers={"Authorization": f"Bearer {api_key}"}
    ) as resp:
        answer = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"POST /api/v1/channels answered {resp.status}: {answer}")
    return BenchChannel(account_id, api_key, int(answer["id"]), phone_number_id, APP_SECRET)


async def create_accounts(database_url: str, names: list[str]) -> list[tuple[int, str]]:
    """Many accounts at once, straight into the database (the CLI starts a process per account)."""
    from inbox.accounts import create_account as create_in_db  # the project's own code, as the CLI runs it
    from inbox.db import connect

    conn = await connect(database_url)
    try:
        return [await create_in_db(conn, name) for name in names]
    finally:
        await conn.close()
