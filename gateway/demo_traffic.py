"""The demo's customers at work: messages through the real webhook routes, calls through the pretend PBX.

Every few seconds one thing happens: a WhatsApp or Telegram customer sends
the next turn of their conversation, or someone calls. A caller never has two
calls at once; some calls are missed, and about half the answered ones are
recorded (a WAV written into the recordings directory before Asterisk would
announce its name). The first three events are a WhatsApp message, a Telegram
message and a recorded answered call, and the second call is missed, so a
newcomer sees every kind within seconds.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from channels.asterisk.config import AsteriskConfig
from gateway.demo_ami import DemoPbx
from gateway.demo_media import parcel_png, voice_wav
from gateway.demo_providers import DemoState, post_wa
from gateway.demo_script import (
    AGENTS,
    CALLERS,
    OUT_OF_WINDOW,
    OUT_OF_WINDOW_REPLY,
    TELEGRAM,
    WHATSAPP,
    Conversations,
    Customer,
)

MONITOR_DIR = AsteriskConfig.model_fields["monitor_dir"].default  # the demo channel keeps Asterisk's default
OPENING = ("whatsapp", "telegram", "call")
KINDS = ("whatsapp", "whatsapp", "telegram", "telegram", "call")


@dataclass
class Traffic:
    state: DemoState
    pbx: DemoPbx
    recordings: Path
    rng: random.Random = field(default_factory=random.Random)
    whatsapp: Conversations = field(default_factory=lambda: Conversations(WHATSAPP))
    telegram: Conversations = field(default_factory=lambda: Conversations(TELEGRAM))
    on_the_phone: set[str] = field(default_factory=set)
    calls: int = 0

    async def send_whatsapp(self, http: httpx.AsyncClient) -> None:
        customer, turn = self.whatsapp.next_turn(self.rng)
        message: dict[str, Any] = {"from": customer.id, "id": f"wamid.demo-in-{uuid.uuid4().hex}",
                                   "timestamp": str(int(time.time()))}
        if turn.kind == "image":
            media_id, sha256 = self.state.shelve(parcel_png(), "image/png")
            message |= {"type": "image", "image": {"caption": turn.text, "mime_type": "image/png",
                                                   "sha256": sha256, "id": media_id}}
        elif turn.kind == "voice":
            # WhatsApp's voice notes are Ogg/Opus; the standard library writes WAV, which browsers play too.
            content = await asyncio.to_thread(voice_wav, self.rng.uniform(2.5, 5.0),
                                              seed=self.rng.randrange(1 << 30), pitch=210)
            media_id, sha256 = self.state.shelve(content, "audio/wav")
            message |= {"type": "audio", "audio": {"mime_type": "audio/wav", "sha256": sha256, "id": media_id,
                                                   "voice": True}}
        else:
            message |= {"type": "text", "text": {"body": turn.text}}
        await post_wa(self.state, http, {"contacts": [{"profile": {"name": customer.name}, "wa_id": customer.id}],
                                         "messages": [message]})

    async def send_telegram(self, http: httpx.AsyncClient) -> None:
        customer, turn = self.telegram.next_turn(self.rng)
        first, _, last = customer.name.partition(" ")
        user = {"id": int(customer.id), "is_bot": False, "first_name": first, "last_name": last}
        update = {"update_id": next(self.state.update_ids), "message": {
            "message_id": self.rng.randint(1, 1_000_000), "from": user, "chat": {**user, "type": "private"},
            "date": int(time.time()), "text": turn.text}}
        await http.post(f"{self.state.base}/webhooks/telegram/{self.state.tg_channel}", json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": self.state.tg_secret})

    def place_call(self) -> None:
        free = [c for c in CALLERS if c.id not in self.on_the_phone]
        if not free:
            return
        caller = self.rng.choice(free)
        self.calls += 1
        answer = self.calls == 1 or (self.calls > 2 and self.rng.random() < 0.7)
        recorded = answer and (self.calls == 1 or self.rng.random() < 0.5)
        talk = self.rng.uniform(3.0, 8.0)
        number = self.calls
        self.on_the_phone.add(caller.id)

        async def call() -> None:
            try:
                recording = await asyncio.to_thread(self._record, caller, talk, number) if recorded else None
                await self.pbx.call(caller=caller.id, name=caller.name, agent=self.rng.choice(AGENTS),
                                    answer=answer, ring=self.rng.uniform(1.5, 4.0), talk=talk, recording=recording)
            finally:
                self.on_the_phone.discard(caller.id)

        self.state.later(call())

    def _record(self, caller: Customer, seconds: float, number: int) -> str:
        """Write the call's recording; its name as MixMonitor announces it (under Asterisk's monitor_dir)."""
        now = datetime.now(UTC)
        name = f"{now:%Y/%m/%d}/in-15105550100-{caller.id.lstrip('+')}-{now:%H%M%S}-{number}.wav"
        path = self.recordings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(voice_wav(seconds, seed=number, pitch=(120, 190)[number % 2]))
        return f"{MONITOR_DIR}/{name}"

    async def run(self, interval: float) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            for n in range(1 << 62):
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) * interval)
                kind = OPENING[n] if n < len(OPENING) else self.rng.choice(KINDS)
                try:
                    if kind == "whatsapp":
                        await self.send_whatsapp(http)
                    elif kind == "telegram":
                        await self.send_telegram(http)
                    else:
                        self.place_call()
                except httpx.HTTPError as exc:
                    self.state.warn("traffic", exc)


async def out_of_window_reply(state: DemoState, key: str) -> None:
    """A customer who wrote yesterday, and a reply WhatsApp refuses (131047): the inbox shows a failed send."""
    customer = OUT_OF_WINDOW
    yesterday = int(time.time()) - 26 * 3600
    state.out_of_window.add(customer.id)
    async with httpx.AsyncClient(base_url=state.base, timeout=10,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        try:
            await post_wa(state, http, {
                "contacts": [{"profile": {"name": customer.name}, "wa_id": customer.id}],
                "messages": [{"from": customer.id, "id": f"wamid.demo-in-{uuid.uuid4().hex}",
                              "timestamp": str(yesterday), "type": "text",
                              "text": {"body": customer.topics[0][0].text}}]})
            # Ingest commits in the background: wait for the conversation, within a bound.
            async with asyncio.timeout(30):
                while True:
                    found = await http.get("/api/v1/conversations",
                                           params={"channel_id": state.wa_channel, "q": customer.id})
                    items = found.json().get("items", []) if found.status_code == 200 else []
                    if items:
                        break
                    await asyncio.sleep(0.2)
            await http.post(f"/api/v1/conversations/{items[0]['id']}/messages", json={"text": OUT_OF_WINDOW_REPLY})
        except (httpx.HTTPError, TimeoutError) as exc:
            state.warn("the out-of-window reply was not sent", exc)
