"""``inbox-gateway demo`` as a newcomer runs it: traffic flows in through the real interfaces.

The demo is a real process on a real Postgres; everything is checked over its
HTTP API, polled with a deadline (it is another process).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.demo_script import OUT_OF_WINDOW
from tests import log_leaks
from tests.redis_server import free_port

SHOWS_WITHIN = 30  # seconds: the promise to a newcomer
NEVER = datetime.max.replace(tzinfo=UTC)  # a call still going on


@dataclass
class Demo:
    proc: asyncio.subprocess.Process
    port: int
    key: str
    banner: str
    log: Path

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10,
                                 headers={"Authorization": f"Bearer {key or self.key}"})

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await self.proc.wait()


async def start_demo(db_url: str, data_dir: Path) -> Demo:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "GATEWAY_PORT": str(port), "GATEWAY_DATA_DIR": str(data_dir),
           "GATEWAY_LOG_LEVEL": log_leaks.SERVER_LOG_LEVEL}
    log = log_leaks.server_log("demo")
    with log.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "demo", "--interval", "0.3",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=log_file)
    assert proc.stdout is not None
    banner = ""
    async with asyncio.timeout(60):
        while (match := re.search(r"API key:\s+(igw_\S+)", banner)) is None:
            line = (await proc.stdout.readline()).decode()
            assert line, f"demo exited before printing its key: {log.read_text()[-3000:]}"
            banner += line
    return Demo(proc, port, match.group(1), banner, log)


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


@dataclass
class Seen:
    """What the demo's API shows at one moment."""

    conversations: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def channel_types(self) -> set[str]:
        return {c["channel_type"] for c in self.conversations}

    @property
    def dispositions(self) -> set[str]:
        return {c["disposition"] for c in self.calls if c["status"] == "ended"}

    def recorded_call(self) -> dict[str, Any] | None:
        return next((c for c in self.calls if c["recording"] and c["recording"]["status"] == "stored"), None)

    def stored_media(self) -> set[str]:
        return {m["mime_type"] for msg in self.messages for m in msg["media"] if m["status"] == "stored"}

    def failed_sends(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["direction"] == "outbound" and m["status"] == "failed"]

    def complete(self) -> bool:
        return ({"whatsapp", "telegram", "asterisk"} <= self.channel_types
                and {"answered", "no_answer"} <= self.dispositions and self.recorded_call() is not None
                and {"image/png", "audio/wav"} <= self.stored_media() and bool(self.failed_sends()))


async def look(http: httpx.AsyncClient) -> Seen:
    seen = Seen()
    seen.conversations = (await http.get("/api/v1/conversations", params={"limit": 100})).json()["items"]
    seen.calls = (await http.get("/api/v1/calls", params={"limit": 100})).json()["items"]
    for conv in seen.conversations:
        if conv["channel_type"] == "whatsapp":
            timeline = (await http.get(f"/api/v1/conversations/{conv['id']}/timeline")).json()["items"]
            seen.messages += [entry["item"] for entry in timeline if entry["kind"] == "message"]
    return seen


async def wait_for_everything(http: httpx.AsyncClient) -> Seen:
    seen = Seen()
    try:
        async with asyncio.timeout(SHOWS_WITHIN):
            while not (seen := await look(http)).complete():  # noqa: ASYNC110
                await asyncio.sleep(0.3)  # another process: polled over HTTP
    except TimeoutError:
        raise AssertionError(
            f"within {SHOWS_WITHIN}s: channels {seen.channel_types}, calls {seen.dispositions}, recording "
            f"{seen.recorded_call()}, media {seen.stored_media()}, failed sends {seen.failed_sends()}") from None
    return seen


async def reply_and_wait(http: httpx.AsyncClient, conversations: list[dict[str, Any]]) -> None:
    """Replies go out through the real senders to the demo's provider stand-ins."""
    sent = {}
    for conv in conversations:
        if conv["channel_type"] in ("whatsapp", "telegram") and conv["channel_type"] not in sent \
                and conv["contact"]["name"] != OUT_OF_WINDOW.name:
            reply = await http.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "on it"})
            assert reply.status_code == 202, reply.text
            sent[conv["channel_type"]] = reply.json()["id"]
    assert sent.keys() == {"whatsapp", "telegram"}
    wanted = {"whatsapp": ("delivered", "read"), "telegram": ("sent",)}
    async with asyncio.timeout(30):
        for channel_type, message_id in sent.items():
            while (await http.get(f"/api/v1/messages/{message_id}")).json()["status"] not in wanted[channel_type]:  # noqa: ASYNC110
                await asyncio.sleep(0.2)


