"""The inbox page in a real headless Chromium: hostile provider data runs no script, the key stays out of URLs.

Needs a system Chromium (Debian: ``apt-get install chromium``) and the ``playwright``
package, driven with ``executable_path``; ``playwright install`` is never needed.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.pipeline import apply_and_publish
from schema.enums import MessageType
from schema.events import ContactRef, InboundMessage, Reaction
from tests.api.helpers import make_channel
from tests.server import run_server
from tests.ws.helpers import make_account

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium on PATH (apt-get install chromium): browser tests skipped", allow_module_level=True)
async_api = pytest.importorskip("playwright.async_api", reason="playwright not installed: browser tests skipped")

XSS = '<img src=x onerror="window.__xss=(window.__xss||0)+1"><script>window.__xss=1</script>'
T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _hostile_conversation(srv: Any, account_id: int) -> None:
    channel = await make_channel(srv.ctx.pool, account_id)
    contact = ContactRef(external_id="4915100000001", name=XSS, phone="+4915100000001")
    message = InboundMessage(external_id="wamid.xss", contact=contact, type=MessageType.TEXT, text=XSS, occurred_at=T0)
    reaction = Reaction(external_id="wamid.xss", emoji=XSS, sender="4915100000001", occurred_at=T0)
    await apply_and_publish(srv.ctx, channel=channel, events=[message, reaction])


async def test_hostile_text_contact_name_and_reaction_are_shown_as_text_and_run_no_script(db_url, browser):
    async with run_server(db_url) as srv:
        account_id, key = await make_account(srv.ctx.pool)
        await _hostile_conversation(srv, account_id)
        page = await browser.new_page()
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        response = await page.goto(f"{srv.url}/inbox")
        assert response is not None
        policy = (await response.all_headers())["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy

        await page.fill("#key", key)
        await page.click("#connect")
        # Locators, not wait_for_function: that evaluates strings, which the page's policy forbids.
        await page.locator("#status", has_text="live").wait_for()
        await page.click(".conv")
        await page.locator("#timeline .item").wait_for()

        await page.click("#contact-open")  # the contact panel shows the name too
        await page.locator("#contact h2").wait_for()

        assert await page.evaluate("window.__xss") is None
        assert await page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
        assert XSS in await page.inner_text("#list")  # the contact name (and the preview), as text
        assert XSS in await page.inner_text("#conv-header")
        assert XSS in await page.inner_text("#contact")
        timeline = await page.inner_text("#timeline")
        assert timeline.count(XSS) == 2  # the message text and the reaction
        # The page itself needs nothing the policy forbids.
        assert not [line for line in console if "Content Security Policy" in line], console
        # The key went in a Sec-WebSocket-Protocol value, never into a URL.
        assert key not in page.url


async def test_a_token_in_the_link_does_not_replace_the_stored_key_without_consent(db_url, browser):
    async with run_server(db_url) as srv:
        _, mine = await make_account(srv.ctx.pool, "mine")
        _, theirs = await make_account(srv.ctx.pool, "theirs")
        page = await browser.new_page()
        await page.goto(f"{srv.url}/inbox")
        await page.evaluate("(key) => localStorage.setItem('igw-key', key)", mine)

        dialogs: list[str] = []

        async def dismiss(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", dismiss)
        for link in (f"/inbox?token={theirs}", f"/inbox#token={theirs}"):
            await page.goto(srv.url + link)
            await page.locator("#status").wait_for()
            assert await page.evaluate("location.search + location.hash") == ""
            assert await page.evaluate("localStorage.getItem('igw-key')") == mine
            assert await page.input_value("#key") == mine
        assert len(dialogs) == 2 and all(theirs not in d for d in dialogs)
