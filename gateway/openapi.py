"""``GET /openapi.json``: the OpenAPI 3.1 contract, built from the app's routes.

Each route declares its ``Operation`` next to itself (``gateway.operation.ApiRoute``);
routes whose modules are not API modules (health, the inbox page, the WebSocket)
are declared in ``EXTERNAL`` below. Component schemas come from the pydantic models
the routes validate and return (``schema.api``, ``schema.resources``), through
``pydantic.json_schema.models_json_schema``: nothing here is a hand-written schema of
a body. ``operations_of`` refuses a route that has no declaration, so a new route
must say what it takes and answers (``tests/api/test_openapi_spec.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from gateway.openapi_docs import render
from gateway.operation import MAX_ID, ApiRoute, Operation
from schema.resources import Error, Health, Readiness

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_TEXT = ("text/plain", {"type": "string"})
_HTML = ("text/html", {"type": "string"})

# Routes declared here because their modules are not API modules (one declaration per method and path).
EXTERNAL: dict[tuple[str, str], Operation] = {
    ("GET", "/healthz"): Operation("Liveness", {200: Health}, "health", auth="none"),
    ("GET", "/readyz"): Operation(
        "Readiness: the database is reachable (and the broker, else degraded)", {200: Readiness}, "health",
        auth="none", errors={503: "Not ready: draining, or the database is unreachable (body: Readiness)"},
    ),
    ("GET", "/metrics"): Operation("Prometheus metrics", {200: _TEXT}, "health", auth="none"),
    ("GET", "/"): Operation("Redirects to /inbox", {307: None}, "pages", auth="none", published=False),
    ("GET", "/inbox"): Operation("The agents' inbox page", {200: _HTML}, "pages", auth="none", published=False),
    ("GET", "/static/{name}"): Operation("The inbox page's files", {200: _TEXT}, "pages", auth="none",
                                         published=False),
    ("WEBSOCKET", "/ws"): Operation("Live events (README: WebSocket)", {101: None}, "live", published=False),
}

_ERROR_TEXT = {
    400: "Bad request: malformed JSON, an invalid query parameter or cursor",
    401: "No API key, or an invalid or revoked one",
    403: "This needs an admin API key",
    404: "No such object in this account",
    413: "Body too large",
    422: "Validation error: the body is well-formed but not acceptable (nothing was changed)",
}


def _declared(route: BaseRoute) -> Iterator[tuple[str, str, Operation | None]]:
    if isinstance(route, ApiRoute):
        yield route.method, route.path, route.operation
    elif isinstance(route, WebSocketRoute):
        yield "WEBSOCKET", route.path, EXTERNAL.get(("WEBSOCKET", route.path))
    elif isinstance(route, Route):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            yield method, route.path, EXTERNAL.get((method, route.path))
    else:
        yield "?", repr(route), None


def undeclared(routes: Iterable[BaseRoute]) -> list[str]:
    """``METHOD path`` of every route without an ``Operation``."""
    return [f"{method} {path}" for route in routes for method, path, op in _declared(route) if op is None]


def operations_of(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Operation]]:
    routes = list(routes)
    if missing := undeclared(routes):
        raise LookupError(f"routes without an Operation: {', '.join(missing)}")
    return [(m, p, op) for route in routes for m, p, op in _declared(route) if op is not None]


def _models(ops: list[tuple[str, str, Operation]]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    seen: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Error, "serialization"): None}
    for _, _, op in ops:
        if isinstance(op.body, type):
            seen[(op.body, "validation")] = None
        for body in op.ok.values():
            if isinstance(body, type):
                seen[(body, "serialization")] = None
    return list(seen)


def _content(body: Any, refs: dict[tuple[type[BaseModel], JsonSchemaMode], Any], mode: JsonSchemaMode) -> Any:
    if isinstance(body, type):
        return {"application/json": {"schema": refs[(body, mode)]}}
    content_type, schema = body
    return {content_type: {"schema": dict(schema)}}


def _operation(method: str, path: str, op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": refs[(Error, "serialization")]}}
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
        for name in _PATH_PARAM.findall(path)
    ]
    params += [
        {"name": p.name, "in": p.location, "required": p.required, "schema": dict(p.schema),
         **({"description": p.description} if p.description else {})}
        for p in op.params
    ]
    responses: dict[str, Any] = {}
    for status, body in sorted(op.ok.items()):
        responses[str(status)] = {"description": "Success" if body is not None else "Success, no body"}
        if body is not None:
            responses[str(status)]["content"] = _content(body, refs, "serialization")
    errors: dict[int, str] = {}
    if op.auth in ("key", "admin"):
        errors[401] = _ERROR_TEXT[401]
    if op.auth == "admin":
        errors[403] = _ERROR_TEXT[403]
    if params and any(p["in"] == "path" for p in params):
        errors[404] = _ERROR_TEXT[404]
    if any(p.location == "query" for p in op.params):
        errors[400] = _ERROR_TEXT[400]
    if op.body is not None:
        errors.update({400: _ERROR_TEXT[400], 413: _ERROR_TEXT[413], 422: _ERROR_TEXT[422]})
    if op.auth != "none":
        errors[503] = "The database is unreachable (database_unavailable); retry later"
    errors.update(op.errors)
    for status, text in sorted(errors.items()):
        responses[str(status)] = {"description": text, "content": error}
    if (method, path) == ("GET", "/readyz"):
        responses["503"]["content"] = _content(Readiness, refs, "serialization")
    out: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if op.description:
        out["description"] = op.description
    if params:
        out["parameters"] = params
    if op.body is not None:
        schema = refs[(op.body, "validation")] if isinstance(op.body, type) else dict(op.body)
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    out["security"] = [{"apiKey": []}] if op.auth in ("key", "admin") else []
    return out


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path.replace("{", "by_").replace("api/v1", "")) if w]
    return "_".join([method.lower(), *words])


def build_spec(routes: Iterable[BaseRoute], *, title: str = "inbox-gateway", version: str = "1") -> dict[str, Any]:
    ops = [(m, p, op) for m, p, op in operations_of(routes) if op.published]
    models = _models(ops)
    refs, definitions = models_json_schema(models, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in ops:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, dict(refs))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Asterisk, WhatsApp and Telegram as one inbox. Errors are "
                           '`{"error": {"code", "message"}}`. Lists are pages: pass `next_cursor` as `?cursor=`. '
                           "Live events come over the WebSocket `GET /ws` (README), with the items of "
                           "`GET /api/v1/events` as its `event` frames.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key"}},
        },
    }


def _spec_bytes(request: Request) -> bytes:
    # Built once per app: the routes do not change after start.
    state = request.app.state
    cached: bytes | None = getattr(state, "openapi_json", None)
    if cached is None:
        cached = json.dumps(build_spec(request.app.routes), separators=(",", ":")).encode()
        state.openapi_json = cached
    return cached


async def openapi_json(request: Request) -> Response:
    return Response(_spec_bytes(request), media_type="application/json")


async def docs(request: Request) -> Response:
    return Response(render(json.loads(_spec_bytes(request))), media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"})


routes: list[BaseRoute] = [
    ApiRoute("/openapi.json", openapi_json, method="GET", operation=Operation(
        "This contract (OpenAPI 3.1)", {200: ("application/json", {"type": "object"})}, "meta", auth="none",
        published=False)),
    ApiRoute("/docs", docs, method="GET", operation=Operation(
        "This contract as a page", {200: _HTML}, "meta", auth="none", published=False)),
]
