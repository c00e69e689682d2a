"""Channels CRUD: per-type validation, write-only secrets, provider identity claims, soft delete."""

from __future__ import annotations

import json

from schema.enums import ChannelType
from tests.api.conftest import make_tenant
from tests.sealed import open_sealed

WA_SECRETS = {"access_token": "EAAG-secret-token-1", "app_secret": "app-secret-2", "verify_token": "verify-3"}
TG_SECRETS = {"bot_token": "123456789:AAH-secret-bot-token", "webhook_secret": "hook-secret-4"}
AMI_SECRETS = {"secret": "ami-secret-5"}
ALL_SECRET_VALUES = [*WA_SECRETS.values(), *TG_SECRETS.values(), *AMI_SECRETS.values(), "rotated-secret-6"]


def whatsapp(phone_number_id="106540352242922", name="Support WA"):
    return {"type": "whatsapp", "name": name, "config": {"phone_number_id": phone_number_id}, "secrets": WA_SECRETS}


def telegram(mode="webhook", **config):
    return {"type": "telegram", "name": "Support bot", "config": {"mode": mode, **config}, "secrets": TG_SECRETS}


def asterisk():
    return {"type": "asterisk", "name": "PBX", "secrets": AMI_SECRETS,
            "config": {"host": "pbx.local", "port": 5038, "username": "gateway",
                       "inbound_contexts": ["from-trunk"], "agent_pattern": r"PJSIP/1\d{3}"}}


