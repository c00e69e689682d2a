"""Forward-only statuses, as a property: no order of arrival moves a message backwards."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from inbox.status import next_status
from schema.enums import STATUS_RANK, MessageStatus

OUTBOUND = [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PLAYED]


@given(st.lists(st.sampled_from(OUTBOUND), max_size=12))
def test_the_final_status_is_the_highest_one_received_whatever_the_order(arrivals):
    status = MessageStatus.PENDING
    seen = [status]
    for incoming in arrivals:
        status = next_status(status, incoming)
        seen.append(status)
    assert [STATUS_RANK[s] for s in seen] == sorted(STATUS_RANK[s] for s in seen)
    assert status == max([MessageStatus.PENDING, *arrivals], key=STATUS_RANK.__getitem__)


@given(st.lists(st.sampled_from(list(MessageStatus)), max_size=12))
def test_received_and_failed_are_terminal(arrivals):
    for start in (MessageStatus.RECEIVED, MessageStatus.FAILED):
        status = start
        for incoming in arrivals:
            status = next_status(status, incoming)
        assert status == start


def test_played_ranks_after_read_and_failed_only_before_delivery():
    assert next_status(MessageStatus.READ, MessageStatus.PLAYED) == MessageStatus.PLAYED
    assert next_status(MessageStatus.SENT, MessageStatus.FAILED) == MessageStatus.FAILED
    assert next_status(MessageStatus.DELIVERED, MessageStatus.FAILED) == MessageStatus.DELIVERED
