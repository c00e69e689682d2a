"""Retention and privacy (DESIGN §9): delete old rows, redact old personal data.

Each account's policy is ``accounts.retention`` (jsonb); a missing key takes
the default, ``null`` means "keep forever" (or "never redact")::

    {"messages_days": 730, "calls_days": 730, "call_events_days": 180,
     "events_days": 730, "dead_letters_days": 90, "raw_payloads_days": 90,
     "redact_after_days": null}

Deleting (rows older than N days):
- messages (their media links, outbound jobs and attempts go with them; replies
  to them keep existing with ``reply_to_id`` null), calls (with their call
  events), call events of calls that stay, the ``events`` log, dead letters,
  processed/ignored raw payloads and stale pending updates;
- then what is left empty: conversations with no message and no call whose
  last activity is older than the message and call limits, contacts with no
  conversation and no call, media files no message or call points at.

Redacting (rows older than M days, when ``redact_after_days`` is set): message
bodies, raw payloads, edit history, extra details, group senders and who
reacted; call numbers and caller names; call event details; for contacts with
no activity in M days their name, phone, identity display names and identity
external ids (a phone number or wa_id; replaced by ``redacted:<id>``, so a
returning number starts a new contact). Raw provider payloads, pending updates
and event-log entries older than M days are deleted, as they copy bodies and
numbers. Rows keep existing, so counts and stats stay right.

Every statement deletes or updates in batches with ``SKIP LOCKED`` so live
traffic is never blocked; a row in use is handled on the next run. Foreign keys
are never broken: parents are only deleted once nothing points at them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

BATCH_SIZE = 2000

Conn = asyncpg.Pool | asyncpg.Connection

Days = int | None
MAX_DAYS = 36500


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # At most a century: beyond that "keep forever" is null, and a cutoff far
    # enough back would overflow the calendar.
    messages_days: Days = Field(default=730, ge=0, le=MAX_DAYS)
    calls_days: Days = Field(default=730, ge=0, le=MAX_DAYS)
    call_events_days: Days = Field(default=180, ge=0, le=MAX_DAYS)
    events_days: Days = Field(default=730, ge=0, le=MAX_DAYS)
    dead_letters_days: Days = Field(default=90, ge=0, le=MAX_DAYS)
    raw_payloads_days: Days = Field(default=90, ge=0, le=MAX_DAYS)
    redact_after_days: Days = Field(default=None, ge=0, le=MAX_DAYS)


@dataclass(frozen=True)
class _Cutoffs:
    messages: datetime | None
    calls: datetime | None
    call_events: datetime | None
    events: datetime | None
    dead_letters: datetime | None
    raw_payloads: datetime | None
    redact: datetime | None

    @classmethod
    def of(cls, policy: RetentionPolicy, now: datetime) -> _Cutoffs:
        def ago(days: Days) -> datetime | None:
            return None if days is None else now - timedelta(days=days)

        return cls(
            ago(policy.messages_days), ago(policy.calls_days), ago(policy.call_events_days),
            ago(policy.events_days), ago(policy.dead_letters_days), ago(policy.raw_payloads_days),
            ago(policy.redact_after_days),
        )

    @property
    def emptied(self) -> datetime | None:
        """Conversations and contacts are removed once older than both message and call limits."""
        if self.messages is None or self.calls is None:
            return None
        return min(self.messages, self.calls)


@dataclass
class AccountReport:
    account_id: int
    deleted: dict[str, int] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class RetentionReport:
    now: datetime
    dry_run: bool
    accounts: list[AccountReport] = field(default_factory=list)
    files_removed: int = 0

    def totals(self) -> dict[str, dict[str, int]]:
        deleted: dict[str, int] = {}
        redacted: dict[str, int] = {}
        for a in self.accounts:
            for k, v in a.deleted.items():
                deleted[k] = deleted.get(k, 0) + v
            for k, v in a.redacted.items():
                redacted[k] = redacted.get(k, 0) + v
        return {"deleted": deleted, "redacted": redacted}

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "accounts": [
                {"account_id": a.account_id, "deleted": a.deleted, "redacted": a.redacted, "error": a.error}
                for a in self.accounts
            ],
            "totals": self.totals(),
            "files_removed": self.files_removed,
        }

    def lines(self) -> list[str]:
        verb = ("would delete", "would redact") if self.dry_run else ("deleted", "redacted")
        out = []
        for a in self.accounts:
            if a.error:
                out.append(f"account {a.account_id}: skipped: {a.error}")
                continue
            parts = []
            for word, counts in zip(verb, (a.deleted, a.redacted), strict=True):
                if items := [f"{n} {k}" for k, n in counts.items() if n]:
                    parts.append(f"{word} " + ", ".join(items))
            text = "; ".join(parts)
            out.append(f"account {a.account_id}: {text or 'nothing to do'}")
        if not self.accounts:
            out.append("no accounts")
        if self.files_removed:
            out.append(f"removed {self.files_removed} media files from disk")
        if self.dry_run:
            out.append("dry run: nothing was changed")
        return out


# -- SQL fragments ---------------------------------------------------------------------------------
# ``predict`` is the dry-run form: rows that the earlier steps would delete count as gone.
# The real run uses the strict form (nothing left at all), which is what keeps foreign keys whole.
# Cutoffs come from the ``p`` row (see _PARAMS): p.messages, p.calls, p.emptied (conversations,
# contacts and media left empty) and p.cut (this step's own cutoff); $1 is the account.


def _message_survives(alias: str, predict: bool) -> str:
    return f"NOT coalesce({alias}.created_at < p.messages, false)" if predict else "true"


def _call_survives(alias: str, predict: bool) -> str:
    return f"NOT coalesce({alias}.started_at < p.calls, false)" if predict else "true"


def _conversation_empty(alias: str, predict: bool) -> str:
    return f"""{alias}.last_activity_at < p.emptied
        AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = {alias}.id
                        AND {_message_survives("m", predict)})
        AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.conversation_id = {alias}.id
                        AND {_call_survives("k", predict)})"""


def _contact_empty(alias: str, predict: bool) -> str:
    conversation_survives = f"NOT ({_conversation_empty('c', True)})" if predict else "true"
    return f"""{alias}.created_at < p.emptied AND {alias}.updated_at < p.emptied
        AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.contact_id = {alias}.id AND {conversation_survives})
        AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.contact_id = {alias}.id AND {_call_survives("k", predict)})"""


def _media_orphan(alias: str, predict: bool) -> str:
    return f"""{alias}.created_at < p.emptied
        AND NOT EXISTS (SELECT 1 FROM message_media mm JOIN messages m ON m.id = mm.message_id
                        WHERE mm.media_id = {alias}.id AND {_message_survives("m", predict)})
        AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.recording_media_id = {alias}.id
                        AND {_call_survives("k", predict)})"""


@dataclass(frozen=True)
class _Step:
    """One table's rows to delete or redact: ``where`` may use $1..p.cut (p.cut: this step's cutoff)."""

    name: str
    table: str
    where: str
    cutoff: str | None  # which _Cutoffs field is p.cut; None: the emptied cutoff
    key: str = "id"
    # Copies bodies and numbers verbatim: also deleted once older than the redaction age.
    holds_pii: bool = False


def _delete_steps(predict: bool) -> list[_Step]:
    call_goes = " AND NOT coalesce((SELECT k.started_at < p.calls FROM calls k WHERE k.id = t.call_id), false)"
    return [
        _Step("messages", "messages", "t.created_at < p.cut", "messages"),
        _Step("calls", "calls", "t.started_at < p.cut", "calls"),
        _Step("call_events", "call_events", "t.occurred_at < p.cut" + (call_goes if predict else ""), "call_events"),
        _Step("events", "events", "t.ts < p.cut", "events", key="seq", holds_pii=True),
        _Step("dead_letters", "inbound_events", "t.status = 'failed' AND t.received_at < p.cut", "dead_letters",
              holds_pii=True),
        _Step("raw_payloads", "inbound_events", "t.status <> 'failed' AND t.received_at < p.cut", "raw_payloads",
              holds_pii=True),
        _Step("pending_updates", "pending_updates", "t.received_at < p.cut", "raw_payloads", holds_pii=True),
        _Step("conversations", "conversations", _conversation_empty("t", predict), None),
        _Step("contacts", "contacts", _contact_empty("t", predict), None),
        _Step("media_files", "media_files", _media_orphan("t", predict), None),
    ]


# Redaction wipes what the deletion steps left; with ``predict`` it skips rows they would delete.
_REDACT_MESSAGES = """
    UPDATE messages t SET text = NULL, raw = NULL, edit_history = '[]'::jsonb, extra = '{}'::jsonb,
        sender = NULL, redacted_at = now(),
        reactions = (SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(r) = 'object'
                                                    THEN r || '{"from": null}'::jsonb ELSE r END),
                                     '[]'::jsonb)
                     FROM jsonb_array_elements(t.reactions) r)
