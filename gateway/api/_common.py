"""Helpers shared by the REST handlers: roles, ids, query parameters, bodies, cursors.

Cursors are opaque to clients: base64url of a small JSON array naming the list
they belong to and the keyset position of the last item sent. A cursor that
does not decode, or belongs to another list, is a 400 ``invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.http import ApiError, parse_db_id, read_json, require_principal
from inbox.accounts import Principal
from inbox.db import acquire
from schema import strict_json
from schema.enums import ApiKeyRole

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_ID = 2**63 - 1
# Cursors this API hands out are a few dozen characters; anything longer is not one.
_MAX_CURSOR = 1024

M = TypeVar("M", bound=BaseModel)


connection = acquire


async def principal(request: Request) -> Principal:
    return await require_principal(request)


async def admin(request: Request) -> Principal:
    """Managing channels and keys is for admin keys only."""
    who = await require_principal(request)
    if who.role != ApiKeyRole.ADMIN:
        raise ApiError(403, "forbidden", "this needs an admin API key")
    return who


def path_id(request: Request, what: str, name: str = "id") -> int:
    """A database id from the path; anything that cannot be one is simply not found."""
    value = parse_db_id(str(request.path_params[name]))
    if value is None:
        raise not_found(what)
    return value


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def query_int(request: Request, name: str, *, default: int | None = None, minimum: int = 0,
              maximum: int = _MAX_ID) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        # Plain ASCII decimal only (int() also takes "١", " 1", "1_0"), and short:
        # int() of thousands of digits is slow, then raises.
        if len(raw) > 20 or not raw.isascii() or not raw.lstrip("-").isdigit():
            raise ValueError(raw)
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, "invalid_parameter", f"{name} must be between {minimum} and {maximum}")
    return value


def query_str(request: Request, name: str, *, max_length: int = 200) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length or "\x00" in raw:
        raise ApiError(400, "invalid_parameter", f"{name} is too long or contains a NUL byte")
    return raw


def query_choice(request: Request, name: str, choices: Sequence[str]) -> str | None:
    value = query_str(request, name)
    if value is not None and value not in choices:
        raise ApiError(400, "invalid_parameter", f"{name} must be one of: {', '.join(choices)}")
    return value


def query_time(request: Request, name: str) -> datetime | None:
    value = query_str(request, name, max_length=64)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ApiError(400, "invalid_parameter", f"{name} needs a time zone (e.g. 2026-01-31T12:00:00Z)")
    moment = strict_json.utc_or_none(parsed)
    if moment is None:
        raise ApiError(400, "invalid_parameter", f"{name} is outside the years 1 to 9999 once in UTC")
    return moment


def limit_param(request: Request) -> int:
    value = query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    assert value is not None
    return value


def encode_cursor(kind: str, position: Sequence[Any]) -> str:
    raw = json.dumps([kind, *position], separators=(",", ":"), default=_json_default).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(request: Request, kind: str, types: Sequence[type]) -> list[Any] | None:
    """The keyset position of ``?cursor=``, each element converted to ``types[i]``."""
    raw = request.query_params.get("cursor")
    if raw is None or raw == "":
        return None
    bad = ApiError(400, "invalid_cursor", "cursor is not one this list handed out")
    if len(raw) > _MAX_CURSOR:
        raise bad
    try:
        decoded = strict_json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(decoded, list) or len(decoded) != len(types) + 1 or decoded[0] != kind:
        raise bad
    if strict_json.unstorable(decoded) is not None:
        raise bad
    position: list[Any] = []
    for value, type_ in zip(decoded[1:], types, strict=True):
        try:
            if type_ is datetime:
                if not isinstance(value, str):
                    raise ValueError(value)
                moment = strict_json.utc_or_none(datetime.fromisoformat(value))
                if moment is None:
                    raise ValueError(value)
                position.append(moment)
            elif type_ is int:
                if not isinstance(value, int) or isinstance(value, bool) or abs(value) > _MAX_ID:
                    raise ValueError(value)
                position.append(value)
            elif type_ is str:
                if not isinstance(value, str):
                    raise ValueError(value)
                position.append(value)
            else:
                raise TypeError(type_)
        except ValueError:
            raise bad from None
    return position


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} in a cursor")


def page(items: list[Any], next_cursor: str | None, **extra: Any) -> JSONResponse:
    return json_response({"items": items, "next_cursor": next_cursor, **extra})


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


async def body_model(request: Request, model: type[M]) -> M:
    """Read, bound, parse and validate a JSON body: 413, 400 or 422, never a 500."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "the body must be a JSON object")
    if (problem := strict_json.unstorable(data)) is not None:
        raise ApiError(422, "validation_error", problem)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Field paths and messages only: the input is never echoed, it may hold secrets."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404 (no route) and 405 (wrong method) in the API's error shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"code": code, "message": strict_json.safe_text(str(exc.detail))}},
        status_code=exc.status_code,
        headers=exc.headers,
    )
