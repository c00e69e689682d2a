"""``/openapi.json`` covers every route, validates as OpenAPI 3.1, and ``/docs`` renders it without script."""

from __future__ import annotations

from openapi_spec_validator import validate
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.app import create_app
from gateway.config import load_settings
from gateway.openapi import build_spec, undeclared
from tests.server import run_server


def _app():
    return create_app(load_settings(database_url="postgresql://127.0.0.1/unused"))


def test_every_route_of_the_app_declares_its_operation():
    app = _app()
    assert undeclared(app.routes) == []


def test_a_route_without_a_declaration_is_refused():
    async def extra(request):
        return PlainTextResponse("x")

    routes = [*_app().routes, Route("/api/v1/extra", extra, methods=["GET", "POST"])]
    assert undeclared(routes) == ["GET /api/v1/extra", "POST /api/v1/extra"]
    try:
        build_spec(routes)
    except LookupError as exc:
        assert "GET /api/v1/extra" in str(exc)
    else:
        raise AssertionError("build_spec published an undeclared route")


def test_the_spec_is_valid_openapi_3_1_and_lists_every_api_webhook_and_health_route():
    app = _app()
    spec = build_spec(app.routes)
    validate(spec)  # raises on anything that is not OpenAPI 3.1
    assert spec["openapi"].startswith("3.1")
    published = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    served = {(m, r.path) for r in app.routes if getattr(r, "methods", None) for m in r.methods - {"HEAD"}}
    wanted = {(m, p) for m, p in served if p.startswith(("/api/v1/", "/webhooks/")) or p in ("/healthz", "/readyz")}
    assert wanted - published == set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op["responses"], (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref in ("#/components/schemas/Error", "#/components/schemas/Readiness"), (path, status)
            if "{" in path:
                assert any(p["in"] == "path" for p in op["parameters"])
    channel = spec["components"]["schemas"]["Channel"]
    assert "connection" in channel["required"]
    body = spec["paths"]["/api/v1/channels"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChannelCreate"}
    assert spec["paths"]["/api/v1/keys/{id}"]["delete"]["responses"]["409"]


async def test_openapi_json_and_docs_are_served(db_url):
    async with run_server(db_url, gateway_workers=False) as server, server.client() as http:
        spec = (await http.get("/openapi.json")).json()
        validate(spec)
        docs = await http.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in docs.headers["content-security-policy"]
    assert "<script" not in docs.text.lower() and "http" not in docs.text.replace("HTTP API", "")
    for path, item in spec["paths"].items():
        for method in item:
            assert f"{method.upper()} {path}" in docs.text
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in docs.text
