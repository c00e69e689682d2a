"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.http import DB_UNAVAILABLE, ctx_of
from gateway.metrics_refresh import refresh


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    ctx = ctx_of(request)
    if ctx.extras.get("draining"):
        return JSONResponse({"status": "draining", "checks": {}}, status_code=503)
    checks: dict[str, str] = {}
    try:
        await ctx.pool.fetchval("SELECT 1", timeout=2)
        checks["database"] = "ok"
    except DB_UNAVAILABLE as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    broker_ok = getattr(ctx.broker, "healthy", None)
    checks["broker"] = "ok" if broker_ok is None or broker_ok() else "unavailable"
    if checks["database"] != "ok":
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    # Without Redis this process still ingests, answers the API and serves its
    # sockets from the event log (they catch up when Redis is back): it stays
    # in rotation. Failing readiness here would take every replica out at once.
    status = "ready" if checks["broker"] == "ok" else "degraded"
    return JSONResponse({"status": status, "checks": checks}, status_code=200)


async def metrics(request: Request) -> Response:
    await refresh(ctx_of(request))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
