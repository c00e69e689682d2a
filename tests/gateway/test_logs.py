"""Logs: JSON lines that parse one by one, and a request id that follows a request's lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys

import httpx
import pytest

from gateway.logs import ACCOUNT_ID, REQUEST_ID, JsonFormatter, accepted_request_id
from tests.cli_helpers import REPO, cli_env, run_cli
from tests.redis_server import free_port
from tests.whatsapp.helpers import make_whatsapp_channel, post_signed

FIXTURE = REPO / "tests/fixtures/whatsapp/text.json"


@contextlib.asynccontextmanager
async def serve_logging_to(path, db_url: str, **env: str):
    port = free_port()
    with open(path, "wb") as log_file:  # noqa: ASYNC230 - a local file handed to the child process
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", cwd=REPO, stdout=log_file, stderr=log_file,
            env=cli_env(DATABASE_URL=db_url, GATEWAY_PORT=str(port), GATEWAY_WORKERS="false", **env),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=5) as http, asyncio.timeout(60):
                while True:
                    assert proc.returncode is None, path.read_text()
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.05)
                yield http
        finally:
            if proc.returncode is None:
                proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)


async def test_json_logs_parse_line_by_line_and_carry_the_webhooks_request_id(tmp_path, db_url, pool):
    channel = await make_whatsapp_channel(pool)
    log_path = tmp_path / "serve.log"
    async with serve_logging_to(log_path, db_url, GATEWAY_LOG_FORMAT="json", GATEWAY_LOG_LEVEL="info") as http:
        http.headers["X-Request-Id"] = "wh-test-42"
        sent = await post_signed(http, channel.channel_id, FIXTURE.read_bytes())
        assert sent.status_code == 200
        assert sent.headers["x-request-id"] == "wh-test-42"
        http.headers["X-Request-Id"] = "not a plain id"
        replaced = await http.get("/healthz")
        del http.headers["X-Request-Id"]
        generated = await http.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    assert replaced.headers["x-request-id"] != generated.headers["x-request-id"]

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert lines, "serve logged nothing"
    for entry in lines:
        assert {"time", "level", "logger", "message"} <= entry.keys()
    webhook = [e for e in lines if e.get("request_id") == "wh-test-42"]
    assert webhook, "no log line carries the webhook's request id"
    access = [e for e in webhook if e["logger"] == "uvicorn.access"]
    assert access and f"/webhooks/whatsapp/{channel.channel_id}" in access[0]["message"]
    assert access[0]["account_id"] == channel.account_id
    assert access[0]["channel_id"] == channel.channel_id
    # The health checks are other requests: they never carry the webhook's account.
    others = [e for e in lines if e.get("request_id") == generated.headers["x-request-id"]]
    assert others and all("account_id" not in e for e in others)


async def test_text_logs_name_the_request_id_at_the_end_of_its_lines(tmp_path, db_url):
    log_path = tmp_path / "serve.log"
    async with serve_logging_to(log_path, db_url, GATEWAY_LOG_LEVEL="info") as http:
        await http.get("/healthz", headers={"X-Request-Id": "plain-77"})
    lines = log_path.read_text().splitlines()
    assert any("GET /healthz" in line and line.endswith("[plain-77]") for line in lines), lines


def test_a_json_line_survives_surrogates_newlines_and_exceptions():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "bad %s", ("\ud800\x00\n",), sys.exc_info())
    token = REQUEST_ID.set("r-1")
    try:
        line = formatter.format(record)
    finally:
        REQUEST_ID.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "bad \ud800\x00\n"
    assert entry["request_id"] == "r-1"
    assert "ValueError: boom" in entry["exception"]


async def test_bound_context_stays_with_its_own_task():
    seen: dict[str, int | None] = {}

    async def request(name: str, account: int) -> None:
        ACCOUNT_ID.set(account)
        await asyncio.sleep(0)  # let the other request run in between
        seen[name] = ACCOUNT_ID.get()

    await asyncio.gather(request("a", 1), request("b", 2))
    assert seen == {"a": 1, "b": 2}
    assert ACCOUNT_ID.get() is None


@pytest.mark.parametrize(("raw", "kept"), [("abc-123", True), ("x" * 128, True), ("x" * 129, False),
                                            ("a b", False), ("a\r\nb", False), ("", False), (None, False)])
def test_a_proxy_request_id_is_kept_only_when_short_and_plain(raw, kept):
    assert (accepted_request_id(raw) == raw) is kept


async def test_an_unknown_log_format_stops_the_command_with_one_line():
    done = await run_cli("migrate", "--status", GATEWAY_LOG_FORMAT="xml", DATABASE_URL="postgresql://x@127.0.0.1:1/x")
    assert done.returncode == 2
    assert done.stderr.strip() == "inbox-gateway: invalid setting GATEWAY_LOG_FORMAT: Value error, must be text or json"
