"""Group commit through real HTTP: concurrent webhooks share transactions, each is answered for itself."""

from __future__ import annotations

import asyncio
import copy
import random

from gateway.broker import InProcessBroker
from tests.server import run_server
from tests.whatsapp.fixtures import body
from tests.whatsapp.helpers import compact, make_whatsapp_channel, post_signed


class RecordingBroker(InProcessBroker):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[int, int]] = []

    async def publish(self, events) -> None:
        self.published += [(e.account_id, e.seq) for e in events]
        await super().publish(events)


def _text(n: int, phone_number_id: str | None = None) -> bytes:
    data = copy.deepcopy(body("text.json"))
    value = data["entry"][0]["changes"][0]["value"]
    contact = f"49151000{n % 6:04d}"  # six contacts: several messages share a conversation
    value["contacts"][0]["wa_id"] = contact
    value["contacts"][0].pop("user_id", None)
    message = value["messages"][0]
    message.update({"from": contact, "id": f"wamid.group-commit-{n}", "text": {"body": f"message {n}"}})
    message.pop("from_user_id", None)
    if phone_number_id is not None:
        value["metadata"]["phone_number_id"] = phone_number_id
    return compact(data)


async def test_64_concurrent_webhooks_with_duplicates_and_malformed_ones_are_each_answered_and_stored_once(
    db_url, pool
):
    channel = await make_whatsapp_channel(pool)
    unique = [_text(n) for n in range(36)]
    duplicates = unique[:12]  # the same bytes posted twice at once
    not_json = [b'{"object": "whatsapp_business_account", ' + str(n).encode() for n in range(6)]
    unparsable = [compact({"object": "instagram", "n": n}) for n in range(5)]
    unroutable = [_text(100 + n, phone_number_id="999999999999") for n in range(5)]
    posts = [("unique", b) for b in unique] + [("duplicate", b) for b in duplicates]
    posts += [("not_json", b) for b in not_json] + [("unparsable", b) for b in unparsable]
    posts += [("unroutable", b) for b in unroutable]
    assert len(posts) == 64
    random.Random(11).shuffle(posts)

    broker = RecordingBroker()
    async with run_server(db_url, gateway_workers=False, broker=broker) as srv, srv.client() as http:
        responses = await asyncio.gather(*(post_signed(http, channel.channel_id, raw) for _, raw in posts))
        batcher = srv.app.state.ctx.extras["group_commit"]
        assert batcher.items == 64 - len(not_json)  # every stored-or-refused-by-ingest post went through it

    answers: dict[bytes, list[str]] = {}
    for (kind, raw), response in zip(posts, responses, strict=True):
        if kind == "not_json":
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "malformed_json"
            continue
        assert response.status_code == 200, response.text
        answers.setdefault(raw, []).append(response.json()["status"])
    for raw in unique:
        expected = ["duplicate", "processed"] if raw in duplicates else ["processed"]
        assert sorted(answers[raw]) == expected
    for raw in unparsable + unroutable:
        assert answers[raw] == ["failed"]

    rows = await pool.fetch("SELECT status, count(*) AS n FROM inbound_events GROUP BY status")
    assert {r["status"]: r["n"] for r in rows} == {"processed": 36, "failed": 10}
    assert await pool.fetchval("SELECT count(*) FROM messages") == 36
    assert await pool.fetchval("SELECT count(DISTINCT external_id) FROM messages") == 36
    assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'message.created'") == 36
    assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'conversation.created'") == 6
    seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    assert await pool.fetchval("SELECT last_seq FROM accounts WHERE id = $1", channel.account_id) == len(seqs)
    # Every committed event was published once, in seq order.
    assert broker.published == [(channel.account_id, s) for s in seqs]
