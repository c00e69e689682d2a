from __future__ import annotations

import json

import pytest

from channels.whatsapp.verify import SIGNATURE_HEADER, sign
from tests.server import run_server
from tests.whatsapp.fixtures import PEERS, body, raw, with_phone_number_id
from tests.whatsapp.helpers import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    echo,
    make_whatsapp_channel,
    message_by_external_id,
    post_signed,
    row_counts,
)

SIGNED_SIGNATURE = "sha256=e34b899ea9ebd9f5771b21fc5bd201d5ba1cf64fa8bbfa03539825239342a01f"
OUR_FIRST_REPLY = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFG91dC0wMDAxRUFEMDY1RDI2OUY5AA=="


@pytest.fixture
async def server(db_url):
    # No background workers: these tests look at what the webhook alone commits.
    async with run_server(db_url, gateway_workers=False) as srv:
        yield srv


@pytest.fixture
async def channel(server):
    return await make_whatsapp_channel(server.ctx.pool)


@pytest.fixture
async def http(server):
    async with server.client() as client:
        yield client


async def test_the_subscription_handshake_echoes_the_challenge_as_text(http, channel):
    params = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN}
    ok = await http.get(f"/webhooks/whatsapp/{channel.channel_id}", params=params)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/plain")
    assert ok.text == "1158201444"
    wrong = await http.get(f"/webhooks/whatsapp/{channel.channel_id}", params={**params, "hub.verify_token": "x"})
    assert wrong.status_code == 403
    unknown = await http.get("/webhooks/whatsapp/999999", params=params)
    assert unknown.status_code == 404


