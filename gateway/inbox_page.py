"""The live inbox page: a single static file that talks to the public REST and WS API."""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

_PAGE = files("gateway").joinpath("static/inbox.html")


async def inbox(request: Request) -> Response:
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"))


async def root(request: Request) -> Response:
    return RedirectResponse("/inbox")


routes = [Route("/", root, methods=["GET"]), Route("/inbox", inbox, methods=["GET"])]
