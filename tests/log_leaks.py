"""Session-wide check that no secret the tests use ever reaches a log line.

What is collected, for the whole run:

- every record of this process (root logger at DEBUG) through a handler that
  carries the gateway's redacting filter, exactly as ``serve`` installs it;
- the stderr of every gateway server process the helpers start (run with
  ``GATEWAY_LOG_LEVEL=debug``: ``SERVER_LOG_LEVEL``) via ``server_log``, and the
  stderr of every CLI run via ``collect``.

What counts as a secret: anything shaped like one of our API keys or a
Telegram bot token, plus every value in ``FIXTURE_SECRETS`` or registered with
``register_secret``. At session end ``tests/conftest.py`` fails the run when
any of them occurs (``pytest_sessionfinish``), listing where.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.log_redaction import RedactingFilter

SERVER_LOG_LEVEL = "debug"

# Full-length shapes only: the 10-character key prefix shown by the API is not a secret.
SECRET_SHAPES = (
    re.compile(r"igw_[A-Za-z0-9_\-]{40,}"),  # inbox.accounts.create_api_key: "igw_" + token_urlsafe(32)
    re.compile(r"(?<![A-Za-z0-9_\-])\d{3,}:AA[A-Za-z0-9_\-]{20,}"),  # Telegram bot tokens as the fakes use them
)

# Literal secrets of fixtures and fakes (values of 6+ characters; shorter ones
# like "t" or "s" would match everywhere and prove nothing).
FIXTURE_SECRETS = (
    "7012345678:AAFakeTokenForTests_0123456789abcdefgh",
    "7099999999:AAPollingBotTokenForTests_0123456789",
    "7099999999:AAAnotherBotToken_abcdefghijklmnop",
    "123456789:AAH-secret-bot-token",
    "987:BBB-other-token",
    "777:CCC-new",
    "tg_whk_Q3p9sV2x-7LmN0",
    "hook-secret-4",
    "fixture_app_secret_do_not_use",
    "my-verify-token",
    "EAAG-test-token",
    "EAAG-secret-token-1",
    "sekrit-token",
    "app-sekrit",
    "verify-sekrit",
    "app-secret-2",
    "ami-secret-5",
    "rotated-secret-6",
    "s3cret",
)


@dataclass
class Leak:
    source: str
    line_no: int
    secret: str

    def __str__(self) -> str:
        shown = self.secret[:6] + "…"  # the report itself must not print the secret
        return f"{self.source}:{self.line_no}: a secret ({shown}, {len(self.secret)} chars)"


@dataclass
class LeakChecker:
    secrets: set[str] = field(default_factory=lambda: set(FIXTURE_SECRETS))
    texts: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def register_secret(self, *values: str) -> None:
        self.secrets.update(v for v in values if len(v) >= 6)

    def collect(self, source: str, text: str) -> None:
        if text:
            self.texts.append((source, text))

    def add_file(self, path: Path) -> None:
        self.files.append(path)

    def _sources(self) -> Iterator[tuple[str, Iterable[str]]]:
        for source, text in self.texts:
            yield source, text.splitlines()
        for path in self.files:
            if path.exists():
                with path.open(encoding="utf-8", errors="replace") as lines:
                    yield str(path), lines

    def find_leaks(self) -> list[Leak]:
        known = sorted(self.secrets, key=len, reverse=True)
        literal = re.compile("|".join(re.escape(s) for s in known)) if known else None
        leaks: list[Leak] = []
        for source, lines in self._sources():
            for n, line in enumerate(lines, 1):
                if literal is not None:
                    leaks += [Leak(source, n, m.group()) for m in literal.finditer(line)]
                for shape in SECRET_SHAPES:
                    leaks += [Leak(source, n, m.group()) for m in shape.finditer(line)]
        return leaks


class _SessionState:
    def __init__(self) -> None:
        self.checker = LeakChecker()
        self.dir = Path(tempfile.mkdtemp(prefix="igw-test-logs-"))
        self.handler: logging.Handler | None = None
        self._count = 0

    def next_file(self, name: str) -> Path:
        self._count += 1
        path = self.dir / f"{self._count:05d}-{name}.log"
        self.checker.add_file(path)
        return path


SESSION = _SessionState()


def server_log(name: str) -> Path:
    """A file for a server process's stderr, checked at session end."""
    return SESSION.next_file(name)


def collect(source: str, text: str) -> None:
    SESSION.checker.collect(source, text)


def register_secret(*values: str) -> None:
    SESSION.checker.register_secret(*values)


def capturing_handler(path: Path) -> logging.Handler:
    """A DEBUG file handler with the gateway's redacting filter, as ``serve`` sets one up."""
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    return handler


def start_session() -> None:
    handler = capturing_handler(SESSION.next_file("in-process"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    SESSION.handler = handler
    attach_to_uvicorn()


def attach_to_uvicorn() -> None:
    """uvicorn's loggers do not propagate, and every uvicorn.Config replaces their handlers."""
    if SESSION.handler is None:
        return
    for name in ("uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        if SESSION.handler not in logger.handlers:
            logger.addHandler(SESSION.handler)


def finish_session() -> list[Leak]:
    """The leaks found; the collected logs are deleted when there are none (kept to inspect otherwise)."""
    if SESSION.handler is not None:
        SESSION.handler.flush()
        SESSION.handler.close()
    leaks = SESSION.checker.find_leaks()
    if not leaks:
        shutil.rmtree(SESSION.dir, ignore_errors=True)
    return leaks
