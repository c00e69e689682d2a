"""An agent's day in the inbox page, in a real headless Chromium against a running gateway.

Provider traffic arrives through the signed WhatsApp webhook; replies go out through the
outbound worker to the fake Graph API and their statuses come back through the webhook.
Screenshots of each view are saved under the test's tmp_path.

Needs a system Chromium (Debian: ``apt-get install chromium``) and the ``playwright``
package, driven with ``executable_path``; ``playwright install`` is never needed.
"""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.media_worker import MediaWorkerConfig
from gateway.outbound_worker import OutboundConfig
from tests.browser.media_samples import png, wav
from tests.fakes.graph_api import FakeGraphApi, graph_error, running_graph_api
from tests.redis_server import free_port
from tests.sealed import seal
from tests.server import RunningServer, run_server
from tests.tcp_proxy import TcpProxy
from tests.whatsapp.fixtures import body
from tests.whatsapp.helpers import (
    ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    WaChannel,
    echo,
    make_whatsapp_channel,
    post_signed,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium on PATH (apt-get install chromium): browser tests skipped", allow_module_level=True)
async_api = pytest.importorskip("playwright.async_api", reason="playwright not installed: browser tests skipped")
expect = async_api.expect

FAST = OutboundConfig(concurrency=2, poll_interval=0.02, backoff_base=0.01, backoff_cap=0.05, max_attempts=3)
WAIT = 10_000  # ms: the deadline of every wait for the page
LENA = "4915112345678"
# Chromium's own lines for what the tests provoke (a wrong key, a refused send, a PBX that is down, a cut
# socket); the page itself logs nothing.
EXPECTED_NETWORK_NOISE = re.compile(
    r"^(Failed to load resource: the server responded with a status of (401|422|503)|WebSocket connection to .* failed)"
)


@dataclass
class Gateway:
    server: RunningServer
    proxy: TcpProxy
    graph: FakeGraphApi
    channel: WaChannel
    url: str  # the page's origin: the proxy, so a test can cut the browser's connections
    media_dir: Path
    shots: Path
    console: list[str] = field(default_factory=list)

    async def webhook(self, payload: dict[str, Any]) -> None:
        async with self.server.client() as http:
            response = await post_signed(http, self.channel.channel_id, payload)
            assert response.status_code == 200, response.text


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--autoplay-policy=no-user-gesture-required"])
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def gateway(db_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    media_dir = tmp_path / "media"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with running_graph_api({PHONE_NUMBER_ID: ACCESS_TOKEN}) as graph, run_server(
        db_url, whatsapp_api_base=graph.base_url, gateway_media_dir=media_dir,
        extras={"outbound_config": FAST, "media_worker_config": MediaWorkerConfig(poll_interval=0.05)},
    ) as server:
        target = urlsplit(server.url)
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 80)
        await proxy.start()
        try:
            channel = await make_whatsapp_channel(server.ctx.pool)
            yield Gateway(server, proxy, graph, channel, f"http://127.0.0.1:{proxy.port}", media_dir, shots)
        finally:
            await proxy.cut()


async def new_page(browser: Any, gw: Gateway, **context: Any) -> Any:
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    page.on("console", lambda m: gw.console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: gw.console.append(f"pageerror: {e}"))
    return page


async def sign_in(page: Any, gw: Gateway, *, agent: str = "ana", extension: str = "") -> None:
    await page.goto(gw.url + "/inbox")
    await page.fill("#key", gw.channel.api_key)
    await page.fill("#agent", agent)
    await page.fill("#extension", extension)
    await page.click("#connect")
    await expect(page.locator("#status")).to_have_text("live", timeout=WAIT)


def text_message(wamid: str, text: str, *, sender: str = LENA, name: str = "Lena",
                 ts: str | None = None) -> dict[str, Any]:
    payload = copy.deepcopy(body("text.json"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["profile"]["name"] = name
    value["contacts"][0].update({"wa_id": sender, "user_id": "DE." + sender})
    message = value["messages"][0]
    message.update({"id": wamid, "from": sender, "from_user_id": "DE." + sender,
                    "timestamp": ts or str(int(time.time()))})
    message["text"]["body"] = text
    return payload


def media_message(fixture: str, wamid: str, media_id: str, mime: str) -> dict[str, Any]:
    payload = copy.deepcopy(body(fixture))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = wamid
    kind = message["type"]
    message[kind]["id"] = media_id
    message[kind]["mime_type"] = mime
    message[kind].pop("sha256", None)
    return payload


def status(wamid: str, name: str, ts: str = "1893456000") -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "209876543210987", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550109876", "phone_number_id": PHONE_NUMBER_ID},
                  "statuses": [{"id": wamid, "status": name, "timestamp": ts, "recipient_id": LENA}]}}]}]}