async def test_the_demo_shows_every_kind_of_traffic_and_a_rerun_keeps_its_account_channels_and_history(
        db_url, tmp_path):
    first = await start_demo(db_url, tmp_path)
    try:
        assert f"/inbox#token={first.key}" in first.banner
        # The key is only ever in a URL's fragment, which browsers never send.
        for url in re.findall(r"https?://\S+", first.banner):
            assert first.key not in url.split("#", 1)[0]
        async with first.client() as http:
            seen = await wait_for_everything(http)

            call = seen.recorded_call()
            assert call is not None and call["disposition"] == "answered"
            recording = await http.get(call["recording"]["url"])
            assert recording.status_code == 200
            assert recording.headers["content-type"].startswith("audio/wav")
            assert recording.content[:4] == b"RIFF" and recording.content[8:12] == b"WAVE"
            assert len(recording.content) == call["recording"]["size"] > 8000  # seconds of audio, not a stub

            image = next(m for msg in seen.messages for m in msg["media"] if m["mime_type"] == "image/png")
            assert (await http.get(image["url"])).content[:8] == b"\x89PNG\r\n\x1a\n"

            # One customer wrote yesterday: WhatsApp refuses the reply, and the inbox says why.
            failed = seen.failed_sends()[0]
            assert failed["error"]["code"] == "131047"
            assert "24 hours" in failed["error"]["message"]

            # Customers have short conversations, not one sentence repeated.
            said: dict[int, list[str]] = {}
            for m in seen.messages:
                if m["direction"] == "inbound" and m["type"] == "text":
                    said.setdefault(m["conversation_id"], []).append(m["text"])
            everything = [text for texts in said.values() for text in texts]
            assert len(set(everything)) >= min(len(everything), 12)
            for texts in said.values():
                assert all(a != b for a, b in itertools.pairwise(texts)), texts

            # A caller is never on two calls at once.
            by_caller: dict[str, list[dict[str, Any]]] = {}
            for c in seen.calls:
                by_caller.setdefault(c["from_number"], []).append(c)
            for calls in by_caller.values():
                spans = sorted((at(c["started_at"]), at(c["ended_at"]) if c["ended_at"] else NEVER) for c in calls)
                for (_, end), (start, _) in itertools.pairwise(spans):
                    assert end <= start, spans

            await reply_and_wait(http, seen.conversations)
            channels = {ch["type"]: ch["id"] for ch in (await http.get("/api/v1/channels")).json()["items"]}
            first_conversations = [c["id"] for c in seen.conversations]
            account = re.search(r"Account:.*\(id (\d+)", first.banner)
            assert account is not None
    finally:
        await first.stop()
    assert first.proc.returncode == 0

    second = await start_demo(db_url, tmp_path)
    try:
        assert re.search(rf"Account:.*\(id {account.group(1)}, reused", second.banner), second.banner
        assert second.key != first.key  # keys are stored hashed: a fresh one for the same account
        async with second.client() as http:
            again = {ch["type"]: ch["id"] for ch in (await http.get("/api/v1/channels")).json()["items"]}
            assert again == channels
            for conversation_id in first_conversations:
                assert (await http.get(f"/api/v1/conversations/{conversation_id}")).status_code == 200
            # The first run's traffic lands in the same conversations: no second Lena, no second Maya.
            await wait_for_everything(http)
            seen = await look(http)
            pairs = [(c["channel_type"], c["contact"]["id"]) for c in seen.conversations]
            assert len(pairs) == len(set(pairs))
        async with second.client(first.key) as http:  # a tab opened on the first run keeps working
            assert (await http.get("/api/v1/channels")).status_code == 200
    finally:
        await second.stop()
    assert second.proc.returncode == 0
    for demo in (first, second):
        assert "Traceback" not in demo.log.read_text()
