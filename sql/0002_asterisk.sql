-- Asterisk click-to-call requests.
--
-- POST /api/v1/calls may be served by a process that does not hold the channel's
-- AMI connection. It inserts the call (outbound, ringing) and one request here,
-- and NOTIFYs igw_originate. The lease holder claims the request (queued ->
-- sending) and COMMITS that before it writes the Originate: a request is placed
-- at most once, and one whose outcome is unknown is never sent again.
CREATE TABLE call_originates (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel_id    bigint NOT NULL REFERENCES channels(id),
    call_id       bigint NOT NULL UNIQUE REFERENCES calls(id) ON DELETE CASCADE,
    originate_id  text NOT NULL,                -- the ChannelId (and so the Linkedid) we chose
    agent         text NOT NULL,
    to_number     text NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'sending', 'accepted', 'rejected', 'unknown', 'expired')),
    error         text,
    node_id       text,                         -- the process that claimed it
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    finished_at   timestamptz,
    UNIQUE (channel_id, originate_id)
);
CREATE INDEX call_originates_queued ON call_originates (channel_id, id) WHERE status = 'queued';
CREATE INDEX call_originates_account ON call_originates (account_id);

-- Open calls of a channel, for reconciliation after a reconnect.
CREATE INDEX calls_open ON calls (channel_id) WHERE status <> 'ended';
