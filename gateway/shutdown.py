"""Graceful shutdown on SIGTERM/SIGINT, in one place.

The steps, in order:

1. ``/readyz`` answers 503 ``draining`` so a load balancer stops routing here.
2. Every WebSocket is closed with 1001 ("going away"): clients reconnect,
   through the balancer, to another replica and resume with ``after`` (the
   event log makes that exact).
3. The listener is closed (no new connections); connections accepted just
   before get ``LINGER`` seconds to send their request; then uvicorn lets
   requests in flight finish (at most ``GATEWAY_SHUTDOWN_TIMEOUT`` seconds),
   closing idle keep-alive connections at once and busy ones after their
   response.
4. The lifespan's shutdown: channel leases are released at once (the
   supervisor stops its runners and closes its lease session), so another
   replica takes over AMI connections and Telegram pollers on its next pass,
   within seconds rather than after a lease timeout.
5. The outbound worker claims nothing more and lets sends in flight finish and
   be recorded (bounded by the same timeout): a job is never sent twice nor
   left behind; one that outlives the timeout is settled by lease recovery.
6. The other background tasks are cancelled, the broker closed, the pool closed.
7. ``serve`` stops the embedded PostgreSQL last, once uvicorn has returned.

Steps 1–3 are ``GracefulServer.shutdown``; 4–6 ``stop_workers`` (called by
the lifespan); 7 is ``gateway.serve``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from gateway.context import AppContext

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
# Seconds between closing the listener and closing connections that sent no request yet.
LINGER = 0.5


class GracefulServer(uvicorn.Server):
    """uvicorn's server with steps 1–2 before its own shutdown (uvicorn would close sockets with 1012)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        from gateway.ws import close_all_sockets

        app = self.config.loaded_app if self.config.loaded else self.config.app
        ctx: AppContext | None = getattr(getattr(_unwrap(app), "state", None), "ctx", None)
        if ctx is not None:
            ctx.extras["draining"] = True
            timeout = ctx.settings.gateway_shutdown_timeout
            closed = await close_all_sockets(ctx, CLOSE_GOING_AWAY, "server shutting down: reconnect with after",
                                             within=min(5.0, timeout))
            if closed:
                log.info("closed %d WebSocket(s) with 1001", closed)
        # Stop accepting first, then let connections accepted a moment ago send
        # their request: uvicorn's own shutdown closes every connection without a
        # request in progress at once, which a client whose request was already
        # on its way would see as a reset.
        for server in self.servers:
            server.close()
        await asyncio.sleep(LINGER)
        await super().shutdown(sockets)


def _unwrap(app: object) -> object:
    # uvicorn wraps the app (proxy headers, message logger): the Starlette app is innermost.
    while hasattr(app, "app") and not hasattr(app, "state"):
        app = app.app
    return app


async def stop_workers(ctx: AppContext) -> None:
    """Steps 4–5: leases first (another replica takes over), then the outbound sends in flight."""
    timeout = ctx.settings.gateway_shutdown_timeout
    supervisor_task: asyncio.Task[None] | None = ctx.extras.get("channel_supervisor_task")
    if supervisor_task is not None and not supervisor_task.done():
        # Its own finally stops every runner and closes the lease session.
        supervisor_task.cancel()
        _, running = await asyncio.wait({supervisor_task}, timeout=timeout)
        if running:
            log.error("the channel supervisor did not stop within %gs; leaving it", timeout)
    worker = ctx.extras.get("outbound_worker")
    if worker is not None:
        await worker.drain(timeout)
