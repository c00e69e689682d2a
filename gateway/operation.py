"""An HTTP route's contract, declared next to the route: ``ApiRoute(path, endpoint, method=, operation=)``.

``gateway.openapi`` walks the app's routes and builds ``/openapi.json`` from these
declarations and the pydantic models they name; a route without one fails
``tests/api/test_openapi_spec.py``. Error answers (``{"error": {"code", "message"}}``)
that follow from the declaration (401 without a key, 403 for admin routes, 404 for
an id in the path, 400/413/422 for a body, 400 for query parameters) are added by
the generator; ``errors`` lists the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from starlette.routing import Route

Auth = Literal["key", "admin", "none", "provider"]
# A success answer: a pydantic model (JSON), None (no body), or a content type with a plain schema.
Body = type[BaseModel] | None | tuple[str, Mapping[str, Any]]

MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Param:
    name: str
    schema: Mapping[str, Any]
    description: str = ""
    location: Literal["query", "header"] = "query"
    required: bool = False


@dataclass(frozen=True)
class Operation:
    summary: str
    ok: Mapping[int, Body]
    tag: str
    auth: Auth = "key"
    description: str = ""
    body: type[BaseModel] | Mapping[str, Any] | None = None
    params: tuple[Param, ...] = ()
    errors: Mapping[int, str] = field(default_factory=dict)
    # False for what is not a JSON/HTTP API (pages, static files, the WebSocket): declared, not published.
    published: bool = True


class ApiRoute(Route):
    """A Starlette route for one method, carrying its ``Operation``."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, method: str, operation: Operation) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method = method
        self.operation = operation


# Parameters shared by the list routes.
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Page size")
CURSOR = Param("cursor", {"type": "string", "maxLength": 1024}, "The next_cursor of the previous page")


def id_filter(name: str, what: str) -> Param:
    return Param(name, {"type": "integer", "minimum": 1, "maximum": MAX_ID}, f"Only those of this {what}")


def text_filter(name: str, description: str, max_length: int = 200) -> Param:
    return Param(name, {"type": "string", "maxLength": max_length}, description)


def choice(name: str, values: list[str], description: str) -> Param:
    return Param(name, {"type": "string", "enum": values}, description)
