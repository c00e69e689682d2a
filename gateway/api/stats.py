"""``/api/v1/stats``: counts for dashboards (``?since=&until=`` ISO-8601 bound the time-based ones)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api._common import json_response, principal, query_time
from gateway.http import ApiError, ctx_of
from gateway.operation import ApiRoute, Operation, Param
from inbox.stats import account_stats
from schema.resources import Stats


async def stats(request: Request) -> Response:
    who = await principal(request)
    since, until = query_time(request, "since"), query_time(request, "until")
    if since and until and since >= until:
        raise ApiError(400, "invalid_parameter", "since must be before until")
    return json_response(await account_stats(ctx_of(request).pool, who.account_id, since=since, until=until))


_TIME = {"type": "string", "format": "date-time", "maxLength": 64}
routes = [
    ApiRoute("/api/v1/stats", stats, method="GET", operation=Operation(
        "Counts for dashboards", {200: Stats}, "stats",
        params=(Param("since", _TIME, "ISO-8601 with a time zone; bounds messages, calls, first responses"),
                Param("until", _TIME, "ISO-8601 with a time zone, after since")))),
]
