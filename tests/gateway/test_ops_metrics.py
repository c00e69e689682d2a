"""/metrics explains lag and failures: values scraped from a real server and parsed as Prometheus reads them."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.media_worker import MediaWorkerConfig
from gateway.metrics import CodeLabels
from gateway.metrics_refresh import pool_waiting
from gateway.outbound_worker import OutboundConfig
from gateway.redis_broker import RedisBroker
from inbox.db import create_pool
from tests.fakes.graph_api import graph_error, running_graph_api
from tests.redis_server import RedisProcess
from tests.server import run_server
from tests.tcp_proxy import through
from tests.whatsapp.fixtures import raw
from tests.whatsapp.helpers import ACCESS_TOKEN, PHONE_NUMBER_ID, eventually, make_whatsapp_channel, post_signed
from tests.whatsapp.test_media import PHOTO, image_body
from tests.ws.helpers import make_account, write_events, ws_connect
from tests.ws.test_redis_broker import record

FAST = OutboundConfig(concurrency=2, poll_interval=0.02, backoff_base=0.01, backoff_cap=0.05, max_attempts=5)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def scraped_until(http: httpx.AsyncClient, ok: Callable[[str], bool]) -> str:
    async def check() -> str | None:
        text = await scrape(http)
        return text if ok(text) else None

    result: str = await eventually(check)
    return result


async def _reply(api: httpx.AsyncClient, conversation_id: int, text: str) -> dict[str, Any]:
    response = await api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": text},
                              headers={"Idempotency-Key": f"key-{text}"})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_outbound_queue_age_while_queued_then_the_failure_counted_by_provider_code(db_url, pool):
    failed_131047 = {"channel_type": "whatsapp", "outcome": "permanent_error", "code": "131047"}
    async with running_graph_api({PHONE_NUMBER_ID: ACCESS_TOKEN}) as graph:
        channel = await make_whatsapp_channel(pool)
        # No workers: the reply stays queued and ages.
        async with run_server(db_url, gateway_workers=False, whatsapp_api_base=graph.base_url) as srv, \
                srv.client() as hook, srv.client(channel.api_key) as api:
            assert (await post_signed(hook, channel.channel_id, raw("text.json"))).status_code == 200
            conversation_id = await pool.fetchval("SELECT id FROM conversations")
            queued = await _reply(api, conversation_id, "Sind Sie noch da?")
            text = await scraped_until(hook, lambda t: (value(t, "igw_outbound_queue_age_seconds") or 0) > 0)
            before = value(text, "igw_outbound_attempts_total", **failed_131047) or 0.0

        graph.fail_next_sends(PHONE_NUMBER_ID, graph_error(
            400, 131047, "(#131047) Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied."))
        async with run_server(db_url, whatsapp_api_base=graph.base_url, extras={"outbound_config": FAST}) as srv, \
                srv.client() as http:
            async def failed() -> bool:
                status = await pool.fetchval("SELECT status FROM messages WHERE id = $1", queued["id"])
                return bool(status == "failed")

            await eventually(failed)
            text = await scrape(http)
            assert value(text, "igw_outbound_attempts_total", **failed_131047) == before + 1
            assert value(text, "igw_outbound_queue_age_seconds") == 0


async def test_event_lag_counts_undelivered_events_and_returns_to_zero_once_delivered(db_url):
    # No periodic check during the test: only the broker's next event may close the gap.
    async with run_server(db_url, gateway_ws_check_interval=3600) as srv, srv.client() as http:
        pool = srv.ctx.pool
        account_id, key = await make_account(pool)
        async with ws_connect(srv.ws_url, key) as client:
            assert (await client.subscribe(["account"]))["seq"] == 0
            text = await scrape(http)
            assert value(text, "gateway_ws_connections") == 1
            assert value(text, "igw_ws_event_lag") == 0

            # Committed but never published: this node has not delivered them.
            await write_events(pool, account_id, 3)
            assert value(await scrape(http), "igw_ws_event_lag") == 3

            # The next published event reveals the gap; the hub fills it from the log.
            await write_events(pool, account_id, 1, broker=srv.ctx.broker)
            assert [f["seq"] for f in await client.events_until(4)] == [1, 2, 3, 4]
            text = await scraped_until(http, lambda t: value(t, "igw_ws_event_lag") == 0)
            assert value(text, "gateway_ws_connections") == 1
            assert value(text, "igw_ws_queue_depth_total") == 0
            assert value(text, "igw_ws_queue_depth_max") == 0


async def test_channel_connection_state_pool_and_broker_gauges(db_url, pool):
    account_id, _ = await make_account(pool)
    ids = {}
    for name, ami in (("up", {"status": "connected", "node": "n1"}),
                      ("refused", {"status": "auth_failed", "error": "Authentication failed"}),
                      ("new", None)):
        ids[name] = await pool.fetchval(
            """INSERT INTO channels (account_id, type, name, config, provider_key, state)
               VALUES ($1, 'asterisk', $2, '{}', $2, $3) RETURNING id""",
            account_id, name, {"ami": ami} if ami else {},
        )
    async with run_server(db_url, gateway_workers=False) as srv, srv.client() as http:
        text = await scrape(http)
        connection = {
            dict(labels)["channel_id"]: (dict(labels)["status"], v)
            for (name, labels), v in samples(text).items() if name == "igw_channel_connection"
        }
        assert connection == {str(ids["up"]): ("connected", 1), str(ids["refused"]): ("failed", 1),
                              str(ids["new"]): ("connecting", 1)}
        assert value(text, "igw_channel_connection", channel_id=str(ids["up"]), channel_type="asterisk",
                     status="connected") == 1

        await pool.execute("UPDATE channels SET deleted_at = now() WHERE id = $1", ids["refused"])
        text = await scrape(http)
        assert not any(dict(labels).get("channel_id") == str(ids["refused"])
                       for (name, labels) in samples(text) if name == "igw_channel_connection")

        size, in_use, most = (value(text, n) for n in ("igw_db_pool_size", "igw_db_pool_in_use", "igw_db_pool_max"))
        assert size is not None and in_use is not None and most is not None
        assert 1 <= size <= most and 0 <= in_use <= size
        assert value(text, "igw_broker_connected") == 1
        assert value(text, "igw_metrics_db_up") == 1


async def test_a_database_outage_does_not_fail_the_scrape(db_url, db_proxy):
    async with run_server(through(db_url, db_proxy.port), gateway_workers=False) as srv, srv.client() as http:
        await db_proxy.cut()
        text = await scrape(http)
        assert value(text, "igw_metrics_db_up") == 0
        assert math.isnan(value(text, "igw_outbound_queue_age_seconds") or 0.0)
        assert value(text, "igw_db_pool_max") is not None
        await db_proxy.start()
        await scraped_until(http, lambda t: value(t, "igw_metrics_db_up") == 1)


async def test_a_failed_redis_publish_is_counted_and_the_broker_gauge_follows_redis(db_url, redis_prefix):
    redis = RedisProcess()
    redis.start()
    url = redis.url
    redis.stop()
    broker = RedisBroker(url, prefix=redis_prefix)
    try:
        before = value(generate_latest(REGISTRY).decode(), "igw_redis_publish_failures_total", kind="events") or 0.0
        await broker.publish([record(1)])
        after = value(generate_latest(REGISTRY).decode(), "igw_redis_publish_failures_total", kind="events")
        assert after == before + 1
    finally:
        await broker.close()

    redis.start()
    try:
        async with run_server(db_url, redis_url=redis.url, gateway_redis_prefix=redis_prefix,
                              gateway_workers=False) as srv, srv.client() as http:
            await scraped_until(http, lambda t: value(t, "igw_broker_connected") == 1)
            redis.stop()
            await scraped_until(http, lambda t: value(t, "igw_broker_connected") == 0)
    finally:
        redis.stop()



async def test_media_download_failures_are_counted_retried_then_final(db_url, pool, tmp_path):
    config = MediaWorkerConfig(concurrency=1, poll_interval=0.05, retry_base=0.05, retry_cap=0.2, max_attempts=3)
    async with running_graph_api({PHONE_NUMBER_ID: ACCESS_TOKEN}) as graph, \
            run_server(db_url, whatsapp_api_base=graph.base_url, gateway_media_dir=tmp_path / "media",
                       extras={"media_worker_config": config}) as srv, srv.client() as http:
        text = await scrape(http)
        before = [value(text, "igw_media_download_failures_total", channel_type="whatsapp", outcome=o) or 0.0
                  for o in ("retried", "final")]
        channel = await make_whatsapp_channel(pool)
        graph.add_media("m-2", b"always the wrong bytes")
        assert (await post_signed(http, channel.channel_id, image_body("m-2", PHOTO))).status_code == 200

        async def failed() -> bool:
            return bool(await pool.fetchval("SELECT status = 'failed' FROM media_files"))

        await eventually(failed)
        text = await scrape(http)
        after = [value(text, "igw_media_download_failures_total", channel_type="whatsapp", outcome=o)
                 for o in ("retried", "final")]
        assert after == [before[0] + config.max_attempts - 1, before[1] + 1]


def test_provider_codes_become_a_bounded_label_set():
    code_label = CodeLabels(limit=4)
    assert code_label("131047") == "131047"
    assert code_label(None) == ""
    assert code_label("a code with spaces and " + "x" * 100) == "other"
    assert [code_label(f"bulk_{n}") for n in range(4)] == ["bulk_0", "bulk_1", "bulk_2", "other"]
    assert code_label("131047") == "131047"  # a code already seen keeps its label


async def test_callers_waiting_for_a_pool_connection_are_counted(db_url):
    small = await create_pool(db_url, min_size=1, max_size=1)
    try:
        held = await small.acquire()

        async def take():
            return await small.acquire()

        waiter = asyncio.create_task(take())
        try:
            async with asyncio.timeout(10):
                while pool_waiting(small) != 1:  # noqa: ASYNC110 - the waiter registers on its first step
                    await asyncio.sleep(0.01)
        finally:
            await small.release(held)
        await small.release(await waiter)
        assert pool_waiting(small) == 0
    finally:
        await asyncio.wait_for(small.close(), 10)
