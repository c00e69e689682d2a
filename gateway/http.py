"""HTTP plumbing shared by every route: error bodies, auth, bounded bodies, JSON."""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.context import AppContext
from gateway.logs import ACCOUNT_ID
from inbox.accounts import Principal, authenticate
from schema import strict_json


class ApiError(Exception):
    """Raised by handlers; rendered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    # A message may quote client input (a field name with a lone surrogate, a NUL):
    # made encodable here so that an error can always be sent.
    return JSONResponse({"error": {"code": code, "message": strict_json.safe_text(message)}}, status_code=status)


# What asyncpg and the OS raise when PostgreSQL is down or unreachable.
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    TimeoutError,
)
# What a background worker waits out and retries: the database is down, or
# refused a statement for a reason that may pass (serialization, restart).
DB_ERRORS: tuple[type[BaseException], ...] = (*DB_UNAVAILABLE, asyncpg.PostgresError)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


async def db_unavailable_handler(request: Request, exc: Exception) -> Response:
    return error_response(503, "database_unavailable", "the database is unreachable; retry later")


MAX_ID = 2**63 - 1  # ids are bigint


def parse_db_id(raw: str) -> int | None:
    """A positive bigint id written in plain decimal, else None. The length is checked
    before ``int()``, which raises on over 4,300 digits (and is slow well before)."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_ID)):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def ctx_of(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def require_principal(request: Request) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "unauthorized", "missing Authorization: Bearer <api key>")
    principal = await authenticate(ctx_of(request).pool, token)
    if principal is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    ACCOUNT_ID.set(principal.account_id)
    return principal


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
        except ValueError as exc:
            raise ApiError(400, "bad_request", "invalid Content-Length") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """Strict JSON (``schema.strict_json``): not JSON or nested too deep → 400; NaN,
    1e999, integers beyond 64 bits → 422 (well-formed, but no column holds them)."""
    try:
        return strict_json.loads(body)
    except strict_json.NumberRejected as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    except strict_json.JsonRejected as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None


async def read_json(request: Request) -> Any:
    return parse_json(await read_body(request, ctx_of(request).settings.gateway_max_body_bytes))
