"""The demo's customers: conversations in order, no sentence twice in a row, playable media (pure, no I/O)."""

from __future__ import annotations

import io
import itertools
import random
import wave

from gateway.demo_media import SAMPLE_RATE, parcel_png, voice_wav
from gateway.demo_script import TELEGRAM, WHATSAPP, Conversations


def test_each_customer_plays_their_topics_in_order_and_never_says_the_same_thing_twice_in_a_row():
    for customers in (WHATSAPP, TELEGRAM):
        conversations = Conversations(customers)
        rng = random.Random(7)
        said: dict[str, list[str]] = {}
        turns = sum(len(t) for c in customers for t in c.topics)
        for _ in range(turns * 3):  # every topic at least once, whatever topic each customer started at
            customer, turn = conversations.next_turn(rng)
            said.setdefault(customer.id, []).append(f"{turn.kind}:{turn.text}")
        for customer in customers:
            lines = said[customer.id]
            assert all(a != b for a, b in itertools.pairwise(lines)), lines
            # Topics are played whole and in order, one after the other (the last one may be unfinished).
            topics = [[f"{t.kind}:{t.text}" for t in topic] for topic in customer.topics]
            at = 0
            while at < len(lines):
                topic = next((t for t in topics if lines[at:at + len(t)] == t[:len(lines) - at]), None)
                assert topic is not None, lines[at:]
                at += len(topic)


def test_the_generated_audio_and_photo_are_real_files():
    with wave.open(io.BytesIO(voice_wav(2.0, seed=3)), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        assert wav.getnframes() == 2 * SAMPLE_RATE
    assert voice_wav(2.0, seed=3) != voice_wav(2.0, seed=4)
    png = parcel_png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")
