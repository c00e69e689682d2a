"""GET /ws against one real uvicorn server: auth, frames, topics, replay, gap filling."""

from __future__ import annotations

import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from gateway.pipeline import apply_and_publish
from schema.enums import EventName
from tests.server import run_server
from tests.ws.helpers import inbound_text, make_account, make_channel, seqs, write_events, ws_connect


@pytest.fixture
async def server(db_url):
    async with run_server(db_url) as srv:
        yield srv


async def test_a_bad_token_is_closed_with_4401(server):
    for token in ("igw_not-a-key", None):
        async with ws_connect(server.ws_url, token) as client:
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd.code == 4401


async def test_the_api_key_is_accepted_in_the_authorization_header(server):
    _, key = await make_account(server.ctx.pool)
    url = f"{server.ws_url}/ws"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as conn:
        await conn.send(json.dumps({"type": "ping"}))
        assert json.loads(await conn.recv()) == {"type": "pong"}


async def test_subscribed_reports_the_latest_seq_and_zero_for_a_new_account(server):
    pool = server.ctx.pool
    account_id, key = await make_account(pool)
    async with ws_connect(server.ws_url, key) as client:
        assert await client.subscribe(["account"]) == {"type": "subscribed", "topics": ["account"], "seq": 0}
    await write_events(pool, account_id, 3)
    async with ws_connect(server.ws_url, key) as client:
        assert (await client.subscribe(["account", "calls"]))["seq"] == 3


