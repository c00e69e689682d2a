"""The baseline: a minimal ``websockets`` broadcast server fed by the same Redis channel.

Every Redis message is one frame, sent to every connected socket with
``websockets.broadcast`` (no queues, no topics, no seq checks, no auth).
Prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, broadcast, serve


async def _main(redis_url: str, channel: str) -> None:
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None, backlog=4096) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"READY {port}", flush=True)
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None and message["type"] == "message":
                broadcast(clients, message["data"].decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(args.redis_url, args.channel))
    else:
        uvloop.run(_main(args.redis_url, args.channel))
    sys.exit(0)


if __name__ == "__main__":
    main()
