"""README's HTTP API: every published route is listed, and every curl body is one its route accepts."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from gateway.app import create_app
from gateway.config import load_settings
from gateway.openapi import build_spec, operations_of
from schema.api import ChannelCreate
from tests.api.helpers import inbound, make_account, make_channel
from tests.fakes.bot_api import FakeBotApi
from tests.server import run_server

README = Path(__file__).resolve().parent.parent / "README.md"
_URL = re.compile(r"https?://[^/\s]+(/[^?\s]*)")


def _app():
    return create_app(load_settings(database_url="postgresql://127.0.0.1/unused"))


def _curls() -> list[list[str]]:
    """Each curl command of README's sh blocks, as shell words (continuation lines joined)."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n", " ", block)
        # A quoted body may span lines: join them until the quotes balance.
        buf = ""
        for line in joined.splitlines():
            buf = f"{buf}\n{line}" if buf else line
            try:
                words = shlex.split(buf, comments=True)
            except ValueError:
                continue
            if words and words[0] == "curl":
                commands.append(words)
            buf = ""
    return commands


def _request(words: list[str]) -> tuple[str, str, str | None]:
    method, body, url = None, None, None
    it = iter(words[1:])
    for word in it:
        if word == "-X":
            method = next(it)
        elif word in ("-d", "--data"):
            body = next(it)
        elif word == "-H":
            next(it)
        elif word.startswith("http"):
            url = word
    assert url is not None, words
    match = _URL.match(url)
    assert match, url
    return method or ("POST" if body is not None else "GET"), match.group(1), body


def _template(path: str, declared: set[tuple[str, str]], method: str) -> str | None:
    for m, template in declared:
        pattern = "^" + re.sub(r"{[^}]+}", "[^/]+", template) + "$"
        if m == method and re.match(pattern, path):
            return template
    return None


def test_every_curl_in_readme_names_a_route_and_sends_a_body_it_accepts():
    ops = {(m, p): op for m, p, op in operations_of(_app().routes)}
    curls = [_request(words) for words in _curls()]
    assert len(curls) >= 8
    channel_bodies = 0
    for method, path, body in curls:
        template = _template(path, set(ops), method)
        assert template is not None, f"README curls {method} {path}, which no route serves"
        declared = ops[(method, template)].body
        if body is None:
            assert declared is None, f"README's {method} {path} sends no body"
            continue
        assert isinstance(declared, type), f"README's {method} {path} sends a body the route does not take"
        declared.model_validate(json.loads(body))  # raises on anything the route would refuse with a 422
        if (method, template) == ("POST", "/api/v1/channels"):
            ChannelCreate.model_validate_json(body)
            channel_bodies += 1
    assert channel_bodies == 3  # WhatsApp, Telegram, Asterisk


def test_readme_lists_every_published_route():
    text = README.read_text()
    section = text[text.index("## HTTP API"):]
    section = section[:section.index("\n## ", 1)]
    listed = set()
    for span in re.findall(r"`([A-Z][A-Z/]*) (/[^`?\s]*)[^`]*`", section):
        methods, path = span
        listed |= {(m, path) for m in methods.split("/")}
    spec = build_spec(_app().routes)
    published = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert published - listed == set()


async def test_readme_curls_work_as_written_on_a_running_gateway(db_url, pool):
    """Each curl sent as curl sends it (``-d`` is form-encoded by curl; the API reads JSON regardless),
    to a gateway whose Bot API is a local stand-in knowing README's (fake) bot token."""
    account_id, key = await make_account(pool, "readme")
    channel = await make_channel(pool, account_id, provider_key="1001", phone_number_id="1001")
    assert await inbound(pool, channel, external_id="wamid.readme.1") == 1  # README's examples name conversation 1
    curls = [(words, *_request(words)) for words in _curls()]
    async with FakeBotApi().running() as bot_api:
        for _, _method, path, body in curls:
            if path == "/api/v1/channels" and body and json.loads(body)["type"] == "telegram":
                bot_api.add_bot(json.loads(body)["secrets"]["bot_token"], bot_id=123456789)
        async with run_server(db_url, gateway_workers=False, telegram_api_base=bot_api.url) as server, \
                server.client() as http:
            for words, method, path, body in curls:
                headers = {k: v.replace("$KEY", key) for k, v in (h.split(": ", 1) for h in _headers(words))}
                if body is not None:
                    headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
                url = next(w for w in words if w.startswith("http")).replace("http://127.0.0.1:8000", "")
                r = await http.request(method, url, content=body, headers=headers)
                assert r.status_code < 300, (method, path, r.status_code, r.text)


def _headers(words: list[str]) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words) if word == "-H"]
