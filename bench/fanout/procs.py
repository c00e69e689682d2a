"""The processes of a fan-out run: the server under test (gateway or baseline) and the client processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]
RUN_SECRET_KEY = Fernet.generate_key().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- servers ------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    ws_url: str
    proc: asyncio.subprocess.Process
    subscribe: str | None  # the frame clients send after connecting
    publish: Any = None  # async (frame_data: dict) -> None, set by the runner

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def gateway_server(db_url: str, redis_url: str, prefix: str, api_key: str) -> AsyncIterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="igw-bench-"),
    }
    # DATABASE_URL is set, so serve needs a key; one per run, shared by every gateway process of the run.
    env.setdefault("GATEWAY_SECRET_KEY", RUN_SECRET_KEY)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", "serve", cwd=REPO, env=env)
    try:
        async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(60):
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"gateway exited with {proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        subscribe = json.dumps({"type": "subscribe", "topics": ["account"]})
        yield Server("gateway", f"ws://127.0.0.1:{port}/ws?token={api_key}", proc, subscribe)
    finally:
        await _stop(proc)


@contextlib.asynccontextmanager
async def raw_server(redis_url: str, channel: str) -> AsyncIterator[Server]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fanout.raw_server", "--redis-url", redis_url, "--channel", channel,
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"raw server did not start: {line}")
        yield Server("raw-websockets", f"ws://127.0.0.1:{line[1]}/", proc, None)
    finally:
        await _stop(proc)


# -- clients ------------------------------------------------------------------------------------


@dataclass
class Clients:
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def _ask(self, command: str, expect: str, seconds: float) -> list[list[str]]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{command}\n".encode())
            await proc.stdin.drain()
        answers = []
        for proc in self.procs:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), seconds)).decode().split()
            if not line or line[0] != expect:
                raise RuntimeError(f"client answered {line!r} to {command!r}")
            answers.append(line)
        return answers

    async def wait(self, phase: str, count: int, seconds: float) -> tuple[int, float]:
        answers = await self._ask(f"WAIT {phase} {count} {seconds}", "DONE", seconds + 30)
        return sum(int(a[2]) for a in answers), max(float(a[3]) for a in answers)

    async def latencies(self, workdir: Path) -> dict[str, list[float]]:
        merged: dict[str, list[float]] = {}
        for i, proc in enumerate(self.procs):
            path = workdir / f"latencies-{proc.pid}-{i}.json"
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"DUMP {path}\n".encode())
            await proc.stdin.drain()
            await asyncio.wait_for(proc.stdout.readline(), 120)
            for phase, values in json.loads(path.read_text()).items():
                merged.setdefault(phase, []).extend(values)
            path.unlink()
        return merged


@contextlib.asynccontextmanager
async def open_clients(server: Server, sockets: int, per_process: int) -> AsyncIterator[Clients]:
    clients = Clients()
    try:
        left = sockets
        while left > 0:
            n = min(per_process, left)
            left -= n
            args = ["-m", "bench.fanout.client", "--url", server.ws_url, "--count", str(n)]
            if server.subscribe:
                args += ["--subscribe", server.subscribe]
            clients.procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, *args, cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
                )
            )
        for proc in clients.procs:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 600)).decode().split()
            if not line or line[0] != "READY":
                raise RuntimeError(f"a client process failed to connect: {line!r}")
        yield clients
    finally:
        for proc in clients.procs:
            if proc.stdin is not None and not proc.stdin.is_closing():
                with contextlib.suppress(OSError):
                    proc.stdin.write(b"QUIT\n")
                    proc.stdin.close()
        for proc in clients.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
