"""One printed line per figure, and the whole run as JSON under ``bench/results/``."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def figure_line(name: str, value: float | None, unit: str, context: str = "") -> str:
    shown = "n/a" if value is None else f"{value:,.1f}"
    return f"{name:<46} {shown:>12} {unit:<9} {context}".rstrip()


def machine() -> dict[str, Any]:
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def software() -> dict[str, Any]:
    """The interpreter and the packages the figures depend on. The gateway and the Starlette baseline
    run on uvloop and uvicorn's httptools parser whenever these are installed (uvicorn's "auto")."""
    versions: dict[str, str | None] = {}
    for name in ("uvloop", "httptools", "uvicorn", "starlette", "asyncpg", "websockets", "redis", "aiohttp"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "interpreter": f"{platform.python_implementation()} {platform.python_version()}",
        "event_loop": "uvloop" if versions["uvloop"] else "asyncio",
        "http_parser": "httptools" if versions["httptools"] else "h11",
        "packages": versions,
    }


async def postgres_settings(dsn: str) -> dict[str, str]:
    """The server settings that bound commit rates, for every result."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "commit_delay",
                 "full_page_writes", "wal_level", "shared_buffers", "max_wal_size", "max_connections")
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()


async def redis_reachable(url: str) -> bool:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:  # any failure means: no Redis for this run
        return False
    finally:
        await client.aclose()


def write_result(directory: Path, result: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"ingest-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return path
