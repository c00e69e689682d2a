"""The bare-HTTP baseline: a Starlette JSON POST endpoint on the gateway's uvicorn settings.

It reads the body, parses it as JSON and answers ``{"status": "processed"}``: no signature, database
or broker. Run as ``python -m bench.ingest.starlette_server --port N``; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.serve import run_async


async def receive(request: Request) -> JSONResponse:
    json.loads(await request.body())
    return JSONResponse({"status": "processed", "inbound_event_id": None})


app = Starlette(routes=[Route("/webhooks/whatsapp/{channel_id}", receive, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The settings of ``gateway.serve``: uvloop, uvicorn's default (httptools) HTTP, no access log.
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, lifespan="on", log_level="warning",
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    run_async(server.serve)
    sys.exit(0)


if __name__ == "__main__":
    main()
