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
