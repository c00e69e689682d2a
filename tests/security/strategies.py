"""Hypothesis strategies for hostile JSON and hostile request parts.

Everything is produced as text (or bytes) rather than Python values, so that
what Python's own encoder refuses to write (NaN, 5,000-digit integers, lone
surrogates, nesting of 50,000 levels) still reaches the gateway exactly as
an attacker would send it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from urllib.parse import quote

from hypothesis import strategies as st

# Timestamps at and beyond the edges of Python's calendar, with offsets that
# push them over the edge once converted to UTC.
CALENDAR_EDGES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999+00:00",
    "9999-12-31T23:59:59+14:00",
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00",
    "2026-01-01",
    "1970-01-01T00:00:00+00:00",
]

NASTY_STRINGS = ["\ud800", "\udfff", "\x00", "a\x00b", "\ud800\x00", "\x00\ud83d", "\ufeff", "\u202e", "'\"<>&", "%00"]

hostile_str = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(exclude_categories=()), max_size=20),  # includes lone surrogates and NUL
    st.sampled_from(NASTY_STRINGS),
    st.sampled_from(CALENDAR_EDGES),
)

_number_literals = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.integers(min_value=19, max_value=6000).map(lambda n: "9" * n),
    st.integers(min_value=19, max_value=6000).map(lambda n: "-" + "1" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "1E400", "-0", "0.0",
                     "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1" + "0" * 400 + ".5"]),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
)


def json_string(text: str) -> str:
    # ensure_ascii: a lone surrogate or NUL goes out as a \u escape, as an attacker would write it.
    return json.dumps(text)


def scalars(*, huge_strings: bool = True) -> st.SearchStrategy[str]:
    parts = [
        _number_literals,
        st.sampled_from(["true", "false", "null"]),
        hostile_str.map(json_string),
    ]
    if huge_strings:
        parts.append(st.integers(min_value=1_000, max_value=300_000).map(lambda n: json_string("x" * n)))
    return st.one_of(*parts)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: Mapping[str, str]) -> str:
    return "{" + ",".join(f"{json_string(k)}:{v}" for k, v in pairs.items()) + "}"


def deep(max_depth: int = 50_000) -> st.SearchStrategy[str]:
    def nest(n: int) -> st.SearchStrategy[str]:
        return st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, '[{"a":' * n + "[]" + "}]" * n])

    return st.integers(min_value=30, max_value=max_depth).flatmap(nest)


def json_values(*, huge_strings: bool = True, max_depth: int = 50_000) -> st.SearchStrategy[str]:
    """Any JSON-ish document text: edge-case scalars, small containers of them, deep nesting."""
    tree = st.recursive(
        scalars(huge_strings=huge_strings),
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(_array),
            st.dictionaries(hostile_str, children, max_size=4).map(_object),
        ),
        max_leaves=8,
    )
    return st.one_of(tree, deep(max_depth))


not_json = st.one_of(
    st.sampled_from(["", "{", "nul", "[1,]", "{'a': 1}", '{"a": 1} x', "\x00", '"\\ud800"', "\ufeff{}"]).map(
        lambda s: s.encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=40),
)


def objects(fields: Mapping[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """A JSON object with any subset of ``fields`` (hostile values) plus maybe a hostile extra key."""
    return st.fixed_dictionaries({}, optional=dict(fields)).flatmap(
        lambda chosen: st.dictionaries(hostile_str, scalars(huge_strings=False), max_size=1).map(
            lambda extra: _object({**extra, **chosen})
        )
    )


def either(valid: list[object], *, huge_strings: bool = True) -> st.SearchStrategy[str]:
    """A field's value: a valid one, or anything hostile."""
    return st.one_of(st.sampled_from([json.dumps(v) for v in valid]), scalars(huge_strings=huge_strings),
                     json_values(huge_strings=huge_strings, max_depth=200))


def bodies(fields: Mapping[str, st.SearchStrategy[str]] | None = None) -> st.SearchStrategy[bytes]:
    """A request body: shaped like the route's own (when ``fields``) or any hostile document."""
    shaped = [objects(fields)] if fields else []
    documents = st.one_of(*shaped, json_values())
    return st.one_of(documents.map(lambda t: t.encode("utf-8", "surrogatepass")), not_json)


def cursors(kinds: list[str]) -> st.SearchStrategy[str]:
    """Cursors: base64url of hostile JSON, lists of the right kind with hostile positions, garbage."""
    position = st.lists(st.one_of(scalars(huge_strings=False), st.sampled_from(CALENDAR_EDGES).map(json_string)),
                        max_size=4)
    shaped = st.tuples(st.sampled_from(kinds), position).map(lambda kp: _array([json_string(kp[0]), *kp[1]]))
    document = st.one_of(shaped, json_values(huge_strings=False, max_depth=5_000))
    encoded = document.map(
        lambda t: base64.urlsafe_b64encode(t.encode("utf-8", "surrogatepass")).decode().rstrip("=")
    )
    return st.one_of(encoded, hostile_str)


query_values = st.one_of(
    hostile_str,
    _number_literals,
    st.sampled_from(CALENDAR_EDGES),
    st.integers(min_value=1, max_value=5).map(str),
    st.integers(min_value=1_000, max_value=20_000).map(lambda n: "x" * n),
)


def encode(text: str) -> str:
    """Percent-encode anything, lone surrogates included (as raw UTF-8-ish bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def query_strings_from(params: Mapping[str, st.SearchStrategy[str]], cursor_kinds: list[str]) -> st.SearchStrategy[str]:
    """A query string with any subset of ``params`` (and a cursor), plus maybe a hostile extra parameter."""
    fields = dict(params)
    if cursor_kinds:
        fields["cursor"] = cursors(cursor_kinds)
    chosen = st.fixed_dictionaries({}, optional=fields)
    extra = st.dictionaries(hostile_str, query_values, max_size=1)
    return st.tuples(chosen, extra).map(
        lambda ce: "&".join(f"{encode(k)}={encode(v)}" for k, v in {**ce[1], **ce[0]}.items())
    )


def path_ids(valid: list[int]) -> st.SearchStrategy[str]:
    """A path segment: one of ``valid`` or something no id can be (percent-encoded)."""
    hostile = st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.integers(min_value=19, max_value=6000).map(lambda n: "9" * n),
        st.sampled_from(["0", "-1", "1e3", "0x10", "1_0", "\u0661", " 1", "9223372036854775807",
                         "9223372036854775808"]),
        hostile_str.filter(bool),
    ).map(encode)
    return st.one_of(st.sampled_from([str(v) for v in valid]), hostile) if valid else hostile
