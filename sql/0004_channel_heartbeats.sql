-- When a channel's provider connection last showed life (an AMI event or a Pong).
--
-- A call that ended while no gateway was listening is closed on the next connect
-- with this as its end: the restart time would lengthen it by the whole outage.
-- Written at most every few seconds by the connection's holder, not per event.
CREATE TABLE channel_heartbeats (
    channel_id  bigint PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    account_id  bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    seen_at     timestamptz NOT NULL
);
CREATE INDEX channel_heartbeats_account ON channel_heartbeats (account_id);