async def test_creating_channels_answers_201_with_the_webhook_url_and_no_secrets(server, tenants, wakes, pool):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        wa = await http.post("/api/v1/channels", json=whatsapp())
        tg = await http.post("/api/v1/channels", json=telegram())
        poll = await http.post("/api/v1/channels", json={**telegram("polling"),
                                                         "secrets": {"bot_token": "987:BBB-other-token"}})
        ami = await http.post("/api/v1/channels", json=asterisk())
    for r in (wa, tg, poll, ami):
        assert r.status_code == 201, r.text
        assert {"id", "type", "name", "config", "webhook_url"} <= set(r.json())
    wa, tg, poll, ami = wa.json(), tg.json(), poll.json(), ami.json()
    assert wa["webhook_url"] == f"{server.url}/webhooks/whatsapp/{wa['id']}"
    assert wa["config"] == {"phone_number_id": "106540352242922"}
    assert wa["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    assert tg["webhook_url"] == f"{server.url}/webhooks/telegram/{tg['id']}"
    assert tg["config"]["bot_id"] == 123456789  # filled by the setup hook
    assert poll["webhook_url"] is None and ami["webhook_url"] is None
    assert ami["config"]["inbound_contexts"] == ["from-trunk"]
    keys = {r["type"]: r["provider_key"] for r in await pool.fetch(
        "SELECT type, provider_key FROM channels WHERE id = ANY($1::bigint[])", [wa["id"], tg["id"], ami["id"]])}
    assert keys == {"whatsapp": "106540352242922", "telegram": "123456789", "asterisk": "pbx.local:5038:gateway"}
    stored = await pool.fetchrow("SELECT secrets_enc, secrets_plaintext FROM channels WHERE id = $1", wa["id"])
    assert open_sealed(stored["secrets_enc"]) == WA_SECRETS and stored["secrets_plaintext"] == {}
    assert WA_SECRETS["access_token"] not in stored["secrets_enc"]
    assert wakes.count == 4


async def test_telegram_webhook_url_uses_the_public_url_when_one_is_set(server, tenants):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        r = await http.post("/api/v1/channels", json=telegram(public_url="https://inbox.example.com/"))
    assert r.json()["webhook_url"] == f"https://inbox.example.com/webhooks/telegram/{r.json()['id']}"


async def test_channel_secrets_never_appear_in_any_response(server, tenants):
    a, _ = tenants
    bodies = []
    async with server.client(a.admin_key) as http:
        for body in (whatsapp(), telegram(), asterisk()):
            r = await http.post("/api/v1/channels", json=body)
            bodies.append(r.text)
            cid = r.json()["id"]
            bodies.append((await http.get(f"/api/v1/channels/{cid}")).text)
        bodies.append((await http.get("/api/v1/channels")).text)
        r = await http.patch(f"/api/v1/channels/{cid}", json={"secrets": {"secret": "rotated-secret-6"}})
        bodies.append(r.text)
        # Validation errors must not echo what was sent either.
        bad = {**whatsapp("not-a-number"), "secrets": {**WA_SECRETS, "extra_secret": "rotated-secret-6"}}
        r = await http.post("/api/v1/channels", json=bad)
        assert r.status_code == 422
        bodies.append(r.text)
        bodies.append((await http.get("/api/v1/events")).text)
    for text in bodies:
        for secret in ALL_SECRET_VALUES:
            assert secret not in text


async def test_a_second_claim_of_a_live_provider_identity_is_409(server, pool, tenants):
    a, b = tenants
    async with server.client(a.admin_key) as http_a, server.client(b.admin_key) as http_b:
        first = await http_a.post("/api/v1/channels", json=whatsapp("555000111"))
        assert first.status_code == 201
        other_account = await http_b.post("/api/v1/channels", json=whatsapp("555000111"))
        same_account = await http_a.post("/api/v1/channels", json=whatsapp("555000111", name="again"))
        assert other_account.status_code == same_account.status_code == 409
        assert other_account.json()["error"]["code"] == "provider_identity_taken"
        bot = await http_a.post("/api/v1/channels", json=telegram())
        assert bot.status_code == 201
        assert (await http_b.post("/api/v1/channels", json=telegram())).status_code == 409
        pbx = await http_a.post("/api/v1/channels", json=asterisk())
        assert pbx.status_code == 201
        assert (await http_b.post("/api/v1/channels", json=asterisk())).status_code == 409
        # Moving a channel onto a claimed identity is refused too.
        moved = await http_b.patch(f"/api/v1/channels/{b.channel_id}",
                                   json={"config": {"phone_number_id": "555000111"}})
        assert moved.status_code == 409
        # Once deleted, the identity is free for the next claimant.
        assert (await http_a.delete(f"/api/v1/channels/{first.json()['id']}")).status_code == 204
        assert (await http_b.post("/api/v1/channels", json=whatsapp("555000111"))).status_code == 201
    assert await pool.fetchval("SELECT count(*) FROM channels WHERE provider_key = '555000111'") == 2


async def test_bad_channel_bodies_are_422_naming_the_field(server, tenants):
    a, _ = tenants
    cases = [
        ({"type": "whatsapp", "name": "x", "config": {}, "secrets": WA_SECRETS}, "config.phone_number_id"),
        ({**whatsapp(), "secrets": {"access_token": "t"}}, "secrets.app_secret"),
        ({"type": "fax", "name": "x"}, "type"),
        ({**telegram(), "secrets": {"bot_token": "123:abc"}}, "secrets.webhook_secret"),
        ({**asterisk(), "config": {**asterisk()["config"], "agent_pattern": "PJSIP/(1"}}, "config.agent_pattern"),
        ({**asterisk(), "config": {**asterisk()["config"], "port": 70000}}, "config.port"),
        ({**whatsapp(), "name": ""}, "name"),
        ({**whatsapp(), "colour": "red"}, "colour"),
    ]
    async with server.client(a.admin_key) as http:
        for body, field in cases:
            r = await http.post("/api/v1/channels", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"]["code"] == "validation_error"
            assert field in r.json()["error"]["message"], (field, r.json())
        r = await http.post("/api/v1/channels", json=[1, 2])
        assert r.status_code == 422


async def test_patch_renames_merges_config_and_rotates_one_secret(server, pool, tenants, wakes):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        cid = (await http.post("/api/v1/channels", json=asterisk())).json()["id"]
        r = await http.patch(f"/api/v1/channels/{cid}", json={"name": "PBX 2", "config": {"port": 5039},
                                                              "secrets": {"secret": "rotated-secret-6"}})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "PBX 2" and r.json()["config"]["port"] == 5039
        assert r.json()["config"]["username"] == "gateway"
        r = await http.patch(f"/api/v1/channels/{cid}", json={"config": {"port": "many"}})
        assert r.status_code == 422
    row = await pool.fetchrow("SELECT secrets_enc, provider_key FROM channels WHERE id = $1", cid)
    assert open_sealed(row["secrets_enc"]) == {"secret": "rotated-secret-6"}
    assert row["provider_key"] == "pbx.local:5039:gateway"
    assert wakes.count == 2


async def test_patching_a_telegram_token_asks_the_setup_hook_again(server, tenants, telegram_setup):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        cid = (await http.post("/api/v1/channels", json=telegram())).json()["id"]
        r = await http.patch(f"/api/v1/channels/{cid}", json={"secrets": {"bot_token": "777:CCC-new"}})
        assert r.status_code == 200
        assert r.json()["config"]["bot_id"] == 777
    # Each time: once to learn the bot's identity, once more when the channel's id is known (for setWebhook).
    assert [c[2] for c in telegram_setup.calls] == [None, cid, None, cid]
    assert telegram_setup.calls[3][1] == {"bot_token": "777:CCC-new", "webhook_secret": "hook-secret-4"}


async def test_a_failing_setup_hook_stores_nothing_and_a_taken_bot_never_reaches_the_hook_with_an_id(
    server, pool, tenants, telegram_setup
):
    from gateway.http import ApiError

    a, b = tenants
    async with server.client(a.admin_key) as http_a, server.client(b.admin_key) as http_b:
        assert (await http_a.post("/api/v1/channels", json=telegram())).status_code == 201
        calls_before = len(telegram_setup.calls)
        assert (await http_b.post("/api/v1/channels", json=telegram())).status_code == 409
        # Only the identity check ran for B: no call with a channel id (which would move the webhook).
        assert [c[2] for c in telegram_setup.calls[calls_before:]] == [None]

        async def rejecting(ctx, config, secrets, channel_id):
            if channel_id is not None:
                raise ApiError(422, "invalid_config", "Telegram refused the webhook")
            return await telegram_setup(ctx, config, secrets, channel_id)

        server.ctx.setup_hooks[ChannelType.TELEGRAM] = rejecting
        body = {**telegram(), "secrets": {**TG_SECRETS, "bot_token": "4242:DDD-x"}}
        r = await http_b.post("/api/v1/channels", json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_config"
    assert await pool.fetchval("SELECT count(*) FROM channels WHERE provider_key = '4242'") == 0


async def test_delete_is_soft_and_the_channel_disappears_from_the_api(server, pool, tenants, wakes):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        r = await http.delete(f"/api/v1/channels/{a.channel_id}")
        assert r.status_code == 204
        assert (await http.get(f"/api/v1/channels/{a.channel_id}")).status_code == 404
        assert (await http.delete(f"/api/v1/channels/{a.channel_id}")).status_code == 404
        assert (await http.get("/api/v1/channels")).json()["items"] == []
        # History stays readable.
        assert (await http.get(f"/api/v1/conversations/{a.conversation_id}")).status_code == 200
    assert await pool.fetchval("SELECT deleted_at FROM channels WHERE id = $1", a.channel_id) is not None
    assert wakes.count == 1


async def test_channel_list_pages_walk_every_channel_once(server, pool):
    tenant = await make_tenant(pool, "gamma", "3003", "4915100000003")
    async with server.client(tenant.admin_key) as http:
        for n in range(4):
            assert (await http.post("/api/v1/channels", json=whatsapp(f"90{n}"))).status_code == 201
        seen, cursor = [], None
        while True:
            r = await http.get("/api/v1/channels", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            body = r.json()
            seen += [c["id"] for c in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == 5 and len(set(seen)) == 5 and seen == sorted(seen)
    json.dumps(seen)
