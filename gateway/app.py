"""The Starlette application and its lifespan.

Startup, in order:
1. open the asyncpg pool (the database is migrated by ``serve`` before this), seal
   channel secrets left in plaintext and check GATEWAY_SECRET_KEY opens the stored ones;
2. create the broker (in-process, or Redis when REDIS_URL is set);
3. let each channel module install its sender and connection runner;
4. start the background workers.
Shutdown runs the same steps backwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from gateway import api as rest_api
from gateway import (
    asterisk_runtime,
    health,
    inbox_page,
    key_revocation,
    openapi,
    outbound_worker,
    pipeline,
    telegram_runtime,
    ws,
    ws_hub,
)
from gateway.api import calls as calls_api
from gateway.api import media as media_api
from gateway.api._common import http_exception_handler
from gateway.broker import Broker, InProcessBroker
from gateway.channel_supervisor import start_supervisor
from gateway.config import Settings
from gateway.context import AppContext
from gateway.http import DB_UNAVAILABLE, ApiError, api_error_handler, db_unavailable_handler, error_response
from gateway.limits import HeaderLimits
from gateway.logs import RequestIdMiddleware
from gateway.media_worker import install as install_media_worker
from gateway.redis_broker import RedisBroker
from gateway.retention_worker import install as install_retention_worker
from gateway.secret_box import SecretsUnreadable, box_for
from gateway.secret_rotation import seal_at_start
from gateway.security_headers import SecurityHeaders
from gateway.shutdown import stop_workers
from gateway.webhooks import telegram as telegram_webhooks
from gateway.webhooks import whatsapp as whatsapp_webhooks
from inbox.db import acquire, create_pool

# Each channel module registers its sender / runner / routes here.
Installer = Callable[[AppContext], None]


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [*health.routes, *inbox_page.routes, *ws.routes]
    routes += rest_api.routes
    routes += [*whatsapp_webhooks.routes, *media_api.routes]
    routes += telegram_webhooks.routes
    routes += calls_api.routes
    routes += openapi.routes
    return routes


def _installers() -> list[Installer]:
    # The group commit first: its stopper then runs last, once the workers no longer write.
    return [pipeline.install, whatsapp_webhooks.install, telegram_runtime.install, asterisk_runtime.install,
            install_media_worker, outbound_worker.install, ws_hub.install, key_revocation.install,
            install_retention_worker]


def _make_broker(settings: Settings) -> Broker:
    if settings.redis_url:
        return RedisBroker(settings.redis_url, prefix=settings.gateway_redis_prefix)
    return InProcessBroker()


async def _secrets_unreadable(request: Request, exc: Exception) -> Response:
    # The operator's key does not open this channel's secrets: not the caller's fault, and not a 500.
    return error_response(503, "channel_secrets_unreadable", "this channel's secrets cannot be decrypted; "
                          "the operator must check GATEWAY_SECRET_KEY")


class GatewayApp(Starlette):
    """Starlette with ``SecurityHeaders`` outermost, so even its 500 responses carry them."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: Settings, **overrides: Any) -> Starlette:
    """Build the app. ``overrides`` replace context fields (tests plug senders in)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert settings.database_url, "serve resolves DATABASE_URL before building the app"
        box = box_for(settings)  # a missing or malformed key stops the start before anything opens
        pool = await create_pool(settings.database_url)
        try:
            async with acquire(pool) as conn:
                await seal_at_start(conn, box)
        except BaseException:
            await pool.close()
            raise
        broker = overrides.get("broker") or _make_broker(settings)
        ctx = AppContext(settings=settings, pool=pool, broker=broker, _box=box)
        for name, value in overrides.items():
            if name != "broker":
                setattr(ctx, name, value)
        app.state.ctx = ctx
        try:
            for install in _installers():
                install(ctx)
            for start in ctx.extras.get("starters", []):
                await start(ctx)
            # After the installers: it runs whatever runners they registered.
            await start_supervisor(ctx)
            yield
        finally:
            await stop_workers(ctx)  # gateway.shutdown steps 4-5
            await ctx.tasks.close()
            for stop in reversed(ctx.extras.get("stoppers", [])):
                await stop(ctx)
            await pool.close()

    exception_handlers: dict[Any, Any] = {ApiError: api_error_handler, HTTPException: http_exception_handler}
    for exc_type in DB_UNAVAILABLE:
        exception_handlers[exc_type] = db_unavailable_handler
    exception_handlers[SecretsUnreadable] = _secrets_unreadable
    limits = Middleware(
        HeaderLimits, max_count=settings.gateway_max_headers, max_bytes=settings.gateway_max_header_bytes
    )
    return GatewayApp(routes=_routes(), lifespan=lifespan, exception_handlers=exception_handlers,
                      middleware=[limits, Middleware(RequestIdMiddleware)])
