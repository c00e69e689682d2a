"""The WS subscriber, in its own process so its receive times do not wait on the senders' event loop.

One socket per API key (one account each), spread over the gateway processes' URLs in turn.
Child protocol (stdout, one line each): ``READY <seq> <extensions>`` once every socket subscribed to
``account`` (the seq of the first);
``M <external_id> <monotonic_ns>`` per ``message.created`` frame, stamped as soon as the frame is
received; ``CLOSED <code> <reason>`` if the server closes; on SIGTERM ``END <json summary>``.
CLOCK_MONOTONIC is system-wide on Linux, so these stamps compare with the sender's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.ingest.gateway_proc import REPO_ROOT

# -- the child -------------------------------------------------------------------------------------


async def _subscribe(ws_urls: list[str], tokens: list[str]) -> None:
    out = sys.stdout
    counts: Counter[str] = Counter()
    frame_bytes = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def flusher() -> None:
        # Batching the pipe writes keeps this process's CPU for receiving.
        while True:
            await asyncio.sleep(0.02)
            out.flush()

    async def receive(ws: ClientConnection) -> None:
        nonlocal frame_bytes
        try:
            while True:
                raw = await ws.recv()
                at = time.monotonic_ns()
                frame = json.loads(raw)
                if frame.get("type") != "event":
                    counts[f"frame:{frame.get('type')}"] += 1
                    continue
                name = frame["event"]
                counts[name] += 1
                frame_bytes += len(raw)
                if name == "message.created":
                    out.write(f"M {frame['data']['external_id']} {at}\n")
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            out.write(f"CLOSED {code} {reason}\n")
        stop.set()

    async with contextlib.AsyncExitStack() as stack:
        sockets: list[ClientConnection] = []
        first_seq = None
        for index, token in enumerate(tokens):
            ws_url = ws_urls[index % len(ws_urls)]
            ws = await stack.enter_async_context(connect(f"{ws_url}/ws?token={token}", max_size=None))
            await ws.send(json.dumps({"type": "subscribe", "topics": ["account"], "after": None}))
            first = json.loads(await ws.recv())
            if first.get("type") != "subscribed":
                raise SystemExit(f"expected subscribed, got {first}")
            first_seq = first.get("seq") if first_seq is None else first_seq
            sockets.append(ws)
        response = sockets[0].response
        extensions = response.headers.get("Sec-WebSocket-Extensions", "none") if response else "none"
        out.write(f"READY {first_seq} {extensions.replace(' ', '')}\n")
        out.flush()
        tasks = [asyncio.create_task(receive(ws)) for ws in sockets] + [asyncio.create_task(flusher())]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)  # never swallows a cancellation of this task
    events = sum(v for k, v in counts.items() if not k.startswith("frame:"))
    out.write("END " + json.dumps({"counts": dict(counts), "event_frames": events, "event_bytes": frame_bytes})
              + "\n")
    out.flush()


def child_main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ws-url", action="append", required=True, help="repeat for each gateway process")
    parser.add_argument("--token", action="append", required=True, help="repeat for each account")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_subscribe(args.ws_url, args.token))
    else:
        uvloop.run(_subscribe(args.ws_url, args.token))


# -- the parent's handle ---------------------------------------------------------------------------


@dataclass
class Subscriber:
    proc: asyncio.subprocess.Process
    extensions: str = ""
    received: dict[str, int] = field(default_factory=dict)
    closed: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, ws_urls: list[str], tokens: list[str], env: dict[str, str]) -> Subscriber:
        args = [a for url in ws_urls for a in ("--ws-url", url)] + [a for t in tokens for a in ("--token", t)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.ingest.subscriber", *args,
            stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT, env=env,
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"subscriber did not subscribe: {line}")
        sub = cls(proc, extensions=line[2] if len(line) > 2 else "")
        sub._reader = asyncio.create_task(sub._read())
        return sub

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            kind, _, rest = raw.decode().rstrip("\n").partition(" ")
            if kind == "M":
                wamid, _, at = rest.partition(" ")
                self.received[wamid] = int(at)
            elif kind == "CLOSED":
                self.closed = rest
            elif kind == "END":
                self.summary = json.loads(rest)

    async def wait_for(self, wamids: list[str], within: float) -> list[str]:
        """Wait until every wamid was received or ``within`` seconds passed; return the missing ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        missing = [w for w in wamids if w not in self.received]
        while missing and loop.time() < deadline and self.closed is None and self.proc.returncode is None:
            await asyncio.sleep(0.05)
            missing = [w for w in missing if w not in self.received]
        return missing

    async def stop(self) -> dict[str, Any]:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return self.summary


if __name__ == "__main__":
    child_main()
