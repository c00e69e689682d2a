"""The call tracker: AMI events in, ``CallSnapshot`` changes out. No I/O.

A call is every channel sharing one ``Linkedid`` (Asterisk rewrites a
channel's Linkedid when bridges merge: the channel then moves to that call).
The rules, from DESIGN §6 "Calls":

- direction: the originating channel in an inbound context (or any non-agent
  caller) → ``inbound``; a click-to-call we placed, or an agent dialling a
  number → ``outbound``; an agent dialling an agent → ``internal``;
- answer: a bridge holding the customer's channel (the "party") and an agent
  channel. The caller going ``Up`` is not an answer (voicemail and IVRs do
  that);
- disposition: ``answered`` if any agent was bridged, else from the
  ``DialEnd`` statuses: any ``CANCEL`` → ``cancelled``, every dial ``BUSY`` →
  ``busy``, a ``NOANSWER`` → ``no_answer``, otherwise ``failed``;
- ``billsec`` runs from the first agent answer to the end, across transfers.

Event times: the ``Timestamp`` header when Asterisk sends one
(``timestampevents=yes``), else the ``at`` the driver passes (time received).
Call-event keys are built from Asterisk ids, so feeding the same events again
(or rebuilding after a reconnect) produces the same keys and adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from channels.asterisk._book import CallBook
from channels.asterisk._state import Call, Originate, cause_name, originate_disposition, seconds
from channels.asterisk.config import AsteriskConfig, clean_caller_id, normalize_number, unescape
from schema.calls import CallEventRecord, CallSnapshot
from schema.enums import CallDisposition, CallStatus

ORIGINATE_ACTION_PREFIX = "gw-originate-"


def event_time(event: Mapping[str, str], received_at: datetime) -> datetime:
    stamp = event.get("timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return received_at


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _age(duration: str | None) -> timedelta:
    """``CoreShowChannel.Duration`` ("00:03:12") as a timedelta."""
    try:
        parts = [int(p) for p in (duration or "").split(":")]
    except ValueError:
        return timedelta(0)
    total = 0
    for p in parts:
        total = total * 60 + p
    return timedelta(seconds=total)


class CallTracker(CallBook):
    @classmethod
    def from_config(cls, config: AsteriskConfig) -> CallTracker:
        return cls(agent_pattern=config.agent_pattern, inbound_contexts=config.inbound_contexts)

    # --- queries --------------------------------------------------------------------------

    def live_calls(self) -> list[CallSnapshot]:
        return [c.snapshot() for c in self._calls.values()]

    def is_live(self, snapshot: CallSnapshot) -> bool:
        if snapshot.external_id and snapshot.external_id in self._calls:
            return True
        return bool(snapshot.originate_id) and snapshot.originate_id in self._calls

    # --- click-to-call ----------------------------------------------------------------------

    def expect_originate(self, originate_id: str, *, agent: str, to_number: str, at: datetime) -> None:
        """Announce an Originate we place with ``ChannelId=originate_id`` (its channels' Linkedid)."""
        self._originates.setdefault(originate_id, Originate(originate_id, agent, to_number, at))

    def originate_failed(
        self, originate_id: str, *, at: datetime, message: str, disposition: CallDisposition = CallDisposition.FAILED
    ) -> list[CallSnapshot]:
        """Asterisk refused the Originate (``Response: Error``): the call ends now, honestly failed."""
        orig = self._originates.get(originate_id)
        if orig is None:
            return []
        orig.disposition = disposition
        call = self._calls.get(originate_id) or self._ended.get(originate_id) or self._synthetic(orig)
        self._touch(call)
        call.add_event("originate", at, f"originate:{originate_id}", result="error", message=message)
        if call.ended_at is None and not call.live_channels:
            call.hangup_cause = "originate_failed"
            self._end(call, at)
        return self._flush()

    # --- the event stream ---------------------------------------------------------------------

    def feed(self, event: Mapping[str, str], at: datetime) -> list[CallSnapshot]:
        """Apply one AMI event (lower-cased keys); return the snapshots of calls it changed."""
        name = event.get("event", "").lower()
        at = event_time(event, at)
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(event, at)
        elif name not in ("cdr", "coreshowchannel", "coreshowchannelscomplete"):
            self._channel(event, "", at, create=False)  # keeps names, caller ids and Linkedid moves current
        return self._flush()

    def _on_newchannel(self, e: Mapping[str, str], at: datetime) -> None:
        self._channel(e, "", at, create=True)

    def _on_newstate(self, e: Mapping[str, str], at: datetime) -> None:
        self._channel(e, "", at, create=True)

    def _on_newcallerid(self, e: Mapping[str, str], at: datetime) -> None:
        ch = self._channel(e, "", at, create=False)
        call = self._call_of(ch)
        if ch is not None and call is not None and ch.uniqueid == call.originator and call.direction == "inbound":
            call.caller_name = unescape(clean_caller_id(ch.caller_name)) or call.caller_name
            call.from_number = call.from_number or normalize_number(ch.caller_num)

    def _on_rename(self, e: Mapping[str, str], at: datetime) -> None:
        ch = self._channel(e, "", at, create=False)
        if ch is not None and e.get("newname"):
            ch.name = e["newname"]
            ch.agent = self._agents.agent_of(ch.name) or ch.agent

    def _on_varset(self, e: Mapping[str, str], at: datetime) -> None:
        ch = self._channel(e, "", at, create=False)
        call = self._call_of(ch)
        if call is None or e.get("variable", "").upper() != "MIXMONITOR_FILENAME" or not e.get("value"):
            return
        call.recording_path = e["value"]
        call.add_event("recording", at, f"recording:{e['value']}", path=e["value"])

    def _on_dialbegin(self, e: Mapping[str, str], at: datetime) -> None:
        self._channel(e, "", at, create=True)
        dest = self._channel(e, "dest", at, create=True)
        call = self._call_of(dest)
        if dest is None or call is None:
            return
        key = f"ringing:{dest.uniqueid}"
        call.add_event("ringing", at, key, agent=dest.agent, channel=dest.name, dial_string=e.get("dialstring"))

    def _on_dialend(self, e: Mapping[str, str], at: datetime) -> None:
        self._channel(e, "", at, create=False)
        dest = self._channel(e, "dest", at, create=False)
        call = self._call_of(dest)
        if dest is None or call is None:
            return
        status = e.get("dialstatus", "").upper()
        call.dials[dest.uniqueid] = status
        call.add_event("dial_end", at, f"dial_end:{dest.uniqueid}", agent=dest.agent, status=status)

    def _on_bridgeenter(self, e: Mapping[str, str], at: datetime) -> None:
        ch = self._channel(e, "", at, create=True)
        bridge = e.get("bridgeuniqueid")
        if ch is None or not bridge:
            return
        ch.bridge = bridge
        self._bridges.setdefault(bridge, {})[ch.uniqueid] = None
        call = self._call_of(ch)
        if call is not None:
            self._check_answer(call, bridge, at)

    def _on_bridgeleave(self, e: Mapping[str, str], at: datetime) -> None:
        ch = self._channel(e, "", at, create=False)
        bridge = e.get("bridgeuniqueid", "")
        self._bridges.get(bridge, {}).pop(e.get("uniqueid", ""), None)
        if ch is not None and ch.bridge == bridge:
            ch.bridge = None

    def _on_bridgedestroy(self, e: Mapping[str, str], at: datetime) -> None:
        self._bridges.pop(e.get("bridgeuniqueid", ""), None)

    def _on_blindtransfer(self, e: Mapping[str, str], at: datetime) -> None:
        transferer = self._channel(e, "transferer", at, create=False)
        transferee = self._channel(e, "transferee", at, create=False)
        call = self._call_of(transferee) or self._call_of(transferer)
        if call is None or e.get("result", "").lower() != "success":
            return
        key = f"transfer:blind:{e.get('transfereruniqueid', '')}:{e.get('bridgeuniqueid', '')}"
        call.add_event(
            "transfer",
            at,
            key,
            kind="blind",
            from_agent=transferer.agent if transferer else None,
            to_extension=e.get("extension"),
            to_agent=self._agents.agent_of(f"{self._tech(transferer)}/{e.get('extension', '')}"),
        )

    def _on_attendedtransfer(self, e: Mapping[str, str], at: datetime) -> None:
        first = self._channel(e, "origtransferer", at, create=False)
        second = self._channel(e, "secondtransferer", at, create=False)
        transferee = self._channel(e, "transferee", at, create=False)
        target = self._channel(e, "transfertarget", at, create=False)
        call = self._call_of(transferee) or self._call_of(first)
        if call is None or e.get("result", "").lower() != "success":
            return
        transferers = {e.get("origtransfereruniqueid", ""), e.get("secondtransfereruniqueid", "")}
        bridges = [b for b in (e.get("destbridgeuniqueid"), e.get("secondbridgeuniqueid")) if b]
        to_agent, agent_uid = self._agent_reached(
            e.get("transfertargetchannel", ""), e.get("transfertargetuniqueid"),
            tech=self._tech(second or first), bridges=bridges, exclude=transferers,
        )
        if to_agent is None and second is not None:
            connected = e.get("secondtransfererconnectedlinenum", "")
            to_agent = self._agents.agent_of(f"{self._tech(second)}/{connected}")
        if target is not None and target.linkedid != call.linkedid:
            self._move(target, call.linkedid, at)
        key = f"transfer:attended:{e.get('origtransfereruniqueid', '')}:{e.get('secondtransfereruniqueid', '')}"
        from_agent = first.agent if first else None
        call.add_event("transfer", at, key, kind="attended", from_agent=from_agent, to_agent=to_agent)
        if to_agent is not None and call.answered_at is not None:
            call.agent = to_agent
            call.agent_channel = agent_uid or (target.uniqueid if target else None)

    def _on_hold(self, e: Mapping[str, str], at: datetime) -> None:
        self._hold_event("hold", e, at)

    def _on_unhold(self, e: Mapping[str, str], at: datetime) -> None:
        self._hold_event("unhold", e, at)

    def _hold_event(self, kind: str, e: Mapping[str, str], at: datetime) -> None:
        ch = self._channel(e, "", at, create=False)
        call = self._call_of(ch)
        if ch is None or call is None:
            return
        stamp = e.get("timestamp") or _iso(at)
        who = ch.agent or ("caller" if ch.uniqueid == call.party else None)
        call.add_event(kind, at, f"{kind}:{ch.uniqueid}:{stamp}", agent=ch.agent, party=who, channel=ch.name)

    def _on_hanguprequest(self, e: Mapping[str, str], at: datetime) -> None:
        ch = self._channel(e, "", at, create=False)
        if ch is not None:
            ch.remote_hangup = True

    def _on_hangup(self, e: Mapping[str, str], at: datetime) -> None:
        ch = self._channel(e, "", at, create=False)
        if ch is None:
            return
        ch.hung_up = True
        ch.cause, ch.cause_txt = e.get("cause"), e.get("cause-txt")
        if ch.bridge:
            self._bridges.get(ch.bridge, {}).pop(ch.uniqueid, None)
        self._channels.pop(ch.uniqueid, None)
        call = self._call_of(ch)
        if call is None:
            return
        if ch.uniqueid == (call.party or call.originator):
            call.hangup_cause = cause_name(ch.cause_txt, ch.cause)
        if not call.live_channels:
            call.hangup_cause = call.hangup_cause or cause_name(ch.cause_txt, ch.cause)
            self._end(call, at)

    def _on_originateresponse(self, e: Mapping[str, str], at: datetime) -> None:
        action_id = e.get("actionid", "")
        oid = action_id[len(ORIGINATE_ACTION_PREFIX) :] if action_id.startswith(ORIGINATE_ACTION_PREFIX) else ""
        if oid not in self._originates and oid not in self._ended:
            oid = e.get("uniqueid", "")
        ended = self._ended.get(oid)
        orig = self._originates.get(oid) or (ended.originate if ended is not None else None)
        if orig is None:
            return
        success = e.get("response", "").lower() == "success"
        reason = e.get("reason")
        if not success:
            orig.disposition = originate_disposition(reason)
        call = self._calls.get(oid) or self._ended.get(oid)
        if call is None:
            if success:
                return
            call = self._synthetic(orig)
        self._touch(call)
        call.add_event("originate", at, f"originate:{oid}", result="success" if success else "failure", reason=reason)
        if not success and call.ended_at is None and not call.live_channels:
            call.hangup_cause = "originate_failed"
            self._end(call, at)

    # --- reconnects ----------------------------------------------------------------------------

    def resync(
        self, listed: Sequence[Mapping[str, str]], *, at: datetime, lost_at: datetime | None = None,
        answered: Mapping[str, datetime] | None = None,
    ) -> list[CallSnapshot]:
        """Rebuild from a ``CoreShowChannels`` list taken after a (re)connect.

        Channels we knew that are not listed hung up while we were away; a call
        left with none is closed with the ``unknown`` cause and a ``reconciled``
        event, ended at ``lost_at`` (when we last heard from Asterisk). Listed
        channels we did not know are rebuilt (Linkedid, bridge); a call found
        answered takes its answer time from ``answered`` (Uniqueid → time, as
        Asterisk's CDR has it) when given.
        """
        listed = [e for e in listed if e.get("uniqueid")]
        live = {e["uniqueid"] for e in listed}
        self._bridges = {}
        for uid, gone in list(self._channels.items()):
            if uid not in live:
                gone.hung_up = True
                del self._channels[uid]
        for stale in list(self._calls.values()):
            if not stale.live_channels:
                self._touch(stale)
                self._close_reconciled(stale, at, lost_at)
        known_calls = set(self._calls)
        # Originators first (Uniqueid == Linkedid), then the oldest: they set the call's direction.
        for e in sorted(listed, key=lambda x: (x["uniqueid"] != x.get("linkedid"), -_age(x.get("duration")))):
            created = at - _age(e.get("duration"))
            ch = self._channel(e, "", created, create=True)
            call = self._call_of(ch)
            if ch is None or call is None:
                continue
            ch.up = e.get("channelstate") == "6" or e.get("channelstatedesc", "").lower() == "up"
            ch.was_up = ch.was_up or ch.up
            call.started_at = min(call.started_at, created)
            if call.linkedid not in known_calls:
                reason = "rebuilt from CoreShowChannels after a reconnect"
                call.add_event("reconciled", at, f"reconciled:{call.linkedid}:{_iso(at)}", reason=reason)
            ch.bridge = e.get("bridgeid") or None
            if ch.bridge:
                self._bridges.setdefault(ch.bridge, {})[ch.uniqueid] = None
        for bridge, members in self._bridges.items():
            for uid in members:
                member = self._channels.get(uid)
                member_call = self._call_of(member)
                if member is not None and member_call is not None:
                    self._check_answer(member_call, bridge, at, estimated=True, answered=answered)
        return self._flush()

    def _close_reconciled(self, call: Call, at: datetime, lost_at: datetime | None) -> None:
        call.hangup_cause = "unknown"
        call.add_event(
            "reconciled",
            at,
            f"reconciled:{call.linkedid}:{_iso(at)}",
            reason="the call ended while the AMI connection was down",
            lost_at=_iso(lost_at) if lost_at else None,
        )
        self._end(call, max(call.started_at, lost_at or at))

    def close_missing(
        self, open_calls: Sequence[CallSnapshot], *, at: datetime, lost_at: datetime | None = None
    ) -> list[CallSnapshot]:
        """Close calls the database still has open but Asterisk no longer lists (ended while nobody listened)."""
        out: list[CallSnapshot] = []
        for snap in open_calls:
            if snap.status == CallStatus.ENDED or self.is_live(snap):
                continue
            ended = max(snap.started_at, lost_at or at)
            if snap.originate_id:
                self._originates.pop(snap.originate_id, None)
                reason = "the AMI connection was lost; Asterisk no longer shows this click-to-call (not retried)"
            else:
                reason = "the call ended while the AMI connection was down"
            ident = snap.external_id or snap.originate_id or ""
            event = CallEventRecord(
                type="reconciled",
                data={"reason": reason, **({"lost_at": _iso(lost_at)} if lost_at else {})},
                occurred_at=at,
                key=f"reconciled:{ident}:{_iso(at)}",
            )
            answered = snap.answered_at
            disposition = CallDisposition.ANSWERED if answered else (snap.disposition or CallDisposition.FAILED)
            out.append(
                snap.model_copy(
                    update={
                        "status": CallStatus.ENDED,
                        "ended_at": ended,
                        "disposition": disposition,
                        "hangup_cause": "unknown",
                        "duration": seconds(ended, snap.started_at),
                        "billsec": seconds(ended, answered) if answered else 0,
                        "events": (event,),
                    }
                )
            )
        return out
