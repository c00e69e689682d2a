"""``/api/v1/retention``: read, set and preview the account's retention policy over real HTTP."""

from __future__ import annotations

import pytest

from inbox.retention import RetentionPolicy

DEFAULTS = RetentionPolicy().model_dump()


async def stored(pool, account_id: int) -> dict:
    return await pool.fetchval("SELECT retention FROM accounts WHERE id = $1", account_id)


async def test_an_account_without_a_policy_reads_the_defaults(server, tenants):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        r = await http.get("/api/v1/retention")
    assert r.status_code == 200
    assert r.json() == {**DEFAULTS, "valid": True}


async def test_only_an_admin_key_reads_or_sets_the_policy(server, tenants, pool):
    a, _ = tenants
    async with server.client(a.agent_key) as agent, server.client() as anonymous:
        assert (await agent.get("/api/v1/retention")).status_code == 403
        assert (await agent.put("/api/v1/retention", json={"messages_days": 1})).status_code == 403
        assert (await agent.get("/api/v1/retention/preview")).status_code == 403
        assert (await anonymous.get("/api/v1/retention")).status_code == 401
    assert await stored(pool, a.account_id) == {}


async def test_a_policy_put_is_stored_for_that_account_only_and_read_back(server, tenants, pool):
    a, b = tenants
    policy = {"messages_days": 30, "calls_days": None, "redact_after_days": 7}
    async with server.client(a.admin_key) as http:
        put = await http.put("/api/v1/retention", json=policy)
        got = await http.get("/api/v1/retention")
    assert put.status_code == 200
    expected = {**DEFAULTS, **policy}
    assert put.json() == got.json() == {**expected, "valid": True}
    assert await stored(pool, a.account_id) == expected
    assert await stored(pool, b.account_id) == {}


@pytest.mark.parametrize("body", [
    {"messages_days": -1},
    {"messages_days": "30"},
    {"messages_days": True},
    {"messages_days": 1.5},
    {"messages_days": 10**6},
    {"messages_days": 10**40},
    {"mesages_days": 30},
    ["messages_days", 30],
    "30",
])
async def test_an_invalid_policy_is_refused_and_changes_nothing(server, tenants, pool, body):
    a, _ = tenants
    await pool.execute("UPDATE accounts SET retention = $2 WHERE id = $1", a.account_id, {"messages_days": 400})
    async with server.client(a.admin_key) as http:
        r = await http.put("/api/v1/retention", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert await stored(pool, a.account_id) == {"messages_days": 400}


async def test_a_policy_that_no_longer_validates_is_reported_not_guessed(server, tenants, pool):
    a, _ = tenants
    await pool.execute("UPDATE accounts SET retention = $2 WHERE id = $1", a.account_id, {"messages_days": -3})
    async with server.client(a.admin_key) as http:
        got = await http.get("/api/v1/retention")
        preview = await http.get("/api/v1/retention/preview")
    assert got.json()["valid"] is False
    assert preview.status_code == 200
    assert "invalid retention policy messages_days" in preview.json()["error"]


async def test_the_preview_counts_what_a_run_would_do_for_this_account_and_changes_nothing(server, tenants, pool):
    a, _b = tenants  # each has one message from 2026-03-14 (tests.api.helpers.T0)
    before = await pool.fetchval("SELECT count(*) FROM messages")
    async with server.client(a.admin_key) as http:
        assert (await http.put("/api/v1/retention", json={"messages_days": 0, "calls_days": 0})).status_code == 200
        r = await http.get("/api/v1/retention/preview")
    assert r.status_code == 200
    preview = r.json()
    assert preview["dry_run"] is True
    assert preview["error"] is None
    assert preview["deleted"]["messages"] == 1  # tenant a's only; tenant b keeps the default policy
    assert preview["deleted"]["conversations"] == 1
    assert await pool.fetchval("SELECT count(*) FROM messages") == before
