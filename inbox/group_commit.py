"""Group commit, the database part: many units of work in one transaction.

Each unit of work (one provider payload, one batch of call changes…) runs in
its own savepoint and *stages* the events it wants logged. After the last
unit, each account's staged events are logged with one ``accounts.last_seq``
update (``inbox.eventlog.append``), accounts in id order so that two
processes' batches lock them in the same order, and the batch commits once.
The per-account row lock is therefore taken once per batch, not per event,
and held only from that statement to COMMIT.

A unit that raises is answered with its own exception and none of its writes
are kept; its batch-mates commit. Units rarely fail as a whole (a payload that
cannot be applied is a dead letter, not an error), so a batch first runs
without a savepoint per unit (two round trips fewer each); only when a unit
raises is the batch rolled back and run again with one savepoint per unit. A connection failure fails the whole batch
(nothing of it is committed). A deadlock or serialization failure, which two
batches touching the same rows in different orders can cause, re-runs each
unit of the batch in a transaction of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from inbox.db import acquire
from inbox.eventlog import EventRecord, PendingEvent, append

__all__ = ["Committed", "Staged", "Work", "commit_batch"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Conflicts with another transaction that may pass when retried alone.
RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
# Connection-level failures: the whole batch fails (the provider must retry).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_ALONE_ATTEMPTS = 3


@dataclass(frozen=True)
class Staged(Generic[T]):
    """What a unit of work did: its own answer and the events it wants logged for ``account_id``."""

    value: T
    account_id: int
    pending: Sequence[PendingEvent] = ()


@dataclass(frozen=True)
class Committed(Generic[T]):
    """A unit's answer after COMMIT, with its events and their seqs."""

    value: T
    records: list[EventRecord]


# Runs inside the batch transaction (in a savepoint); must not commit or publish.
Work = Callable[[asyncpg.Connection], Awaitable[Staged[Any]]]


class _UnitFailed(Exception):
    """A unit raised in a batch run without savepoints: roll it all back and run it with them."""


async def commit_batch(pool: asyncpg.Pool, works: Sequence[Work]) -> list[Committed[Any] | BaseException]:
    """Run ``works`` in one transaction and answer each, in order. Raises only what fails the whole batch."""
    try:
        if len(works) > 1:
            try:
                return await _together(pool, works, savepoints=False)
            except _UnitFailed:
                pass
        return await _together(pool, works)
    except RETRYABLE as exc:
        if len(works) > 1:
            log.info("group commit: %r in a batch of %d; committing each alone", exc, len(works))
        return [await _alone(pool, work) for work in works]


async def _alone(pool: asyncpg.Pool, work: Work) -> Committed[Any] | BaseException:
    for attempt in range(1, _ALONE_ATTEMPTS + 1):
        try:
            return (await _together(pool, [work]))[0]
        except RETRYABLE as exc:
            if attempt == _ALONE_ATTEMPTS:
                return exc
        except TRANSPORT_ERRORS as exc:
            return exc
    raise AssertionError("unreachable")


async def _together(
    pool: asyncpg.Pool, works: Sequence[Work], *, savepoints: bool = True
) -> list[Committed[Any] | BaseException]:
    staged: list[Staged[Any] | BaseException] = []
    if len(works) == 1:
        # Alone, a unit needs no savepoint: its failure rolls back only itself.
        try:
            async with acquire(pool) as conn, conn.transaction():
                staged.append(await works[0](conn))
                records = await _log(conn, staged)
        except (*TRANSPORT_ERRORS, *RETRYABLE):
            raise
        except Exception as exc:
            return [exc]
        return _answers(staged, records)
    async with acquire(pool) as conn, conn.transaction():
        for work in works:
            try:
                if savepoints:
                    async with conn.transaction():
                        staged.append(await work(conn))
                else:
                    staged.append(await work(conn))
            except (*TRANSPORT_ERRORS, *RETRYABLE):
                raise
            except Exception as exc:  # this unit alone fails; its savepoint is rolled back
                if not savepoints:
                    raise _UnitFailed from exc
                staged.append(exc)
        records = await _log(conn, staged)
    return _answers(staged, records)


async def _log(conn: asyncpg.Connection, staged: Sequence[Staged[Any] | BaseException]) -> list[list[EventRecord]]:
    """Append every account's staged events with one statement each; return each unit's records."""
    by_account: dict[int, list[PendingEvent]] = {}
    for unit in staged:
        if isinstance(unit, Staged) and unit.pending:
            by_account.setdefault(unit.account_id, []).extend(unit.pending)
    logged: dict[int, list[EventRecord]] = {}
    for account_id in sorted(by_account):
        logged[account_id] = await append(conn, account_id, by_account[account_id])
    # append returns records in the order given, so each unit takes its slice back.
    taken: dict[int, int] = {}
    per_unit: list[list[EventRecord]] = []
    for unit in staged:
        if not isinstance(unit, Staged) or not unit.pending:
            per_unit.append([])
            continue
        start = taken.get(unit.account_id, 0)
        end = start + len(unit.pending)
        per_unit.append(logged[unit.account_id][start:end])
        taken[unit.account_id] = end
    return per_unit


def _answers(
    staged: Sequence[Staged[Any] | BaseException], records: Sequence[list[EventRecord]]
) -> list[Committed[Any] | BaseException]:
    return [unit if isinstance(unit, BaseException) else Committed(unit.value, recs)
            for unit, recs in zip(staged, records, strict=True)]