async def recorded_call(gw: Gateway, contact_phone: str) -> int:
    """An answered call with a stored recording, and a missed one, on a PBX channel of the same account:
    rows as the AMI listener and the media worker leave them."""
    pool = gw.server.ctx.pool
    account_id = gw.channel.account_id
    recording = wav(seconds=1.5)
    (gw.media_dir / "rec").mkdir(parents=True, exist_ok=True)
    (gw.media_dir / "rec" / "call-1.wav").write_bytes(recording)
    # A PBX nobody listens on: its listener retries quietly, and click-to-call answers 503.
    pbx = await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
           VALUES ($1, 'asterisk', 'pbx', $2, $3, 'pbx') RETURNING id""",
        account_id, {"host": "127.0.0.1", "port": free_port(), "username": "gw", "agent_pattern": r"PJSIP/\d+"},
        seal({"secret": "ami-sekrit"}))
    contact_id = await pool.fetchval("SELECT id FROM contacts WHERE phone = $1 OR name = 'Lena' LIMIT 1",
                                     contact_phone)
    await pool.execute("""INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id, display)
                          VALUES ($1, $2, 'asterisk', $3, $3)""", account_id, contact_id, contact_phone)
    conversation_id: int = await pool.fetchval(
        """INSERT INTO conversations (account_id, channel_id, contact_id, last_activity_at)
           VALUES ($1, $2, $3, now() - interval '1 minute') RETURNING id""", account_id, pbx, contact_id)
    media_id = await pool.fetchval(
        """INSERT INTO media_files (account_id, channel_id, mime_type, name, size, sha256, storage_path, status)
           VALUES ($1, $2, 'audio/wav', 'call-1.wav', $3, $4, 'rec/call-1.wav', 'stored') RETURNING id""",
        account_id, pbx, len(recording), hashlib.sha256(recording).hexdigest())
    await pool.execute(
        """INSERT INTO calls (account_id, channel_id, conversation_id, contact_id, direction, from_number, to_number,
                              status, disposition, agent, started_at, answered_at, ended_at, duration, billsec,
                              external_id, recording_media_id)
           VALUES ($1, $2, $3, $4, 'inbound', $5, '100', 'ended', 'answered', '1001', now() - interval '10 minutes',
                   now() - interval '10 minutes', now() - interval '8 minutes', 125, 118, 'call-answered', $6),
                  ($1, $2, $3, $4, 'inbound', $5, '100', 'ended', 'no_answer', NULL, now() - interval '5 minutes',
                   NULL, now() - interval '5 minutes', 20, 0, 'call-missed', NULL)""",
        account_id, pbx, conversation_id, contact_id, contact_phone, media_id)
    return conversation_id


async def test_an_agent_works_a_conversation_end_to_end(gateway: Gateway, browser: Any) -> None:
    gw = gateway
    page = await new_page(browser, gw, viewport={"width": 1280, "height": 820})
    sockets: list[Any] = []
    page.on("websocket", lambda ws: sockets.append(ws))

    # A wrong key says so and stops: one socket, refused with 4401, no retry loop.
    await page.goto(gw.url + "/inbox")
    await expect(page.locator("#list-empty")).to_contain_text("API key")
    await page.fill("#key", "igw_wrong")
    await page.click("#connect")
    await expect(page.locator("#status")).to_have_text("invalid key", timeout=WAIT)
    await expect(page.locator("#error")).to_contain_text("invalid key")
    assert len(sockets) == 1

    # Sign in; a new account is guided; then a conversation arrives live from a signed webhook.
    await sign_in(page, gw, agent="ana")
    signed_in = len(sockets)
    await expect(page.locator("#list-empty")).to_contain_text("No conversations yet")
    await page.screenshot(path=gw.shots / "01-empty-account.png")
    await gw.webhook(text_message("wamid.in.1", "Hallo, wo ist meine Bestellung?"))
    row = page.locator("#list .conv", has_text="Lena")
    await expect(row).to_contain_text("Hallo, wo ist meine Bestellung?", timeout=WAIT)
    await expect(row.locator(".badge")).to_have_text("1")
    await expect(page).to_have_title(re.compile(r"^\(1\) "))

    # Connect again while connected: exactly one new socket, and it stays the only one.
    await page.click("#connect")
    await expect(page.locator("#status")).to_have_text("live", timeout=WAIT)
    assert len(sockets) == signed_in + 1

    # Open it: the header names contact, channel, status; unread clears in the API, the row and the title.
    await row.click()
    header = page.locator("#conv-header")
    await expect(header).to_contain_text("Lena")
    await expect(header).to_contain_text("whatsapp")
    await expect(header).to_contain_text("unassigned")
    await expect(row.locator(".badge")).to_have_count(0, timeout=WAIT)
    await expect(page).to_have_title(re.compile(r"^inbox-gateway"))
    pool = gw.server.ctx.pool
    assert await pool.fetchval("SELECT unread_count FROM conversations") == 0

    # Reply with a two-line text (Shift+Enter), sent with Enter; ticks follow the WhatsApp statuses to read.
    await page.locator("#text").press_sequentially("Sie ist unterwegs.")
    await page.locator("#text").press("Shift+Enter")
    await page.locator("#text").press_sequentially("Lieferung morgen.")
    await page.locator("#text").press("Enter")
    reply_text = "Sie ist unterwegs.\nLieferung morgen."
    reply = page.locator("#timeline .item.outbound", has_text="Lieferung morgen.")
    await expect(reply.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=WAIT)
    await expect(page.locator("#text")).to_have_value("")
    [sent] = gw.graph.delivered_with_text(reply_text)
    assert sent.wamid
    await gw.webhook(status(sent.wamid, "delivered", "1893456000"))
    await expect(reply.locator(".ticks")).to_have_attribute("data-status", "delivered", timeout=WAIT)
    await expect(reply.locator(".ticks")).to_have_text("✓✓")
    await gw.webhook(status(sent.wamid, "read", "1893456001"))
    await expect(reply.locator(".ticks")).to_have_attribute("data-status", "read", timeout=WAIT)
    await expect(reply.locator(".ticks")).to_have_css("color", "rgb(26, 115, 232)")
    await page.screenshot(path=gw.shots / "02-conversation-read-ticks.png")

    # A send the API refuses (422: over 4096 characters) keeps the text and says why.
    too_long = "x" * 4097
    await page.fill("#text", too_long)
    await page.click("#send")
    await expect(page.locator("#error")).to_contain_text("Not sent", timeout=WAIT)
    await expect(page.locator("#text")).to_have_value(too_long)

    # A send the provider refuses shows its reason in red, and Retry sends it again.
    gw.graph.fail_next_sends(PHONE_NUMBER_ID, graph_error(400, 131026, "Message undeliverable",
                                                          details="Receiver is incapable of receiving this message"))
    await page.fill("#text", "Haben Sie die Sendungsnummer?")
    await page.locator("#text").press("Enter")
    failed = page.locator("#timeline .item.failed", has_text="Haben Sie die Sendungsnummer?")
    await expect(failed.locator(".reason")).to_contain_text("undeliverable", timeout=WAIT)
    await expect(failed).to_have_css("border-top-color", "rgb(198, 40, 40)")
    await page.screenshot(path=gw.shots / "03-failed-send.png")
    await failed.locator(".retry").click()
    retried = page.locator("#timeline .item.outbound:not(.failed)", has_text="Haben Sie die Sendungsnummer?")
    await expect(retried.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=WAIT)
    assert len(gw.graph.delivered_with_text("Haben Sie die Sendungsnummer?")) == 1

    # An image and a voice message arrive; both render from the key-authenticated media route, and the audio plays.
    gw.graph.add_media("m-image-1", png(), "image/png")
    gw.graph.add_media("m-voice-1", wav(), "audio/wav")
    await gw.webhook(media_message("image.json", "wamid.in.img", "m-image-1", "image/png"))
    await gw.webhook(media_message("voice.json", "wamid.in.voice", "m-voice-1", "audio/wav"))
    image = page.locator("#timeline img.media-image")
    await expect(image).to_have_attribute("src", re.compile(r"^blob:"), timeout=WAIT)
    await expect(image).to_have_js_property("naturalWidth", 24, timeout=WAIT)
    voice = page.locator("#timeline .item.inbound audio")
    await expect(voice).to_have_attribute("src", re.compile(r"^blob:"), timeout=WAIT)
    assert await voice.evaluate("a => a.play().then(() => !a.paused)") is True
    await page.screenshot(path=gw.shots / "04-media.png")

    # A dropped connection: the socket dies, a message arrives meanwhile, the page resumes and shows it once.
    await gw.proxy.cut()
    await expect(page.locator("#status")).to_have_attribute("data-state", "offline", timeout=WAIT)
    await gw.webhook(text_message("wamid.in.2", "Sind Sie noch da?"))
    await gw.proxy.start()
    await expect(page.locator("#status")).to_have_text("live", timeout=WAIT)
    await expect(page.locator("#timeline .item", has_text="Sind Sie noch da?")).to_have_count(1, timeout=WAIT)

    # Assign to me, resolve: the conversation moves from Open and Mine to Resolved.
    await page.click("#assign-me")
    await expect(header).to_contain_text("assigned to ana", timeout=WAIT)
    await page.click("[data-tab=mine]")
    await expect(page.locator("#list .conv", has_text="Lena")).to_have_count(1, timeout=WAIT)
    await page.click("#resolve")
    await expect(page.locator("#conv-status")).to_have_text("resolved", timeout=WAIT)
    await expect(page.locator("#list .conv", has_text="Lena")).to_have_count(0, timeout=WAIT)
    await page.click("[data-tab=resolved]")
    await expect(page.locator("#list .conv", has_text="Lena")).to_have_count(1, timeout=WAIT)
    assert await pool.fetchval("SELECT status || ':' || assignee FROM conversations WHERE channel_id = $1",
                               gw.channel.channel_id) == "resolved:ana"
    await page.screenshot(path=gw.shots / "05-resolved-tab.png")

    await page.click("[data-tab=open]")
    await expect(page.locator("#list .conv")).to_have_count(0, timeout=WAIT)

    assert len(sockets) == signed_in + 2  # Connect again, and one resume: no reconnect loop
    assert not [line for line in gw.console if not EXPECTED_NETWORK_NOISE.match(line)], gw.console
    await page.context.close()


async def test_calls_contact_panel_dashboard_and_keyboard(gateway: Gateway, browser: Any) -> None:
    gw = gateway
    await gw.webhook(text_message("wamid.c.1", "Bitte rufen Sie mich an"))
    await gw.webhook(text_message("wamid.c.2", "Frage zur Rechnung", sender="4915199999999", name="Omar"))
    await recorded_call(gw, "+" + LENA)
    page = await new_page(browser, gw, viewport={"width": 1280, "height": 820})
    await sign_in(page, gw, extension="1001")
    rows = page.locator("#list .conv")
    await expect(rows).to_have_count(3, timeout=WAIT)

    # Keyboard: focus the first row, ↓ to the next, Enter opens it, Esc goes back to the list.
    await rows.nth(0).focus()
    await page.keyboard.press("ArrowDown")
    await expect(rows.nth(1)).to_be_focused()
    await page.keyboard.press("ArrowUp")
    await expect(rows.nth(0)).to_be_focused()

    # The PBX conversation: calls with direction, agent, duration; the missed one stands out; the recording plays;
    # no composer, since the channel cannot send text.
    pbx_row = page.locator("#list .conv", has_text="asterisk")
    await pbx_row.focus()
    await page.keyboard.press("Enter")
    answered = page.locator("#timeline .item.call:not(.missed)")
    await expect(answered).to_contain_text("Incoming call from", timeout=WAIT)
    await expect(answered).to_contain_text("agent 1001")
    await expect(answered).to_contain_text("1 min 58 s")
    missed = page.locator("#timeline .item.call.missed")
    await expect(missed).to_contain_text("Missed call")
    recording = answered.locator("audio")
    await expect(recording).to_have_attribute("src", re.compile(r"^blob:"), timeout=WAIT)
    assert await recording.evaluate("a => a.play().then(() => !a.paused)") is True
    await expect(page.locator("#reply")).to_be_hidden()
    await expect(page.locator("#composer-note")).to_contain_text("cannot send")

    # Call back: the click-to-call API answers (this PBX is not connected: the reason is shown, not swallowed).
    await missed.locator(".call-back").click()
    await expect(page.locator("#error")).to_contain_text("Could not call back", timeout=WAIT)

    # The contact panel lists identities on both channels and both conversations.
    await page.click("#contact-open")
    panel = page.locator("#contact")
    await expect(panel).to_contain_text("whatsapp", timeout=WAIT)
    await expect(panel).to_contain_text("asterisk")
    await expect(panel.locator(".others li")).to_have_count(2)
    await page.screenshot(path=gw.shots / "06-calls-and-contact.png")
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await page.keyboard.press("Escape")
    await expect(page.locator("#conv-header")).to_be_hidden()

    # Search narrows the list through the API.
    await page.fill("#search", "Omar")
    await expect(rows).to_have_count(1, timeout=WAIT)
    await page.fill("#search", "")
    await expect(rows).to_have_count(3, timeout=WAIT)

    # The dashboard shows /api/v1/stats and follows the event stream.
    await page.click("#nav-dashboard")
    open_figure = page.locator("[data-figure=open] .value")
    await expect(open_figure).to_have_text("3", timeout=WAIT)
    await expect(page.locator("[data-figure=missed] .value")).to_have_text("1")
    await expect(page.locator("[data-figure=answered] .value")).to_have_text("1")
    await gw.webhook(text_message("wamid.c.3", "Neue Frage", sender="4915188888888", name="Jana"))
    await expect(open_figure).to_have_text("4", timeout=WAIT)
    await page.screenshot(path=gw.shots / "07-dashboard.png")

    assert not [line for line in gw.console if not EXPECTED_NETWORK_NOISE.match(line)], gw.console
    await page.context.close()


async def test_a_phone_sized_window_shows_one_pane_at_a_time_and_sends_a_reply(gateway: Gateway, browser: Any) -> None:
    gw = gateway
    await gw.webhook(text_message("wamid.p.1", "Kurze Frage vom Handy"))
    page = await new_page(browser, gw, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await sign_in(page, gw)
    await page.screenshot(path=gw.shots / "08-phone-list.png")
    await page.locator("#list .conv", has_text="Lena").tap()
    await expect(page.locator("#sidebar")).to_be_hidden()
    send = page.locator("#send")
    await expect(send).to_be_in_viewport()
    await page.fill("#text", "Gern, was möchten Sie wissen?")
    await send.tap()
    reply = page.locator("#timeline .item.outbound", has_text="Gern, was möchten Sie wissen?")
    await expect(reply.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=WAIT)
    await expect(reply).to_be_in_viewport()
    await page.screenshot(path=gw.shots / "09-phone-conversation.png")
    await page.click("#conv-header .back")
    await expect(page.locator("#sidebar")).to_be_visible()
    assert not [line for line in gw.console if not EXPECTED_NETWORK_NOISE.match(line)], gw.console
    await page.context.close()


async def test_a_silent_dead_connection_shows_offline_by_heartbeat_and_resumes(gateway: Gateway, browser: Any) -> None:
    gw = gateway
    await gw.webhook(text_message("wamid.h.1", "Erste Nachricht"))
    page = await new_page(browser, gw, viewport={"width": 1280, "height": 820})
    await page.clock.install()  # the page's timers: the heartbeat runs on them, the test moves them on
    await sign_in(page, gw)
    await page.locator("#list .conv", has_text="Lena").click()
    await expect(page.locator("#timeline .item", has_text="Erste Nachricht")).to_be_visible(timeout=WAIT)

    first = page.locator("#timeline .item", has_text="Erste Nachricht")
    await first.evaluate("n => { n.__seen = true; }")  # a mark on this very node, to see it survive
    await expect(page.locator("#timeline")).to_have_attribute("aria-live", "polite")

    # Nothing is closed, nothing gets through: only the unanswered ping can tell.
    gw.proxy.flowing.clear()
    await page.clock.fast_forward(16_000)
    await expect(page.locator("#status")).to_have_text("live")
    await page.clock.fast_forward(6_000)
    await expect(page.locator("#status")).to_have_attribute("data-state", "offline", timeout=WAIT)
    await expect(page.locator("#status")).to_contain_text("no answer to ping")

    await gw.webhook(text_message("wamid.h.2", "Zweite Nachricht, während der Funkstille"))
    gw.proxy.flowing.set()
    await page.clock.fast_forward(2_000)
    await expect(page.locator("#status")).to_have_text("live", timeout=WAIT)
    await expect(page.locator("#timeline .item", has_text="Zweite Nachricht")).to_have_count(1, timeout=WAIT)
    await expect(first).to_have_count(1)
    # The new message was appended, not the timeline rebuilt: the live region announces only it.
    assert await first.evaluate("n => n.__seen === true")
    assert not [line for line in gw.console if not EXPECTED_NETWORK_NOISE.match(line)], gw.console
    await page.context.close()


async def test_reply_quotes_reactions_and_edited_and_deleted_marks(gateway: Gateway, browser: Any) -> None:
    gw = gateway
    ours = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFG91dC0wMDAxRUFEMDY1RDI2OUY5AA=="
    await gw.webhook(text_message("wamid.q.1", "Welcher Versand?"))
    await gw.webhook(echo(ours, "DHL oder Hermes?", timestamp=str(int(time.time()))))
    await gw.webhook(body("reply_with_context.json"))
    await gw.webhook(body("reaction.json"))
    pool = gw.server.ctx.pool
    await pool.execute("UPDATE messages SET edited_at = now() WHERE external_id = 'wamid.q.1'")
    await gw.webhook(text_message("wamid.q.2", "Das war ein Versehen"))
    await pool.execute("UPDATE messages SET deleted_at = now() WHERE external_id = 'wamid.q.2'")

    page = await new_page(browser, gw, viewport={"width": 1280, "height": 820})
    await sign_in(page, gw)
    await page.locator("#list .conv", has_text="Lena").click()
    reply = page.locator("#timeline .item", has_text="Ja, DHL passt. Danke!")
    await expect(reply.locator(".quote")).to_contain_text("DHL oder Hermes?", timeout=WAIT)
    ours_item = page.locator("#timeline .item.outbound", has_text="DHL oder Hermes?")
    await expect(ours_item.locator(".reaction")).to_have_text("👍")
    await expect(page.locator("#timeline .item", has_text="Welcher Versand?").locator(".edited")).to_be_visible()
    await expect(page.locator("#timeline .item .deleted")).to_have_text("This message was deleted")
    await expect(page.locator("#timeline")).not_to_contain_text("Das war ein Versehen")
    await page.screenshot(path=gw.shots / "10-quotes-reactions-marks.png")
    assert not [line for line in gw.console if not EXPECTED_NETWORK_NOISE.match(line)], gw.console
    await page.context.close()
