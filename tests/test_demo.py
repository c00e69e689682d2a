"""``inbox-gateway demo`` as a newcomer runs it: traffic flows in through the real interfaces."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import httpx

from tests import log_leaks
from tests.redis_server import free_port


async def test_the_demo_prints_a_key_and_fills_the_inbox_through_the_real_webhooks_and_ami(db_url):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "GATEWAY_PORT": str(port),
           "GATEWAY_LOG_LEVEL": log_leaks.SERVER_LOG_LEVEL}
    with log_leaks.server_log("demo").open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "demo", "--interval", "0.3",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=log_file)
    try:
        assert proc.stdout is not None
        key = None
        async with asyncio.timeout(60):
            while key is None:
                line = (await proc.stdout.readline()).decode()
                assert line, "demo exited before printing its key"
                if match := re.search(r"API key:\s+(igw_\S+)", line):
                    key = match.group(1)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as http:
            async with asyncio.timeout(60):
                while True:
                    convs = (await http.get("/api/v1/conversations")).json()["items"]
                    calls = (await http.get("/api/v1/calls")).json().get("items", [])
                    types = {c["channel_type"] for c in convs}
                    if {"whatsapp", "telegram"} <= types and calls:
                        break
                    await asyncio.sleep(0.5)
            inbound = (await http.get("/api/v1/inbound", params={"status": "failed"})).json()["items"]
            assert inbound == []
            # Replies go out through the real senders to the demo's provider stand-ins.
            sent = {}
            for conv in convs:
                if conv["channel_type"] in ("whatsapp", "telegram") and conv["channel_type"] not in sent:
                    reply = await http.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "on it"})
                    assert reply.status_code == 202, reply.text
                    sent[conv["channel_type"]] = reply.json()["id"]
            wanted = {"whatsapp": "delivered", "telegram": "sent"}

            async def status(message_id: int) -> str:
                return str((await http.get(f"/api/v1/messages/{message_id}")).json()["status"])

            async with asyncio.timeout(30):
                for channel_type, message_id in sent.items():
                    while await status(message_id) not in (wanted[channel_type], "read"):  # noqa: ASYNC110
                        await asyncio.sleep(0.2)  # another process: polled over HTTP
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
    assert proc.returncode == 0