async def test_unknown_or_malformed_frames_get_an_error_and_the_socket_stays_open(server):
    _, key = await make_account(server.ctx.pool)
    bad = {
        "not json": "malformed_frame",
        "[1, 2]": "malformed_frame",
        '{"type": "dance"}': "unknown_type",
        '{"no": "type"}': "unknown_type",
        '{"type": "subscribe"}': "invalid_frame",
        '{"type": "subscribe", "topics": []}': "invalid_frame",
        '{"type": "subscribe", "topics": ["account"], "after": -1}': "invalid_frame",
        '{"type": "subscribe", "topics": ["account"], "after": "5"}': "invalid_frame",
        '{"type": "subscribe", "topics": ["everything"]}': "invalid_topic",
        '{"type": "subscribe", "topics": ["conversation:abc"]}': "invalid_topic",
        '{"type": "ping", "extra": 1}': "invalid_frame",
    }
    async with ws_connect(server.ws_url, key) as client:
        for text, code in bad.items():
            await client.send(text)
            frame = await client.recv()
            assert frame["type"] == "error" and frame["code"] == code, (text, frame)
            assert frame["message"]
        await client.conn.send(b"\x00binary")
        assert (await client.recv())["code"] == "malformed_frame"
        await client.send({"type": "ping"})
        assert await client.recv() == {"type": "pong"}
        # Over 64 KiB the server itself refuses the frame, before buffering it: 1009 (message too big).
        await client.send('{"type": "ping", "pad": "' + "x" * 70_000 + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_account_topic_streams_live_events_with_the_event_log_shape(server):
    pool = server.ctx.pool
    account_id, key = await make_account(pool)
    async with ws_connect(server.ws_url, key) as client:
        await client.subscribe(["account"])
        records = await write_events(pool, account_id, 5, broker=server.ctx.broker)
        frames = await client.events_until(5)
    assert frames == [json.loads(json.dumps(r.to_json())) for r in records]
    assert set(frames[0]) == {"type", "seq", "event", "account_id", "conversation_id", "data", "ts"}


async def test_after_replays_the_log_then_continues_live_without_gap_or_duplicate(server):
    pool = server.ctx.pool
    account_id, key = await make_account(pool)
    await write_events(pool, account_id, 1200, per_tx=100)
    async with ws_connect(server.ws_url, key) as client:
        subscribed = await client.subscribe(["account"], after=7)
        assert subscribed["seq"] == 1200
        await write_events(pool, account_id, 10, broker=server.ctx.broker)
        frames = await client.events_until(1210)
    assert seqs(frames) == list(range(8, 1211))


async def test_an_event_committed_but_never_published_is_filled_from_the_log(server):
    """A writer that crashed between commit and publish leaves a gap the next event reveals."""
    pool = server.ctx.pool
    account_id, key = await make_account(pool)
    async with ws_connect(server.ws_url, key) as client:
        await client.subscribe(["account"])
        await write_events(pool, account_id, 2)  # committed, never published
        await write_events(pool, account_id, 1, broker=server.ctx.broker)
        assert seqs(await client.events_until(3)) == [1, 2, 3]


async def test_a_trailing_unpublished_event_arrives_through_the_periodic_check(server):
    pool = server.ctx.pool
    account_id, key = await make_account(pool)
    async with ws_connect(server.ws_url, key) as client:
        await client.subscribe(["account"])
        await write_events(pool, account_id, 1)  # nothing after it will reveal the gap
        assert seqs(await client.events_until(1)) == [1]


async def test_conversation_and_calls_topics_receive_only_their_events(server):
    pool, broker = server.ctx.pool, server.ctx.broker
    account_id, key = await make_account(pool)
    channel = await make_channel(pool, account_id)
    records = await apply_and_publish(server.ctx, channel=channel, events=[inbound_text("wamid.a", "4915100000001")])
    conversation_id = records[0].conversation_id
    assert conversation_id is not None
    async with ws_connect(server.ws_url, key) as convo, ws_connect(server.ws_url, key) as calls:
        await convo.subscribe([f"conversation:{conversation_id}"])
        await calls.subscribe(["calls"])
        # Another conversation's message, a call event, then this conversation's message.
        await apply_and_publish(server.ctx, channel=channel, events=[inbound_text("wamid.b", "4915100000002")])
        [call] = await write_events(pool, account_id, 1, broker=broker, name=EventName.CALL_CREATED)
        mine = await apply_and_publish(
            server.ctx, channel=channel, events=[inbound_text("wamid.c", "4915100000001", "again")]
        )
        convo_frames = await convo.events_until(mine[-1].seq)
        assert {f["conversation_id"] for f in convo_frames} == {conversation_id}
        assert [f["seq"] for f in convo_frames] == [r.seq for r in mine if r.conversation_id == conversation_id]
        assert any(f["event"] == "message.created" and f["data"]["text"] == "again" for f in convo_frames)
        assert seqs(await calls.events_until(call.seq)) == [call.seq]
        assert await calls.silent_for(1.5)


async def test_another_accounts_conversation_gets_an_error_frame_and_zero_events(server):
    pool, broker = server.ctx.pool, server.ctx.broker
    owner_id, _ = await make_account(pool, "owner")
    channel = await make_channel(pool, owner_id)
    records = await apply_and_publish(server.ctx, channel=channel, events=[inbound_text("wamid.x", "4915100000009")])
    foreign_conversation = records[0].conversation_id
    _, intruder_key = await make_account(pool, "intruder")
    async with ws_connect(server.ws_url, intruder_key) as client:
        for topics in ([f"conversation:{foreign_conversation}"], ["account", f"conversation:{foreign_conversation}"]):
            await client.send({"type": "subscribe", "topics": topics, "after": 0})
            frame = await client.recv()
            assert frame["type"] == "error" and frame["code"] == "not_found", frame
        await client.send({"type": "subscribe", "topics": ["conversation:999999"]})
        assert (await client.recv())["code"] == "not_found"  # the same answer as for a foreign id
        await write_events(pool, owner_id, 3, broker=broker, conversation_id=foreign_conversation)
        await apply_and_publish(server.ctx, channel=channel, events=[inbound_text("wamid.y", "4915100000009")])
        await client.send({"type": "ping"})
        assert await client.recv() == {"type": "pong"}
        assert await client.silent_for(1.5)


async def test_unsubscribe_stops_events_and_answers_with_the_remaining_topics(server):
    pool, broker = server.ctx.pool, server.ctx.broker
    account_id, key = await make_account(pool)
    async with ws_connect(server.ws_url, key) as client:
        await client.subscribe(["account", "calls"])
        await client.send({"type": "unsubscribe", "topics": ["account"]})
        assert await client.recv() == {"type": "subscribed", "topics": ["calls"], "seq": 0}
        await write_events(pool, account_id, 2, broker=broker)  # not calls
        [call] = await write_events(pool, account_id, 1, broker=broker, name=EventName.CALL_ENDED)
        assert seqs(await client.events_until(call.seq)) == [3]
        await client.send({"type": "unsubscribe", "topics": ["calls"]})
        assert (await client.recv())["topics"] == []
        await write_events(pool, account_id, 1, broker=broker, name=EventName.CALL_ENDED)
        assert await client.silent_for(1.5)


async def test_after_on_a_streaming_connection_is_refused_and_changes_nothing(server):
    pool, broker = server.ctx.pool, server.ctx.broker
    account_id, key = await make_account(pool)
    async with ws_connect(server.ws_url, key) as client:
        await client.subscribe(["calls"])
        await client.send({"type": "subscribe", "topics": ["account"], "after": 0})
        assert (await client.recv())["code"] == "already_streaming"
        await write_events(pool, account_id, 1, broker=broker)
        assert await client.silent_for(1.5)
        # Without after, a topic joins at the connection's position.
        assert (await client.subscribe(["account"]))["topics"] == ["calls", "account"]
        await write_events(pool, account_id, 1, broker=broker)
        assert seqs(await client.events_until(2)) == [2]


async def test_after_beyond_the_latest_seq_is_treated_as_the_latest(server):
    pool, broker = server.ctx.pool, server.ctx.broker
    account_id, key = await make_account(pool)
    await write_events(pool, account_id, 2)
    async with ws_connect(server.ws_url, key) as client:
        await client.subscribe(["account"], after=50)
        await write_events(pool, account_id, 1, broker=broker)
        assert seqs(await client.events_until(3)) == [3]