async def test_the_signed_fixture_is_accepted_over_its_exact_bytes(server, http, channel):
    response = await http.post(f"/webhooks/whatsapp/{channel.channel_id}", content=raw("signed/text_body.raw"),
                               headers={SIGNATURE_HEADER: SIGNED_SIGNATURE})
    assert response.status_code == 200, response.text
    wamid = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFC1pbi0wMDEyNTg1MEUyMEVEQjE1AA=="
    msg = await message_by_external_id(server.ctx.pool, wamid)
    assert msg is not None and msg["text"] == "Grüße aus Köln – 10/10 👍"
    stored = await server.ctx.pool.fetchval("SELECT payload FROM inbound_events")
    assert stored.encode() == raw("signed/text_body.raw")  # kept verbatim


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: "sha256=" + "0" * 64},
        {SIGNATURE_HEADER: sign(raw("signed/text_body.raw"), "another app's secret")},
        {SIGNATURE_HEADER: "garbage \xfc".encode("latin-1")},
    ],
    ids=["missing", "zeros", "other-secret", "garbage"],
)
async def test_a_missing_or_wrong_signature_is_401_and_changes_nothing(server, http, channel, headers):
    before = await row_counts(server.ctx.pool)
    response = await http.post(f"/webhooks/whatsapp/{channel.channel_id}", content=raw("signed/text_body.raw"),
                               headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await row_counts(server.ctx.pool) == before


async def test_a_body_re_serialised_by_a_client_no_longer_verifies(server, http, channel):
    before = await row_counts(server.ctx.pool)
    reserialised = json.dumps(json.loads(raw("signed/text_body.raw")), ensure_ascii=False).encode()
    response = await http.post(f"/webhooks/whatsapp/{channel.channel_id}", content=reserialised,
                               headers={SIGNATURE_HEADER: SIGNED_SIGNATURE})
    assert response.status_code == 401
    assert await row_counts(server.ctx.pool) == before


async def test_malformed_oversized_and_misaddressed_posts_are_refused_without_a_trace(server, http, channel):
    before = await row_counts(server.ctx.pool)
    assert (await post_signed(http, channel.channel_id, b'{"object": ')).status_code == 400
    assert (await post_signed(http, channel.channel_id, b"[NaN]")).status_code == 400
    too_big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert (await post_signed(http, channel.channel_id, too_big)).status_code == 413
    assert (await post_signed(http, 999999, raw("text.json"))).status_code == 404
    assert (await post_signed(http, "not-a-number", raw("text.json"))).status_code == 404
    assert (await post_signed(http, 2**70, raw("text.json"))).status_code == 404
    assert await row_counts(server.ctx.pool) == before


async def test_a_telegram_channel_id_is_not_a_whatsapp_webhook(server, http, channel):
    telegram_id = await server.ctx.pool.fetchval(
        "INSERT INTO channels (account_id, type, name) VALUES ($1, 'telegram', 'bot') RETURNING id",
        channel.account_id)
    assert (await post_signed(http, telegram_id, raw("text.json"))).status_code == 404


async def test_a_redelivered_body_is_acknowledged_and_creates_nothing(server, http, channel):
    first = await post_signed(http, channel.channel_id, raw("text.json"))
    assert first.status_code == 200 and first.json()["status"] == "processed"
    before = await row_counts(server.ctx.pool)
    again = await post_signed(http, channel.channel_id, raw("text.json"))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert await row_counts(server.ctx.pool) == before


async def test_every_own_message_fixture_becomes_the_expected_message(server, http, channel):
    pool = server.ctx.pool
    expected = {
        "text.json": ("text", "Hallo, ist meine Bestellung 4711 schon unterwegs?", 0),
        "image.json": ("image", "Foto vom beschädigten Paket", 1),
        "document.json": ("document", "Rechnung", 1),
        "voice.json": ("audio", None, 1),
        "location.json": ("location", "Packstation 112", 0),
        "interactive_button_reply.json": ("interactive", "Sehr gut", 0),
        "button_template_reply.json": ("interactive", "Bestätigen", 0),
        "unsupported.json": ("unsupported", None, 0),
        "reply_with_context.json": ("text", "Ja, DHL passt. Danke!", 0),
    }
    for name, (kind, text, media) in expected.items():
        response = await post_signed(http, channel.channel_id, raw(name))
        assert response.status_code == 200 and response.json()["status"] == "processed", (name, response.text)
        wamid = body(name)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        msg = await message_by_external_id(pool, wamid)
        assert msg is not None, name
        assert (msg["type"], msg["text"], msg["direction"], msg["status"]) == (kind, text, "inbound", "received")
        count = await pool.fetchval("SELECT count(*) FROM message_media WHERE message_id = $1", msg["id"])
        assert count == media, name
    # One contact (keyed on her user id, with the profile name, her wa_id kept as a second
    # identity), one open conversation for all of it.
    contacts = await pool.fetch("SELECT c.name, c.phone, i.external_id FROM contacts c "
                                "JOIN contact_identities i ON i.contact_id = c.id ORDER BY i.id")
    assert [tuple(r) for r in contacts] == [("Lena Fischer", "+4915112345678", "DE.2384756109283746"),
                                            ("Lena Fischer", "+4915112345678", "4915112345678")]
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 1
    image = await pool.fetchrow("SELECT * FROM media_files WHERE provider_id = '1123581321345589'")
    assert image["status"] == "pending"
    assert image["expected_sha256"] == "ebd2677a4c5bb34515a2eafb6e2dbac4790f1e0c66a46383411c0d7b9f0ef25d"


async def test_statuses_before_the_message_are_kept_then_applied_forward_only(server, http, channel):
    pool = server.ctx.pool
    for name in ("status_read.json", "status_sent.json"):
        assert (await post_signed(http, channel.channel_id, raw(name))).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM pending_updates") == 2
    # Our reply appears (an echo of the business-side send); the parked statuses land on it.
    assert (await post_signed(http, channel.channel_id, echo(OUR_FIRST_REPLY, "Ja, DHL."))).status_code == 200
    assert (await post_signed(http, channel.channel_id, raw("status_delivered.json"))).status_code == 200
    msg = await message_by_external_id(pool, OUR_FIRST_REPLY)
    assert msg["direction"] == "outbound"
    assert msg["status"] == "read"
    assert msg["delivered_at"] is not None and msg["read_at"] is not None
    assert msg["read_at"].timestamp() == 1741952095
    assert await pool.fetchval("SELECT count(*) FROM pending_updates") == 0


async def test_a_failed_status_keeps_the_code_and_reason(server, http, channel):
    failed_wamid = body("status_failed.json")["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    await post_signed(http, channel.channel_id, echo(failed_wamid, "Noch Fragen?"))
    assert (await post_signed(http, channel.channel_id, raw("status_failed.json"))).status_code == 200
    msg = await message_by_external_id(server.ctx.pool, failed_wamid)
    assert msg["status"] == "failed"
    assert msg["error_code"] == "131047"
    assert msg["error_message"].startswith("Re-engagement message")


async def test_reactions_and_replies_attach_to_the_target_message(server, http, channel):
    pool = server.ctx.pool
    await post_signed(http, channel.channel_id, echo(OUR_FIRST_REPLY, "Ja, DHL."))
    await post_signed(http, channel.channel_id, raw("reaction.json"))
    target = await message_by_external_id(pool, OUR_FIRST_REPLY)
    assert [(r["emoji"], r["from"]) for r in target["reactions"]] == [("👍", "DE.2384756109283746")]
    await post_signed(http, channel.channel_id, raw("reaction_removed.json"))
    assert (await message_by_external_id(pool, OUR_FIRST_REPLY))["reactions"] == []
    await post_signed(http, channel.channel_id, raw("reply_with_context.json"))
    reply = await message_by_external_id(pool, "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFC1pbi0wMDA4MjU0MTk4OUQ1M0YxAA==")
    assert reply["reply_to_id"] == target["id"]
    # Reactions are updates of the target, not messages of their own.
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2


async def test_the_out_of_order_batch_ends_in_the_right_states_and_its_redelivered_copy_adds_nothing(
        server, http, channel):
    pool = server.ctx.pool
    joao = {"to": "5511987654321", "to_user_id": "BR.9182736450918273"}
    first_reply = "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFG91dC0wMDAyRUExRjUwREM3NUNDAA=="
    second_reply = "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFG91dC0wMDAzNzdEN0MwQkM3MDA3AA=="
    await post_signed(http, channel.channel_id, raw("text.json"))
    await post_signed(http, channel.channel_id, echo(first_reply, "Olá!", timestamp="1741952380", **joao))
    await post_signed(http, channel.channel_id, echo(second_reply, "Tudo bem?", timestamp="1741952399", **joao))

    response = await post_signed(http, channel.channel_id, raw("out_of_order_batch.json"))
    assert response.status_code == 200 and response.json()["status"] == "processed"

    read = await message_by_external_id(pool, first_reply)
    assert read["status"] == "read"  # read arrived before delivered: never moved back
    assert read["delivered_at"].timestamp() == 1741952385 and read["read_at"].timestamp() == 1741952390
    assert (await message_by_external_id(pool, second_reply))["status"] == "sent"
    texts = await pool.fetch(
        """SELECT m.text FROM messages m JOIN conversations c ON c.id = m.conversation_id
           JOIN contact_identities i ON i.contact_id = c.contact_id
           WHERE i.external_id = 'BR.9182736450918273' AND m.direction = 'inbound' ORDER BY m.created_at""")
    assert [r["text"] for r in texts] == ["primeira mensagem", "segunda mensagem"]
    lena_text = body("text.json")["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE external_id = $1", lena_text) == 1
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 2

    before = await row_counts(pool)
    again = await post_signed(http, channel.channel_id, raw("out_of_order_batch.json"))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert await row_counts(pool) == before


def _own_ids(example: dict, tag: str) -> dict:
    """The pywa examples reuse one wamid for many messages: give each its own, or later ones are duplicates."""
    for entry in example.get("entry", []):
        for change in entry.get("changes", []):
            for key in ("messages", "message_echoes"):
                for msg in change.get("value", {}).get(key, []):
                    if msg.get("type") not in ("reaction", "edit", "revoke"):
                        msg["id"] = f"{msg['id']}.{tag}"
    return example


async def test_every_peer_example_is_processed_or_ignored_never_dead_lettered(server, http, channel):
    pool = server.ctx.pool
    ignored_files = {"account_update.json", "call_connect.json", "call_status.json", "call_terminate.json",
                     "call_permission_update.json", "system.json", "template_category_update.json",
                     "template_components_update.json", "template_quality_update.json",
                     "template_status_update.json", "user_marketing_preferences.json"}
    for path in sorted(PEERS.glob("*.json")):
        for name, example in json.loads(path.read_text()).items():
            data = _own_ids(with_phone_number_id(example, PHONE_NUMBER_ID), f"{path.stem}.{name}")
            response = await post_signed(http, channel.channel_id, data)
            assert response.status_code == 200, (path.name, name, response.text)
            # A changed number is applied to the contact (if we know it): processed, not a message.
            changes_identity = (path.name, name) == ("system.json", "phone_number_change")
            expected = "ignored" if path.name in ignored_files and not changes_identity else "processed"
            assert response.json()["status"] == expected, (path.name, name, response.text)
    assert await pool.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'failed'") == 0
    types = {r["external_id"].split(".", 2)[-1]: r["type"] for r in await pool.fetch(
        "SELECT external_id, type FROM messages WHERE external_id LIKE 'wamid.%'")}
    assert types["message.video"] == "video"
    assert types["message.static_sticker"] == types["message.animated_sticker"] == "sticker"
    assert types["message.contacts"] == "contacts"
    assert types["message.voice"] == types["message.audio"] == "audio"
    assert types["message.chosen_location"] == "location"
    assert types["callback_selection.callback"] == types["callback_button.quick_reply"] == "interactive"
    assert types["flow_completion.completion"] == "interactive"
    assert types["message.order"] == types["message.unsupported_with_type"] == "unsupported"
    with_url = await pool.fetchval("SELECT source_url FROM media_files WHERE source_url IS NOT NULL")
    assert with_url.startswith("https://lookaside.fbsbx.com/")
    # Reactions, edits and revokes of messages we never saw are kept for when they appear, not dropped.
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE text = 'Updated image caption'") == 0
    parked = {r["kind"] for r in await pool.fetch("SELECT event->>'kind' AS kind FROM pending_updates")}
    assert {"reaction", "edit", "delete", "status"} <= parked
    echoed = await pool.fetchrow("SELECT * FROM messages WHERE text = 'Test message'")
    assert echoed["direction"] == "outbound" and echoed["status"] == "sent"


async def test_changes_route_by_phone_number_and_an_unknown_number_is_a_dead_letter(server, http, channel):
    pool = server.ctx.pool
    second = await make_whatsapp_channel(pool, phone_number_id="220000000000002",
                                         account=(channel.account_id, channel.api_key))
    # One app posts every number to one URL: the body for the second number arrives on the first's URL.
    routed = await post_signed(http, channel.channel_id, with_phone_number_id(body("text.json"), "220000000000002"))
    assert routed.status_code == 200 and routed.json()["status"] == "processed"
    assert (await pool.fetchval("SELECT channel_id FROM messages")) == second.channel_id
    stranger = await post_signed(http, channel.channel_id, with_phone_number_id(body("image.json"), "999"))
    assert stranger.status_code == 200 and stranger.json()["status"] == "failed"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_a_body_that_authenticates_but_cannot_be_normalised_is_a_dead_letter(server, http, channel):
    weird = {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
                                                                            "value": {"messages": [{}]}}]}]}
    response = await post_signed(http, channel.channel_id, weird)
    assert response.status_code == 200 and response.json()["status"] == "failed"
    row = await server.ctx.pool.fetchrow("SELECT status, error, payload FROM inbound_events")
    assert row["status"] == "failed" and row["error"]
    assert json.loads(row["payload"]) == weird


async def test_the_app_secret_of_the_url_channel_decides(server, http, channel):
    other = await make_whatsapp_channel(server.ctx.pool, phone_number_id="330000000000003",
                                        app_secret="other-secret", name="other")
    before = await row_counts(server.ctx.pool)
    response = await post_signed(http, other.channel_id, raw("text.json"), secret=APP_SECRET)
    assert response.status_code == 401
    assert await row_counts(server.ctx.pool) == before
