"""Property tests: concurrent calls never mix, and the codec round-trips what Asterisk sends."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.asterisk.codec import iter_messages, parse_block, render, split_stream
from channels.asterisk.config import unescape
from tests.asterisk.helpers import events_of, replay

T = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
TRACES = ["inbound_answered.ami", "blind_transfer.ami", "recorded_call.ami", "inbound_noanswer.ami"]
SOLO = {name: replay(events_of(name), start=T).final() for name in TRACES}


@st.composite
def interleaving(draw: st.DrawFn) -> tuple[list[str], list[dict[str, str]]]:
    """Two traces, their events merged in a random order that keeps each trace's own order."""
    names = draw(st.lists(st.sampled_from(TRACES), min_size=2, max_size=2, unique=True))
    queues = [list(events_of(n)) for n in names]
    merged: list[dict[str, str]] = []
    while any(queues):
        choices = [i for i, q in enumerate(queues) if q]
        i = draw(st.sampled_from(choices))
        merged.append(queues[i].pop(0))
    return names, merged


@settings(max_examples=60, deadline=None)
@given(interleaving())
def test_two_concurrent_calls_never_mix_their_channels(case):
    names, merged = case
    together = replay(merged, start=T).final()
    expected = {k: v for name in names for k, v in SOLO[name].items()}
    assert together.keys() == expected.keys()
    for linkedid, call in together.items():
        assert call == expected[linkedid], linkedid


def _ami_value() -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\r\n"), max_size=30).map(
        str.strip
    )


# panoramisk URL-unquotes ``Result`` and keeps a response body under ``content``: not plain headers.
_keys = st.from_regex(r"[A-Z][A-Za-z0-9\-]{0,15}", fullmatch=True).filter(
    lambda k: k.lower() not in ("result", "content")
)


@given(st.dictionaries(_keys, _ami_value(), min_size=1, max_size=8).map(lambda d: {"Event": "X", **d}))
def test_render_then_parse_gives_back_every_header(fields):
    parsed = parse_block(render(fields).decode())
    assert parsed == {k.lower(): v for k, v in fields.items()}


@given(st.lists(st.integers(min_value=1, max_value=400), max_size=6))
def test_a_stream_cut_anywhere_parses_to_the_same_messages(cuts):
    text = "Asterisk Call Manager/9.0.0\r\n" + "".join(
        render({"Event": "Newstate", "Uniqueid": f"1741.{i}", "Channel": f"PJSIP/1001-{i}"}).decode()
        for i in range(5)
    )
    buffer, got = "", []
    pos = 0
    for cut in [*sorted(cuts), len(text)]:
        buffer += text[pos:cut]
        pos = max(pos, cut)
        blocks, buffer = split_stream(buffer)
        got += [m for b in blocks if (m := parse_block(b)) is not None]
    assert got == list(iter_messages(text))
    assert [m["uniqueid"] for m in got] == [f"1741.{i}" for i in range(5)]


@given(st.text(max_size=40))
def test_unescape_undoes_backslash_escaping(name):
    escaped = name.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
    assert unescape(escaped) == name


ALL_EVENTS = [e for name in [*TRACES, "reconnect_midcall.ami"] for e in events_of(name)]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(range(len(ALL_EVENTS))), max_size=120))
def test_any_jumble_of_lost_repeated_or_reordered_events_never_breaks_the_tracker(picks):
    """A stream we did not expect (missed or repeated events) must not stop the channel."""
    r = replay([ALL_EVENTS[i] for i in picks], start=T)
    for call in r.snapshots:
        assert isinstance(call.external_id, str)
        if call.status == "ended":
            assert call.ended_at is not None and call.disposition is not None
            assert 0 <= (call.billsec or 0) <= (call.duration or 0)
        else:
            assert call.ended_at is None and call.disposition is None
        if call.disposition == "answered":
            assert call.agent is not None and call.answered_at is not None
        keys = [e.key for e in call.events]
        assert len(keys) == len(set(keys))
