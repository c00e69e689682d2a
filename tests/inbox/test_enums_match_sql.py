"""Every StrEnum in schema/enums.py equals the CHECK constraint of its column in the migrated database."""

from __future__ import annotations

import re
from enum import StrEnum

import pytest

from schema import enums

MIRRORS: list[tuple[type[StrEnum], str, str]] = [
    (enums.ChannelType, "channels", "type"),
    (enums.ChannelType, "contact_identities", "channel_type"),
    (enums.ConversationStatus, "conversations", "status"),
    (enums.MessageDirection, "messages", "direction"),
    (enums.MessageType, "messages", "type"),
    (enums.MessageStatus, "messages", "status"),
    (enums.CallDirection, "calls", "direction"),
    (enums.CallStatus, "calls", "status"),
    (enums.CallDisposition, "calls", "disposition"),
    (enums.InboundStatus, "inbound_events", "status"),
    (enums.OutboundJobStatus, "outbound_jobs", "status"),
    (enums.AttemptOutcome, "outbound_attempts", "outcome"),
    (enums.MediaStatus, "media_files", "status"),
    (enums.ApiKeyRole, "api_keys", "role"),
    (enums.EventName, "events", "name"),
]

# pg_get_constraintdef renders `col IN ('a', 'b')` as `(col = ANY (ARRAY['a'::text, 'b'::text]))`.
_IN_LIST = re.compile(r"\(?(\w+)\s*=\s*ANY\s*\(\s*\(?ARRAY\[(.*?)\]")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


async def _check_sets(conn, table: str) -> dict[str, set[str]]:
    """Column → allowed values, from every CHECK constraint on ``table``."""
    rows = await conn.fetch(
        """SELECT pg_get_constraintdef(c.oid) AS def FROM pg_constraint c
           WHERE c.contype = 'c' AND c.conrelid = to_regclass($1)""",
        table,
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        for column, items in _IN_LIST.findall(row["def"]):
            values = {v.replace("''", "'") for v in _LITERAL.findall(items)}
            # Several constraints on one column all apply: the allowed set is their intersection.
            found[column] = found[column] & values if column in found else values
    return found


def test_every_enum_in_schema_enums_is_checked_here():
    declared = {obj for obj in vars(enums).values() if isinstance(obj, type) and issubclass(obj, StrEnum)}
    declared.discard(StrEnum)
    assert declared == {enum for enum, _, _ in MIRRORS}


def test_the_check_constraint_parser_reads_what_postgres_prints():
    text = "CHECK ((status = ANY (ARRAY['a'::text, 'b_c'::text, 'it''s'::text])))"
    [(column, items)] = _IN_LIST.findall(text)
    assert column == "status"
    assert {v.replace("''", "'") for v in _LITERAL.findall(items)} == {"a", "b_c", "it's"}


@pytest.mark.parametrize(("enum", "table", "column"), MIRRORS, ids=[f"{t}.{c}" for _, t, c in MIRRORS])
async def test_the_enum_equals_the_check_constraint_of_its_column(pool, enum, table, column):
    async with pool.acquire() as conn:
        sets = await _check_sets(conn, table)

    assert column in sets, f"no CHECK (... IN (...)) constraint on {table}.{column}"
    assert sets[column] == {member.value for member in enum}


async def test_enum_values_are_lowercase_snake_case():
    for enum, _, _ in MIRRORS:
        for member in enum:
            assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?", member.value), member
