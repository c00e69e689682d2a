"""``GET /api/v1/media/{id}``: a stored media file, to the keys of the account that owns it.

Another account's file, an unknown id and a file not downloaded yet are all 404:
the answer never tells whether someone else's object exists.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from gateway.http import ApiError, ctx_of, parse_db_id, require_principal
from gateway.media_worker import media_path

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
    if not await asyncio.to_thread(path.is_file):
        raise _not_found()
    return FileResponse(
        path,
        media_type=row["mime_type"] or "application/octet-stream",
        filename=row["name"],
        content_disposition_type="inline",
        headers={"ETag": f'"{row["sha256"]}"', "Cache-Control": "private, max-age=86400"},
    )


routes = [Route("/api/v1/media/{id}", get_media, methods=["GET"])]
