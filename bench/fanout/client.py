"""One fan-out client process: N WebSocket connections that record publish→receive latency.

Started by ``bench.fanout.run``; talks to it over stdin/stdout, one line each:

- prints ``READY <n>`` once every socket is open (and subscribed, against the gateway);
- ``WAIT <phase> <count> <seconds>`` → ``DONE <phase> <events received> <last receive, epoch s>``
  once every socket holds ``count`` events of that phase, or when ``seconds`` have passed;
- ``DUMP <path>`` → writes ``{phase: [latency ms, ...]}`` as JSON to ``path``, answers ``DUMPED``;
- ``QUIT`` (or end of stdin) → closes the sockets and exits.

Event frames carry ``"pub": <epoch s>`` and ``"phase": "<X>"`` in their data (in any order: the
gateway's data has been through jsonb); regexes on the raw bytes find them so that the client
spends as little CPU as it can per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from array import array
from pathlib import Path
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

PUB_RE = re.compile(rb'"pub": ([0-9.]+)')
PHASE_RE = re.compile(rb'"phase": "([A-Z])"')


class Recorder:
    def __init__(self, sockets: int) -> None:
        self.counts: dict[str, list[int]] = {}
        self.latencies: dict[str, array[float]] = {}
        self.last: dict[str, float] = {}
        self.sockets = sockets

    def record(self, index: int, raw: bytes) -> None:
        now = time.time()
        match, phase_match = PUB_RE.search(raw), PHASE_RE.search(raw)
        if match is None or phase_match is None:
            return
        phase = phase_match.group(1).decode()
        counts = self.counts.get(phase)
        if counts is None:
            counts = self.counts[phase] = [0] * self.sockets
            self.latencies[phase] = array("d")
        counts[index] += 1
        self.latencies[phase].append((now - float(match.group(1))) * 1000)
        self.last[phase] = now


class Socket(asyncio.Protocol):
    """One WebSocket on websockets' sans-I/O protocol: no task and no future per frame, so the
    clients spend far less CPU per delivery than the servers they measure."""

    def __init__(self, url: str, index: int, recorder: Recorder, subscribe: str | None) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.index = index
        self.recorder = recorder
        self.subscribe = subscribe
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    if self.ready.done():
                        self.recorder.record(self.index, bytes(event.data))
                    elif b'"subscribed"' in event.data:
                        self.ready.set_result(None)
                    elif b'"error"' in event.data:
                        self.ready.set_exception(RuntimeError(bytes(event.data).decode()))
                elif event.opcode is Opcode.CLOSE:
                    sys.stderr.write(f"client socket {self.index} closed: {self.ws.close_rcvd}\n")
            elif isinstance(event, Response):
                if event.status_code != 101:
                    self.ready.set_exception(RuntimeError(f"handshake answered {event.status_code}"))
                elif self.subscribe is None:
                    self.ready.set_result(None)
                else:
                    self.ws.send_text(self.subscribe.encode())
        self._flush()  # pongs to the server's keepalive pings, the subscribe frame

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"lost during setup: {exc}"))

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _main(url: str, count: int, subscribe: str | None, concurrency: int) -> None:
    recorder = Recorder(count)
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    uri = parse_uri(url)

    async def open_one(index: int) -> Socket:
        async with gate:
            _, sock = await loop.create_connection(
                lambda: Socket(url, index, recorder, subscribe), uri.host, uri.port
            )
            await asyncio.wait_for(sock.ready, 120)
            return sock

    conns = await asyncio.gather(*(open_one(i) for i in range(count)))
    print(f"READY {len(conns)}", flush=True)

    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := (await stdin.readline()).decode().strip():
        verb, *args = line.split()
        if verb == "WAIT":
            phase, want, seconds = args[0], int(args[1]), float(args[2])
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:  # polls: frames arrive on thousands of sockets
                if min(recorder.counts.get(phase, [0])) >= want:
                    break
                await asyncio.sleep(0.02)
            received = sum(recorder.counts.get(phase, []))
            print(f"DONE {phase} {received} {recorder.last.get(phase, 0.0):.6f}", flush=True)
        elif verb == "DUMP":
            dump = json.dumps({p: list(v) for p, v in recorder.latencies.items()})
            await asyncio.to_thread(Path(args[0]).write_text, dump)
            print("DUMPED", flush=True)
        elif verb == "QUIT":
            break
    for conn in conns:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--subscribe", help="a frame to send after connecting (the gateway's subscribe)")
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes in flight")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(args.url, args.count, args.subscribe, args.concurrency))
    else:
        uvloop.run(_main(args.url, args.count, args.subscribe, args.concurrency))


if __name__ == "__main__":
    main()
