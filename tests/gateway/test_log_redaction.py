"""No secret in any log line: the redactor, the filter on real handlers, a real ``serve`` at debug, and the
session-wide leak check (tests/log_leaks.py) proven able to fail."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
import websockets
from uvicorn.logging import AccessFormatter

from gateway.log_redaction import REDACTED, RedactingFilter, redact, remember_secret
from inbox.accounts import create_account
from tests.fakes.bot_api import FakeBotApi, wait_until
from tests.log_leaks import LeakChecker, capturing_handler
from tests.telegram.helpers import BOT_ID, SECRET, TOKEN
from tests.ws.helpers import gateway_process

API_KEY = "igw_" + "Q" * 43
POLL_TOKEN = "7099999999:AAPollingBotTokenForTests_0123456789"
VERIFY = "my-verify-token"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f'HTTP Request: POST http://127.0.0.1:1/bot{TOKEN}/getMe "HTTP/1.1 401 Unauthorized"', TOKEN),
        ("HTTP Request: POST http://127.0.0.1:1/botnot-even-a-token/getMe", "not-even-a-token"),
        (f"Set Bot API File URL: http://127.0.0.1:1/file/bot{TOKEN}", TOKEN),
        (f'127.0.0.1:5 - "GET /ws?token={API_KEY} HTTP/1.1" 403', API_KEY),
        (f'"GET /inbox?lang=de&token={API_KEY}" 200', API_KEY),
        (f'"GET /webhooks/whatsapp/1?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=7" 200', VERIFY),
        ("Adding action \"login\" to awaiting list: Action: Login\r\nSecret: pbx-pass-1\r\nUsername: gw", "pbx-pass-1"),
        (f"Calling `setWebhook` with parameters `{{'url': 'https://x/1', 'secret_token': '{SECRET}'}}`", SECRET),
        (f"< x-telegram-bot-api-secret-token: {SECRET}", SECRET),
        ("< authorization: Bearer EAAG-any-access-token", "EAAG-any-access-token"),
        (f"< sec-websocket-protocol: inbox-gateway.v1, inbox-gateway.bearer.{API_KEY}", API_KEY),
        ("cannot connect to postgresql://gw:db-pass-1@db:5432/inbox", "db-pass-1"),
        ('{"access_token": "EAAG-json-token", "app_secret": "json-app-secret"}', "EAAG-json-token"),
        ('{"access_token": "EAAG-json-token", "app_secret": "json-app-secret"}', "json-app-secret"),
    ],
)
def test_redact_removes_every_shape_of_secret(line, secret):
    clean = redact(line)
    assert secret not in clean
    assert "[redacted]" in clean


def test_remembered_secrets_are_redacted_wherever_they_appear():
    remember_secret("plain-channel-secret-42")
    assert redact("oops: plain-channel-secret-42 in a message") == "oops: [redacted] in a message"
    harmless = "API key prefix igw_abcdef stays, as do tokens: 5"
    assert redact(harmless) == harmless


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_the_filter_keeps_uvicorns_access_formatter_working_and_redacts_tracebacks(tmp_path):
    path = tmp_path / "access.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    handler.addFilter(RedactingFilter())
    access = _logger("test.redaction.access", handler)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/ws?token={API_KEY}", "1.1", 101)
    handler.close()
    assert path.read_text() == '127.0.0.1:5 - "GET /ws?token=[redacted] HTTP/1.1" 101 Switching Protocols\n'

    path = tmp_path / "errors.log"
    handler = logging.FileHandler(path)
    handler.addFilter(RedactingFilter())
    errors = _logger("test.redaction.errors", handler)
    try:
        raise ConnectionError(f"cannot reach http://127.0.0.1:1/bot{TOKEN}/getUpdates")
    except ConnectionError:
        errors.exception("poller failed")
    handler.close()
    text = path.read_text()
    assert "Traceback" in text and "/bot[redacted]/getUpdates" in text and TOKEN not in text


def test_the_leak_checker_catches_a_secret_logged_without_the_filter(tmp_path):
    """The session check is real: a handler without the filter leaks, one with it does not."""
    raw, filtered = tmp_path / "raw.log", tmp_path / "filtered.log"
    raw_handler = logging.FileHandler(raw)
    leaky = _logger("test.leak.raw", raw_handler)
    leaky.info("GET /bot%s/getMe with key %s and app_secret=%s", TOKEN, API_KEY, "fixture_app_secret_do_not_use")
    raw_handler.close()
    safe_handler = capturing_handler(filtered)
    safe = _logger("test.leak.filtered", safe_handler)
    safe.info("GET /bot%s/getMe with key %s and app_secret=%s", TOKEN, API_KEY, "fixture_app_secret_do_not_use")
    safe_handler.close()

    checker = LeakChecker()
    checker.add_file(raw)
    leaks = checker.find_leaks()
    assert {leak.secret for leak in leaks} == {TOKEN, API_KEY, "fixture_app_secret_do_not_use"}
    assert all(leak.secret not in str(leak) for leak in leaks)  # the report does not print them either

    clean = LeakChecker()
    clean.add_file(filtered)
    assert clean.find_leaks() == []
    assert "[redacted]" in filtered.read_text()


@pytest.mark.timeout(120)
async def test_a_real_serve_at_debug_logs_no_token_key_or_secret(db_url, pool):
    fake = FakeBotApi()
    fake.add_bot(TOKEN, bot_id=BOT_ID)
    poll_bot = fake.add_bot(POLL_TOKEN, bot_id=7099999999, username="poll_bot")
    async with fake.running():
        env = {"GATEWAY_WORKERS": "true", "TELEGRAM_API_BASE": fake.url, "GATEWAY_LEASE_INTERVAL": "0.3",
               "GATEWAY_LOG_LEVEL": "debug"}
        async with gateway_process(db_url, **env) as gw:
            _, key = await create_account(pool, "acme")
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=10) as http:
                hook = await http.post("/api/v1/channels", json={
                    "type": "telegram", "name": "hook", "config": {"mode": "webhook",
                                                                    "public_url": "https://inbox.example.com"},
                    "secrets": {"bot_token": TOKEN, "webhook_secret": SECRET}})
                assert hook.status_code == 201, hook.text
                poll = await http.post("/api/v1/channels", json={
                    "type": "telegram", "name": "poll", "config": {"mode": "polling", "poll_timeout": 1},
                    "secrets": {"bot_token": POLL_TOKEN}})
                assert poll.status_code == 201, poll.text
                wa = await http.post("/api/v1/channels", json={
                    "type": "whatsapp", "name": "wa", "config": {"phone_number_id": "106540352242922"},
                    "secrets": {"access_token": "EAAG-test-token", "app_secret": "fixture_app_secret_do_not_use",
                                "verify_token": VERIFY}})
                assert wa.status_code == 201, wa.text
                verify = await http.get(f"/webhooks/whatsapp/{wa.json()['id']}", params={
                    "hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"})
                assert verify.text == "42"
                assert (await http.get("/inbox", params={"token": key}, headers={})).status_code == 200
            async with websockets.connect(f"{gw.ws_url}/ws?token={key}") as ws:
                await ws.send('{"type": "ping"}')
                await ws.recv()
            # A second long poll: the first one was answered, and logged.
            await wait_until(lambda: len(poll_bot.calls_to("getUpdates")) >= 2, limit=30)
        text = await asyncio.to_thread(Path(gw.log_path).read_text)
    for secret in (key, TOKEN, POLL_TOKEN, SECRET, VERIFY, "EAAG-test-token", "fixture_app_secret_do_not_use"):
        assert secret not in text, f"{secret[:6]}… in the log"
    # The lines are there, redacted: the check above did look at something.
    assert "/ws?token=[redacted]" in text
    assert "hub.verify_token=[redacted]" in text
    assert "/bot[redacted]/getMe" in text and "/bot[redacted]/getUpdates" in text


@pytest.mark.timeout(20)
@pytest.mark.parametrize("shape", ["a.", "a:", "ab", "a-", "token ", "x://"])
def test_redaction_stays_linear_on_long_hostile_lines(shape):
    # A request line is logged whole: with a backtracking pattern 200 KB of "a.a.a…"
    # would hold the event loop for hours. Each line here must come back at once.
    line = "GET /x?q=" + shape * 100_000 + "&token=s3cr3t-value HTTP/1.1"
    assert redact(line).endswith("&token=" + REDACTED + " HTTP/1.1")
