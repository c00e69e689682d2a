"""``GET /api/v1/media/{id}``: a stored media file, to the keys of the account that owns it.

Another account's file, an unknown id and a file not downloaded yet are all 404:
the answer never tells whether someone else's object exists. Provider media types
and names are never passed through as given (``gateway/api/_safe_media.py``).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from gateway.api._safe_media import content_disposition, served_type
from gateway.http import ApiError, ctx_of, parse_db_id, require_principal
from gateway.media_worker import media_path
from gateway.operation import ApiRoute, Operation

_MAX_ID = 2**63 - 1


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no such media file, or it is not downloaded yet")


async def get_media(request: Request) -> Response:
    principal = await require_principal(request)
    raw = str(request.path_params["id"])
    if parse_db_id(raw) is None:
        raise _not_found()
    ctx = ctx_of(request)
    row = await ctx.pool.fetchrow(
        """SELECT storage_path, mime_type, name, sha256 FROM media_files
           WHERE id = $1 AND account_id = $2 AND status = 'stored' AND storage_path IS NOT NULL""",
        int(raw),
        principal.account_id,
    )
    if row is None:
        raise _not_found()
    path = media_path(ctx.settings.media_dir, row["storage_path"])
    if path is None or not await asyncio.to_thread(path.is_file):
        raise _not_found()
    media_type, inline = served_type(row["mime_type"])
    return FileResponse(
        path,
        media_type=media_type,
        headers={
            "ETag": f'"{row["sha256"]}"',
            "Cache-Control": "private, max-age=86400",
            "Content-Disposition": content_disposition(inline, row["name"], f"media-{raw}"),
            "X-Content-Type-Options": "nosniff",
        },
    )


routes = [
    ApiRoute("/api/v1/media/{id}", get_media, method="GET", operation=Operation(
        "A stored media file (404 until downloaded)",
        {200: ("application/octet-stream", {"type": "string", "format": "binary"})}, "media",
        description="Served with its safe media type; ETag is the sha256 of the bytes.")),
]
