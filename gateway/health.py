"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.http import DB_UNAVAILABLE, ctx_of


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
    if broker_ok is not None:
        checks["broker"] = "ok" if broker_ok() else "unavailable"
    else:
        checks["broker"] = "ok"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
