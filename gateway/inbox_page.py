"""The live inbox page: static files that talk to the public REST and WS API.

The page runs no inline script: its code is ``/static/inbox.js`` and the ES
modules it imports (``api.js``, ``stream.js``, ``*_view.js``...), and a strict
Content-Security-Policy allows scripts, styles and connections from this
origin only, so data rendered by mistake as markup still could not run.
Images and players may also show ``blob:`` URLs: media needs the API key, so
the page fetches it and hands the element an object URL.
"""

from __future__ import annotations

import re
from importlib.resources import files

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

_STATIC = files("gateway").joinpath("static")
# Served by name from this table only: a request can never name another file.
_JS = "text/javascript; charset=utf-8"
_ASSETS = {
    "inbox.js": _JS,
    "api.js": _JS,
    "format.js": _JS,
    "state.js": _JS,
    "stream.js": _JS,
    "list_view.js": _JS,
    "conversation_view.js": _JS,
    "contact_view.js": _JS,
    "dashboard_view.js": _JS,
    "inbox.css": "text/css; charset=utf-8",
}
# A Host header that is a plain host[:port] (or [IPv6]:port): anything else could
# smuggle directives into the policy, and the page then falls back to 'self'.
_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def content_security_policy(host: str) -> str:
    # 'self' covers same-origin ws:/wss: in CSP 3; the explicit origins are for older browsers.
    sockets = f" ws://{host} wss://{host}" if _PLAIN_HOST.fullmatch(host) else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        f"connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


async def inbox(request: Request) -> Response:
    headers = {
        "Content-Security-Policy": content_security_policy(request.headers.get("host", "")),
        "Cache-Control": "no-store",
    }
    return HTMLResponse(_STATIC.joinpath("inbox.html").read_text(encoding="utf-8"), headers=headers)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404)
    body = _STATIC.joinpath(name).read_bytes()
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})


async def root(request: Request) -> Response:
    return RedirectResponse("/inbox")


routes = [
    Route("/", root, methods=["GET"]),
    Route("/inbox", inbox, methods=["GET"]),
    Route("/static/{name}", asset, methods=["GET"]),
]
