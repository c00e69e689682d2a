"""The raw ``websockets`` baseline's server: on a client's ``go`` it broadcasts N event-sized frames to it.

Prints ``READY <port>`` when listening; exits after one client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve


def frame(seq: int, size: int) -> str:
    """An ``event`` frame like the gateway's, padded to about ``size`` bytes."""
    base = {"type": "event", "seq": seq, "event": "message.created", "account_id": 1, "conversation_id": 1,
            "data": {"external_id": f"wamid.raw.{seq}", "pad": ""}, "ts": "2025-03-14T11:33:20Z"}
    pad = max(0, size - len(json.dumps(base)))
    base["data"]["pad"] = "x" * pad  # type: ignore[index]
    return json.dumps(base)


async def _main(count: int, size: int) -> None:
    done = asyncio.Event()
    frames = [frame(i, size) for i in range(count)]

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        for i, text in enumerate(frames):
            broadcast([ws], text)
            if i % 64 == 63:
                # broadcast() only queues on the transport; let the loop write to the socket.
                await asyncio.sleep(0)
        await ws.wait_closed()
        done.set()

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        sys.stdout.write(f"READY {port}\n")
        sys.stdout.flush()
        await done.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(args.count, args.size))
    else:
        uvloop.run(_main(args.count, args.size))


if __name__ == "__main__":
    main()