"""
_REDACT_CALLS = "UPDATE calls t SET from_number = NULL, to_number = NULL, caller_name = NULL, redacted_at = now()"
_REDACT_CALL_EVENTS = "UPDATE call_events t SET data = '{}'::jsonb"
_REDACT_CONTACTS = "UPDATE contacts t SET name = NULL, phone = NULL, redacted_at = now(), updated_at = now()"


def _contact_idle(alias: str) -> str:
    # No activity since the redaction cutoff.
    return f"""{alias}.created_at < p.cut AND {alias}.redacted_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM conversations c JOIN messages m ON m.conversation_id = c.id
                        WHERE c.contact_id = {alias}.id AND m.created_at >= p.cut)
        AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.contact_id = {alias}.id AND k.started_at >= p.cut)
        AND NOT EXISTS (SELECT 1 FROM conversations c
                        WHERE c.contact_id = {alias}.id AND c.last_activity_at >= p.cut)"""


def _redact_steps(predict: bool) -> list[tuple[_Step, str]]:
    keep_msg = " AND NOT coalesce(t.created_at < p.messages, false)" if predict else ""
    keep_call = " AND NOT coalesce(t.started_at < p.calls, false)" if predict else ""
    keep_contact = f" AND NOT ({_contact_empty('t', True)})" if predict else ""
    return [
        (_Step("messages", "messages", "t.created_at < p.cut AND t.redacted_at IS NULL" + keep_msg, "redact"),
         _REDACT_MESSAGES),
        (_Step("calls", "calls", "t.started_at < p.cut AND t.redacted_at IS NULL" + keep_call, "redact"),
         _REDACT_CALLS),
        (_Step("call_events", "call_events", "t.occurred_at < p.cut AND t.data <> '{}'::jsonb", "redact"),
         _REDACT_CALL_EVENTS),
        (_Step("contacts", "contacts", _contact_idle("t") + keep_contact, "redact"), _REDACT_CONTACTS),
    ]


_IDENTITIES_OF_REDACTED = """
    UPDATE contact_identities ci SET display = NULL, external_id = 'redacted:' || ci.id
    FROM contacts p
    WHERE p.id = ci.contact_id AND p.account_id = $1 AND ci.account_id = $1
      AND p.redacted_at IS NOT NULL AND ci.external_id NOT LIKE 'redacted:%'
