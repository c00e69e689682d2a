"""schemathesis against ``/openapi.json`` of a running, populated gateway: for every published
operation a bounded number of generated requests (valid by the schema, with an admin key);
no answer is a 5xx, every status is declared, every body matches its declared schema."""

from __future__ import annotations

import asyncio
from collections import Counter

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.openapi.world import populated_world
from tests.redis_server import free_port

EXAMPLES = 30
CLOSED_PORT = free_port()
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _loopback_only(case: schemathesis.Case) -> schemathesis.Case:
    """An AMI host in a generated channel body is this machine: the setup hook connects to it, and a
    test never resolves generated names or reaches another machine."""
    config = case.body.get("config") if isinstance(case.body, dict) else None
    if isinstance(config, dict) and "host" in config:
        config["host"] = "127.0.0.1"
        config["port"] = CLOSED_PORT
    return case


def _fuzz(spec: dict, base_url: str, key: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    # Deletions last, keys the very last: a revoked key (the fuzz may hit its own id) would answer 401 to the rest.
    operations = sorted((r.ok() for r in schema.get_all_operations()),
                        key=lambda o: (o.method.upper() == "DELETE", o.path.startswith("/api/v1/keys")))
    for operation in operations:

        @given(case=operation.as_strategy().map(_loopback_only))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=15)
            statuses.setdefault(case.operation.label, Counter())[response.status_code] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis groups its failures; every operation runs
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    session.close()
    # Each operation was exercised, and reached real rows, not only refusals.
    assert {o.label for o in operations} == set(statuses)
    succeeded = {label for label, counts in statuses.items() if any(200 <= s < 300 for s in counts)}
    assert {o.label for o in operations if o.method.upper() == "GET" and "webhooks" not in o.path} <= succeeded
    return failures


async def test_generated_requests_get_declared_answers_and_no_5xx(db_url, pool, tmp_path):
    async with populated_world(db_url, pool, tmp_path / "media",
                               gateway_channel_allowed_networks="127.0.0.0/8") as p:
        w = p.world
        spec = (await w.http.get("/openapi.json")).json()
        # In a thread: schemathesis calls are blocking, and the server runs on this event loop.
        failures = await asyncio.to_thread(_fuzz, spec, w.server.url, w.admin_key)
    assert failures == [], "\n\n".join(failures)
