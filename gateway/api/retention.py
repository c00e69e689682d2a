"""``/api/v1/retention``: the account's retention and privacy policy (admin only, DESIGN §9).

``GET`` answers the effective policy (stored values over the defaults); ``PUT``
replaces it after validation (an unknown field or an out-of-range number is a
422 and changes nothing); ``GET …/preview`` is ``retention run --dry-run`` for
this account: what the next run would delete and redact, changing nothing.
"""

from __future__ import annotations

from pydantic import ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from gateway.api._common import admin, body_model, json_response
from gateway.http import ctx_of
from gateway.operation import ApiRoute, Operation
from inbox.retention import RetentionPolicy, parse_policy, run_retention
from schema.resources import RetentionPolicyOut, RetentionPreview


class RetentionPolicyBody(RetentionPolicy):
    """What ``PUT`` accepts: the stored policy's fields, strictly (a typo or a string is a 422, not ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _policy_json(policy: RetentionPolicy) -> dict[str, int | None]:
    return policy.model_dump()


async def get_policy(request: Request) -> Response:
    who = await admin(request)
    raw = await ctx_of(request).pool.fetchval("SELECT retention FROM accounts WHERE id = $1", who.account_id)
    try:
        policy = parse_policy(raw)
    except ValueError:
        # A policy set by hand in SQL that no longer validates: show what the
        # retention run does with it (it skips the account) instead of guessing.
        return json_response({**_policy_json(RetentionPolicy()), "valid": False})
    return json_response({**_policy_json(policy), "valid": True})


async def put_policy(request: Request) -> Response:
    who = await admin(request)
    body = await body_model(request, RetentionPolicyBody)
    policy = RetentionPolicy.model_validate(body.model_dump())
    await ctx_of(request).pool.execute(
        "UPDATE accounts SET retention = $2 WHERE id = $1", who.account_id, _policy_json(policy)
    )
    return json_response({**_policy_json(policy), "valid": True})


async def preview(request: Request) -> Response:
    who = await admin(request)
    settings = ctx_of(request).settings
    report = await run_retention(ctx_of(request).pool, dry_run=True, media_root=settings.media_dir,
                                 account_ids=[who.account_id])
    result = report.as_dict()
    account = result["accounts"][0] if result["accounts"] else {"deleted": {}, "redacted": {}, "error": None}
    return json_response({"dry_run": True, "now": result["now"], "deleted": account["deleted"],
                          "redacted": account["redacted"], "error": account["error"]})


_TAG = "retention"
routes = [
    ApiRoute("/api/v1/retention", get_policy, method="GET", operation=Operation(
        "The account's retention policy (admin)", {200: RetentionPolicyOut}, _TAG, auth="admin")),
    ApiRoute("/api/v1/retention", put_policy, method="PUT", operation=Operation(
        "Replace the retention policy (admin); days null = keep forever", {200: RetentionPolicyOut}, _TAG,
        auth="admin", body=RetentionPolicyBody)),
    ApiRoute("/api/v1/retention/preview", preview, method="GET", operation=Operation(
        "What the next retention run would delete and redact (admin; changes nothing)", {200: RetentionPreview},
        _TAG, auth="admin")),
]