"""
# A click-to-call request repeats its call's dialled number.
_ORIGINATES_OF_REDACTED = """
    UPDATE call_originates o SET to_number = 'redacted'
    FROM calls c
    WHERE c.id = o.call_id AND c.account_id = $1 AND o.account_id = $1
      AND c.redacted_at IS NOT NULL AND o.to_number <> 'redacted'
"""


# -- running -----------------------------------------------------------------------------------------


# Every cutoff is a typed parameter, referenced or not, so one argument list fits every statement.
_PARAMS = "(SELECT $2::timestamptz AS messages, $3::timestamptz AS calls, $4::timestamptz AS emptied," \
    " $5::timestamptz AS cut) p"


def _args(account_id: int, cut: _Cutoffs, step_cutoff: datetime | None) -> list[Any]:
    return [account_id, cut.messages, cut.calls, cut.emptied, step_cutoff]


def _step_cutoff(step: _Step, cut: _Cutoffs) -> datetime | None:
    own: datetime | None = cut.emptied if step.cutoff is None else getattr(cut, step.cutoff)
    if step.holds_pii and cut.redact is not None:
        return cut.redact if own is None else max(own, cut.redact)
    return own


async def _count(conn: Conn, step: _Step, args: list[Any]) -> int:
    sql = f"SELECT count(*) FROM {step.table} t, {_PARAMS} WHERE t.account_id = $1 AND {step.where}"
    n: int = await conn.fetchval(sql, *args)
    return n


async def _delete(conn: Conn, step: _Step, args: list[Any], media_paths: list[str]) -> int:
    returning = ", t.storage_path" if step.table == "media_files" else ""
    sql = f"""
        WITH doomed AS (
            SELECT t.{step.key} FROM {step.table} t, {_PARAMS} WHERE t.account_id = $1 AND {step.where}
            ORDER BY t.{step.key} LIMIT {BATCH_SIZE} FOR UPDATE OF t SKIP LOCKED
        )
        DELETE FROM {step.table} t USING doomed
        WHERE t.account_id = $1 AND t.{step.key} = doomed.{step.key}
        RETURNING t.{step.key}{returning}
    """
    total = 0
    while True:
        rows = await conn.fetch(sql, *args)
        total += len(rows)
        if returning:
            media_paths.extend(r["storage_path"] for r in rows if r["storage_path"])
        if len(rows) < BATCH_SIZE:
            return total


async def _update(conn: Conn, step: _Step, update: str, args: list[Any]) -> int:
    sql = f"""
        WITH chosen AS (
            SELECT t.id FROM {step.table} t, {_PARAMS} WHERE t.account_id = $1 AND {step.where}
            ORDER BY t.id LIMIT {BATCH_SIZE} FOR UPDATE OF t SKIP LOCKED
        )
        {update} FROM chosen WHERE t.id = chosen.id AND t.account_id = $1
        RETURNING t.id
    """
    total = 0
    while True:
        rows = await conn.fetch(sql, *args)
        total += len(rows)
        if len(rows) < BATCH_SIZE:
            return total


async def _run_account(
    conn: Conn, account_id: int, policy: RetentionPolicy, now: datetime, dry_run: bool,
    media_paths: list[str],
) -> AccountReport:
    report = AccountReport(account_id)
    cut = _Cutoffs.of(policy, now)
    for step in _delete_steps(predict=dry_run):
        step_cut = _step_cutoff(step, cut)
        if step_cut is None:
            continue
        args = _args(account_id, cut, step_cut)
        n = await _count(conn, step, args) if dry_run else await _delete(conn, step, args, media_paths)
        report.deleted[step.name] = report.deleted.get(step.name, 0) + n
    if cut.redact is None:
        return report
    for step, update in _redact_steps(predict=dry_run):
        args = _args(account_id, cut, cut.redact)
        n = await _count(conn, step, args) if dry_run else await _update(conn, step, update, args)
        report.redacted[step.name] = n
    if not dry_run:
        await conn.execute(_IDENTITIES_OF_REDACTED, account_id)
        await conn.execute(_ORIGINATES_OF_REDACTED, account_id)
    return report


def _remove_files(paths: list[str], media_root: Path | None) -> int:
    """Unlink stored media of deleted rows, never anything outside ``media_root``."""
    if media_root is None:
        return 0
    root = media_root.resolve()
    removed = 0
    for stored in paths:
        path = Path(stored)
        path = (path if path.is_absolute() else root / path).resolve()
        if not path.is_relative_to(root):
            log.warning("retention: not removing %s, outside the media dir", path)
            continue
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("retention: could not remove %s: %s", path, exc)
    return removed


def parse_policy(raw: Any) -> RetentionPolicy:
    """The policy stored on an account; raises ValueError with a one-line reason."""
    try:
        return RetentionPolicy.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "retention"
        raise ValueError(f"invalid retention policy {where}: {first['msg']}") from exc


async def run_retention(
    pool: Conn, now: datetime | None = None, dry_run: bool = False, *, media_root: Path | None = None,
    account_ids: list[int] | None = None,
) -> RetentionReport:
    """Apply every account's policy (or report, with ``dry_run``, what it would do)."""
    now = now or datetime.now(UTC)
    report = RetentionReport(now=now, dry_run=dry_run)
    media_paths: list[str] = []
    for row in await pool.fetch("SELECT id, retention FROM accounts ORDER BY id"):
        if account_ids is not None and row["id"] not in account_ids:
            continue
        try:
            policy = parse_policy(row["retention"])
        except ValueError as exc:
            report.accounts.append(AccountReport(row["id"], error=str(exc)))
            continue
        report.accounts.append(await _run_account(pool, row["id"], policy, now, dry_run, media_paths))
    if not dry_run:
        report.files_removed = _remove_files(media_paths, media_root)
    return report
