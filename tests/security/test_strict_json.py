"""``schema.strict_json``: the one decoder every entry point uses. Pure: no gateway needed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schema import strict_json
from tests.security import strategies as hs

FAST = settings(max_examples=200, deadline=None, database=None)

_finite_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@FAST
@given(text=st.one_of(hs.json_values(), st.text(st.characters(exclude_categories=()))))
def test_anything_decodes_or_is_rejected_never_another_error(text: str):
    try:
        strict_json.loads(text)
    except strict_json.JsonRejected as exc:
        assert str(exc)
        str(exc).encode("utf-8")  # the reason never quotes unencodable input


@FAST
@given(data=st.binary(max_size=200))
def test_any_bytes_decode_or_are_rejected(data: bytes):
    try:
        value = strict_json.loads(data)
    except strict_json.JsonRejected:
        return
    assert value == json.loads(data)  # what is accepted means what JSON says


@FAST
@given(value=_finite_json)
def test_ordinary_json_decodes_as_the_standard_library_does(value: object):
    text = json.dumps(value)
    assert strict_json.loads(text) == json.loads(text)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "9223372036854775808",
                                     "-9223372036854775809", "9" * 4301, "1" * 100_000])
def test_numbers_no_column_can_hold_are_rejected(literal: str):
    with pytest.raises(strict_json.NumberRejected):
        strict_json.loads(f'{{"n": [{literal}]}}')


def test_int64_bounds_are_kept():
    assert strict_json.loads("[9223372036854775807, -9223372036854775808, 1e308]") == [2**63 - 1, -(2**63), 1e308]


def test_nesting_is_capped_at_64_levels():
    assert strict_json.loads("[" * 64 + "]" * 64) is not None
    for deep in ("[" * 65 + "]" * 65, '{"a":' * 65 + "1" + "}" * 65, "[" * 1_000_000 + "]" * 1_000_000):
        with pytest.raises(strict_json.JsonRejected, match="nesting"):
            strict_json.loads(deep)


@pytest.mark.parametrize("value", ["a\x00", {"\ud800": 1}, [{"k": ["\udfff"]}], {"k\x00": 1}])
def test_unstorable_text_is_found_in_keys_and_values(value: object):
    assert strict_json.unstorable(value) is not None
    assert strict_json.unstorable({"fine": ["text", 1, None, {"é": "😀"}]}) is None


def test_safe_text_can_always_be_encoded():
    assert strict_json.safe_text("a\x00b\ud800").encode("utf-8") == b"a\\u0000b\\ud800"


@pytest.mark.parametrize("moment", [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=14))),
    datetime(2026, 1, 1),  # no time zone
])
def test_times_off_the_calendar_in_utc_are_none(moment: datetime):
    assert strict_json.utc_or_none(moment) is None


def test_times_in_range_come_back_in_utc():
    moment = datetime(1, 1, 1, tzinfo=timezone(-timedelta(hours=14)))
    assert strict_json.utc_or_none(moment) == datetime(1, 1, 1, 14, tzinfo=UTC)
