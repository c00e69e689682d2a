"""``inbox-gateway demo``: a newcomer's tour.

It serves the gateway exactly as ``serve`` does (embedded PostgreSQL unless
DATABASE_URL is set), creates a demo account with a WhatsApp, a Telegram and
an Asterisk channel, and then plays customers: signed WhatsApp webhooks and
Telegram updates posted to the real webhook routes, and calls placed by a
pretend PBX speaking AMI to the real adapter. Replies sent from the inbox go
out through the real WhatsApp and Telegram senders to small stand-ins of the
Graph and Bot APIs mounted under ``/demo``, which answer like the providers
(and post WhatsApp delivery statuses back).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from channels.whatsapp.verify import SIGNATURE_HEADER, sign
from gateway.config import Settings
from gateway.demo_ami import DemoPbx
from gateway.embedded_pg import resolved_database
from gateway.secret_box import SecretBox, box_for
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
from inbox.accounts import create_account
from inbox.db import create_pool

log = logging.getLogger(__name__)

CUSTOMERS = [
    ("4915112345678", "Lena Fischer", "Hallo, ist meine Bestellung 4711 schon unterwegs?"),
    ("447700900123", "Oliver Smith", "Hi! Can I change the delivery address of my order?"),
    ("33612345678", "Camille Martin", "Bonjour, je n'ai pas reçu ma facture."),
]
TELEGRAM_USERS = [(521937406, "Maya", "Cohen", "Hi, I was charged twice for order #A-1029"),
                  (733004211, "Ravi", "Patel", "Is the store open on Sunday?")]
CALLERS = [("+14155550123", "JANE ROE"), ("+4930123456", "MAX MUSTERMANN")]
PHONE_NUMBER_ID = "100000000000001"


@dataclass
class DemoState:
    base: str
    wa_channel: int = 0
    tg_channel: int = 0
    app_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    tg_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    ami_secret: str = field(default_factory=lambda: secrets.token_hex(8))
    update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(int(time.time())))
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _wa_body(value: dict[str, Any]) -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550100000", "phone_number_id": PHONE_NUMBER_ID}, **value}
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": value}]}]}
    return json.dumps(body, separators=(",", ":")).encode()


async def _post_wa(state: DemoState, http: httpx.AsyncClient, value: dict[str, Any]) -> None:
    raw = _wa_body(value)
    await http.post(f"{state.base}/webhooks/whatsapp/{state.wa_channel}", content=raw,
                    headers={SIGNATURE_HEADER: sign(raw, state.app_secret), "Content-Type": "application/json"})


def fake_provider_routes(state: DemoState) -> list[Route]:
    """Stand-ins for the Graph API and the Bot API, for replies sent from the demo inbox."""

    async def graph_send(request: Request) -> Response:
        body = await request.json()
        wamid = f"wamid.demo-{uuid.uuid4().hex}"

        async def statuses() -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                for delay, status in ((1, "sent"), (2, "delivered"), (3, "read")):
                    await asyncio.sleep(delay)
                    await _post_wa(state, http, {"statuses": [{"id": wamid, "status": status,
                                                              "timestamp": str(int(time.time())),
                                                              "recipient_id": body.get("to", "")}]})

        state.later(statuses())
        return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": body.get("to"),
                             "wa_id": body.get("to")}], "messages": [{"id": wamid}]})

    async def bot_api(request: Request) -> Response:
        method = request.path_params["method"]
        form: dict[str, Any] = {}
        if request.headers.get("content-type", "").startswith("application/json"):
            form = await request.json()
        else:
            form = dict(await request.form())
        if method == "getMe":
            return JSONResponse({"ok": True, "result": {"id": 7000001, "is_bot": True, "first_name": "Demo",
                                                        "username": "inbox_demo_bot"}})
        if method == "sendMessage":
            chat_id = int(str(form.get("chat_id", "0")))
            return JSONResponse({"ok": True, "result": {
                "message_id": random.randint(10_000, 99_999), "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"}, "text": form.get("text", "")}})
        if method in ("setWebhook", "deleteWebhook"):
            return JSONResponse({"ok": True, "result": True})
        return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)

    return [
        Route("/demo/graph/v21.0/{phone_number_id}/messages", graph_send, methods=["POST"]),
        Route("/demo/telegram/bot{token}/{method}", bot_api, methods=["POST", "GET"]),
    ]


async def _create_demo(dsn: str, state: DemoState, pbx: DemoPbx, box: SecretBox) -> str:
    pool = await create_pool(dsn, max_size=2)
    try:
        account_id, key = await create_account(pool, f"demo {time.strftime('%Y-%m-%d %H:%M')}")
        # Earlier demo runs claimed these provider identities: release them.
        await pool.execute(
            """UPDATE channels SET deleted_at = now()
               WHERE deleted_at IS NULL
                 AND (provider_key IN ($1, '7000001') OR provider_key LIKE '127.0.0.1:%:demo')""",
            PHONE_NUMBER_ID,
        )
        insert = """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"""
        state.wa_channel = await pool.fetchval(
            insert, account_id, "whatsapp", "WhatsApp (demo)", {"phone_number_id": PHONE_NUMBER_ID},
            box.seal({"access_token": "demo-token", "app_secret": state.app_secret, "verify_token": "demo"}),
            PHONE_NUMBER_ID)
        state.tg_channel = await pool.fetchval(
            insert, account_id, "telegram", "Telegram (demo)",
            {"mode": "webhook", "bot_id": 7000001, "bot_username": "inbox_demo_bot"},
            box.seal({"bot_token": "7000001:demo", "webhook_secret": state.tg_secret}), "7000001")
        await pool.fetchval(
            insert, account_id, "asterisk", "Asterisk (demo PBX)",
            {"host": "127.0.0.1", "port": pbx.port, "username": "demo", "inbound_contexts": ["from-carrier"],
             "agent_pattern": r"PJSIP/1\d{3}"},
            box.seal({"secret": state.ami_secret}), f"127.0.0.1:{pbx.port}:demo")
        return key
    finally:
        await pool.close()


async def _customers(state: DemoState, pbx: DemoPbx, interval: float) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            await asyncio.sleep(random.uniform(0.5, 1.5) * interval)
            kind = random.choice(["whatsapp", "whatsapp", "telegram", "call"])
            try:
                if kind == "whatsapp":
                    wa_id, name, text = random.choice(CUSTOMERS)
                    await _post_wa(state, http, {
                        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                        "messages": [{"from": wa_id, "id": f"wamid.demo-in-{uuid.uuid4().hex}",
                                      "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}]})
                elif kind == "telegram":
                    user_id, first, last, text = random.choice(TELEGRAM_USERS)
                    user = {"id": user_id, "is_bot": False, "first_name": first, "last_name": last}
                    update = {"update_id": next(state.update_ids), "message": {
                        "message_id": random.randint(1, 1_000_000), "from": user,
                        "chat": {**user, "type": "private"}, "date": int(time.time()), "text": text}}
                    await http.post(f"{state.base}/webhooks/telegram/{state.tg_channel}", json=update,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": state.tg_secret})
                else:
                    number, name = random.choice(CALLERS)
                    state.later(pbx.call(caller=number, name=name, agent=random.choice(["1001", "1002"]),
                                         answer=random.random() < 0.7))
            except httpx.HTTPError as exc:
                log.warning("demo traffic: %r", exc)


async def _demo(settings: Settings, stop: _StopSignals, interval: float) -> None:
    from gateway.app import create_app

    host = "127.0.0.1" if settings.gateway_host in ("0.0.0.0", "::") else settings.gateway_host
    base = f"http://{host}:{settings.gateway_port}"
    state = DemoState(base=base)
    sock = listen_socket(settings.gateway_host, settings.gateway_port)
    pbx = DemoPbx(username="demo", secret=state.ami_secret)
    try:
        await pbx.start()
        async with resolved_database(settings.database_url, settings.gateway_data_dir) as dsn:
            if stop.requested:
                return
            await apply_migrations(dsn)
            await seal_secrets(dsn, settings)
            key = await _create_demo(dsn, state, pbx, box_for(settings))
            app = create_app(settings.model_copy(update={
                "database_url": dsn,
                "whatsapp_api_base": f"{base}/demo/graph/v21.0",
                "telegram_api_base": f"{base}/demo/telegram",
            }))
            app.router.routes.extend(fake_provider_routes(state))
            server = GracefulServer(uvicorn_config(app, settings, log_level="warning"))
            stop.server = server
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no event
                await asyncio.sleep(0.05)
            if serving.done():
                await serving
                return
            print(f"inbox-gateway demo is running.\n\n  Live inbox:  {base}/inbox#token={key}\n"
                  f"  API key:     {key}\n  Try:         curl -H 'Authorization: Bearer {key}' "
                  f"{base}/api/v1/conversations\n\nCustomers write and call every few seconds. Ctrl-C stops.",
                  flush=True)
            traffic = asyncio.create_task(_customers(state, pbx, interval))
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
