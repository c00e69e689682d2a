"""``inbox-gateway demo``: a newcomer's tour.

It serves the gateway exactly as ``serve`` does (embedded PostgreSQL unless
DATABASE_URL is set), opens the demo account with its WhatsApp, Telegram and
Asterisk channels (the same account and channels on every run:
gateway/demo_account.py), and then plays customers (gateway/demo_traffic.py):
signed WhatsApp webhooks and Telegram updates posted to the real webhook
routes, and calls placed by a pretend PBX speaking AMI to the real adapter.
Replies sent from the inbox go out through the real WhatsApp and Telegram
senders to small stand-ins of the Graph and Bot APIs mounted under ``/demo``
(gateway/demo_providers.py). Call recordings are WAV files written into
``GATEWAY_DATA_DIR/demo-recordings``, which is the demo's GATEWAY_RECORDINGS_DIR.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.config import Settings
from gateway.demo_account import DEMO_ACCOUNT, DemoAccount, open_demo_account
from gateway.demo_ami import DemoPbx
from gateway.demo_providers import GRAPH_PATH, DemoState, provider_routes
from gateway.demo_traffic import Traffic, out_of_window_reply
from gateway.embedded_pg import resolved_database
from gateway.secret_box import box_for
from gateway.serve import (
    _configure_logging,
    _StopSignals,
    apply_migrations,
    listen_socket,
    run_async,
    seal_secrets,
    uvicorn_config,
)
from gateway.shutdown import GracefulServer
from gateway.supervise import stop_tasks
from inbox.db import connect


def _banner(base: str, account: DemoAccount) -> str:
    key = account.key
    opened = "created" if account.created else "reused from an earlier run; a new key for this run"
    return (f"inbox-gateway demo is running.\n\n  Account:     {DEMO_ACCOUNT} (id {account.id}, {opened})\n"
            f"  Live inbox:  {base}/inbox#token={key}\n  API key:     {key}\n"
            f"  Try:         curl -H 'Authorization: Bearer {key}' {base}/api/v1/conversations\n\n"
            "Customers write, send photos and voice notes, and call every few seconds. Ctrl-C stops.")


async def _demo(settings: Settings, stop: _StopSignals, interval: float) -> None:
    from gateway.app import create_app

    host = "127.0.0.1" if settings.gateway_host in ("0.0.0.0", "::") else settings.gateway_host
    base = f"http://{host}:{settings.gateway_port}"
    state = DemoState(base=base)
    recordings = settings.gateway_data_dir / "demo-recordings"
    sock = listen_socket(settings.gateway_host, settings.gateway_port)
    pbx = DemoPbx(username="demo", secret=state.ami_secret)
    try:
        await pbx.start()
        async with resolved_database(settings.database_url, settings.gateway_data_dir) as dsn:
            if stop.requested:
                return
            await apply_migrations(dsn)
            await seal_secrets(dsn, settings)
            recordings.mkdir(parents=True, exist_ok=True)
            conn = await connect(dsn)
            try:
                account = await open_demo_account(conn, state, pbx.port, box_for(settings))
            finally:
                await conn.close()
            app = create_app(settings.model_copy(update={
                "database_url": dsn,
                "whatsapp_api_base": f"{base}{GRAPH_PATH}",
                "telegram_api_base": f"{base}/demo/telegram",
                "gateway_recordings_dir": recordings.resolve(),
            }))
            app.router.routes.extend(provider_routes(state))
            server = GracefulServer(uvicorn_config(app, settings, log_level="warning"))
            stop.server = server
            state.stopping = lambda: server.should_exit
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no event
                await asyncio.sleep(0.05)
            if serving.done():
                await serving
                return
            print(_banner(base, account), flush=True)
            traffic = asyncio.create_task(Traffic(state, pbx, recordings).run(interval))
            state.later(out_of_window_reply(state, account.key))
            try:
                await serving
            finally:
                await stop_tasks([traffic, *state.tasks], within=5, what="demo")
    finally:
        await pbx.close()
        sock.close()


def demo(settings: Settings, *, interval: float = 4.0) -> None:
    _configure_logging(settings.gateway_log_level, settings.gateway_log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the demo's own customer requests
    stop = _StopSignals()
    stop.install()
    try:
        run_async(lambda: _demo(settings, stop, interval))
    finally:
        stop.restore()
