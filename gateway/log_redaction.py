"""No secret, token or API key in any log line, at any level, from any logger.

Our own code never logs a secret on purpose; the danger is third-party
loggers that log URLs and requests whole: httpx logs every Bot API URL (the
bot token is a path segment, ``/bot<token>/getMe``) at INFO, python-telegram-bot
logs request parameters (``secret_token``) at DEBUG, panoramisk logs the AMI
``Login`` action (``Secret: …``) at INFO, and uvicorn's access log carries
query strings (``/ws?token=…``, ``hub.verify_token=…``).

``redact`` is a pure function over text: it replaces what has the shape of a
secret (our API keys, Telegram bot tokens, ``Bearer``/``Basic`` credentials,
passwords in URLs, query parameters and ``name: value`` / ``name=value``
pairs whose name says secret, token, password or key) and every value
registered with ``remember_secret`` (the channel secrets this process has
loaded). ``RedactingFilter`` applies it to records, and ``install`` puts that
filter on every handler of every configured logger; ``serve`` and ``demo`` call
it once uvicorn has set up its own handlers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

# Loggers that log requests or secrets verbatim; named so that their handlers get
# the filter even when nothing else configured them yet.
NOISY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore", "telegram", "aiohttp",
                 "panoramisk", "asyncio")

# A name that says "this value is a secret": secret, app_secret, secret_token,
# X-Telegram-Bot-Api-Secret-Token, token, access_token, hub.verify_token,
# password, passwd, api_key, apikey.
# Anchored at the start of a run of name characters and bounded: an unanchored
# ``[…]*`` is retried from every position of a long run ("a.a.a…" in a URL),
# which made one hostile request line cost seconds of event loop per log line.
_SECRET_NAME = r"(?<![A-Za-z0-9_.\-])[A-Za-z0-9_.\-]{0,64}?(?:secret|token|passw(?:or)?d|api[_\-]?key|apikey)"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Our API keys (inbox.accounts: "igw_" + token_urlsafe(32)); the 10-char display prefix stays.
    (re.compile(r"igw_[A-Za-z0-9_\-]{16,}"), "igw_" + REDACTED),
    # Telegram bot tokens: "<bot id>:<35 characters>", also inside /bot<token>/ paths.
    (re.compile(r"(?<![0-9])\d{3,}:[A-Za-z0-9_\-]{20,}"), REDACTED),
    # Whatever stands in the token's place of a Bot API URL, even a token of the wrong shape.
    (re.compile(r"(/bot)(?!\[redacted\])[^/\s?#'\"]+(?=[/\s'\"]|$)"), r"\1" + REDACTED),
    # The browser's WebSocket key (gateway.ws: Sec-WebSocket-Protocol "inbox-gateway.bearer.<key>").
    (re.compile(r"(inbox-gateway\.bearer\.)[^\s,'\"]+"), r"\1" + REDACTED),
    # Credentials after an auth scheme.
    (re.compile(r"\b(Bearer|Basic)\s+[^\s'\",;]+", re.IGNORECASE), r"\1 " + REDACTED),
    # user:password@ in URLs (DATABASE_URL, REDIS_URL).
    (re.compile(r"((?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^:/\s@]{0,256}:)[^@\s/]{1,512}@"),
     r"\1" + REDACTED + "@"),
    # ?token=…, &hub.verify_token=…, access_token=… in query strings and forms.
    (re.compile(r"([?&;]" + _SECRET_NAME + r"=)[^&\s'\"#]*", re.IGNORECASE), r"\1" + REDACTED),
    # name: value, name=value, 'name': 'value', "name": "value" (AMI "Secret: …", dict reprs, JSON).
    (
        re.compile(r"(" + _SECRET_NAME + r"[\"']?\s{0,8}[:=]\s{0,8}[\"']?)(?!\[redacted\])[^\s\"',&}\]]+",
                   re.IGNORECASE),
        r"\1" + REDACTED,
    ),
)

# Values shorter than this are not remembered: redacting every "1234" would
# garble logs without protecting anything worth the name, and secrets are
# tenant-chosen, so a short one could blank out ordinary words of the
# operator's logs (real tokens and app secrets are far longer).
MIN_REMEMBERED = 8

_known: set[str] = set()
_known_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def remember_secret(*values: Any) -> None:
    """Redact these exact values from now on (channel secrets loaded by this process)."""
    global _known_pattern
    new = {v for v in values if isinstance(v, str) and len(v) >= MIN_REMEMBERED and v not in _known}
    if not new:
        return
    with _lock:
        _known.update(new)
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(_known, key=len, reverse=True)
        _known_pattern = re.compile("|".join(re.escape(v) for v in ordered))


def remember_secrets(secrets: Mapping[str, Any] | None) -> None:
    """Remember every string value of a channel's ``secrets``."""
    if secrets:
        remember_secret(*_strings(secrets.values()))


def _strings(values: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, Mapping):
            out.extend(_strings(value.values()))
        elif isinstance(value, list | tuple):
            out.extend(_strings(value))
    return out


def redact(text: str) -> str:
    known = _known_pattern
    if known is not None:
        text = known.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record so that its message, exception and stack text are redacted.

    Arguments are redacted one by one where that suffices, so formatters that
    read ``record.args`` themselves (uvicorn's access log) keep working;
    otherwise the message is flattened into ``msg``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's own problem to report, not ours
            return True
        clean = redact(message)
        if clean != message:
            _redact_message(record, clean)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _redact_message(record: logging.LogRecord, clean: str) -> None:
    if isinstance(record.msg, str) and isinstance(record.args, tuple) and record.args:
        original = record.msg, record.args
        record.msg = redact(record.msg)
        record.args = tuple(_redact_arg(a) for a in record.args)
        try:
            if record.getMessage() == clean:
                return
        except (TypeError, ValueError):
            pass
        record.msg, record.args = original
    record.msg, record.args = clean, ()


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    clean = redact(text)
    return arg if clean == text else clean


_FILTER = RedactingFilter()


def _add_filter(handler: logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(_FILTER)


def install() -> None:
    """Put the redacting filter on every handler of the root logger and of every logger
    configured so far (uvicorn's own, which do not propagate, included). Call it after the
    last logging (re)configuration: uvicorn.Config replaces its loggers' handlers."""
    manager = logging.Logger.manager
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [logging.getLogger(name) for name in NOISY_LOGGERS]
    loggers += [lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            _add_filter(handler)
    # What prints warnings when nothing configured logging (CLI verbs other than serve/demo).
    if logging.lastResort is not None:
        _add_filter(logging.lastResort)
