-- inbox-gateway core schema. Every row carries account_id; enumerations are
-- lowercase text with CHECK constraints mirrored by schema/enums.py.

CREATE TABLE accounts (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    -- Per-account event counter. Taken with UPDATE ... RETURNING inside the
    -- writing transaction: the row lock makes seqs commit in order, gap-free.
    last_seq    bigint NOT NULL DEFAULT 0,
    retention   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    role        text NOT NULL CHECK (role IN ('admin', 'agent')),
    prefix      text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE channels (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    type          text NOT NULL CHECK (type IN ('whatsapp', 'telegram', 'asterisk')),
    name          text NOT NULL,
    config        jsonb NOT NULL DEFAULT '{}'::jsonb,
    secrets       jsonb NOT NULL DEFAULT '{}'::jsonb,   -- write-only through the API
    provider_key  text,                                  -- phone_number_id, bot id, host:port:user
    state         jsonb NOT NULL DEFAULT '{}'::jsonb,    -- adapter state (e.g. polling offset)
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE INDEX channels_account ON channels (account_id);
CREATE UNIQUE INDEX channels_provider_identity ON channels (type, provider_key)
    WHERE deleted_at IS NULL AND provider_key IS NOT NULL;

CREATE TABLE contacts (
    id           bigserial PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         text,
    phone        text,
    is_group     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    redacted_at  timestamptz
);
CREATE INDEX contacts_account ON contacts (account_id, id);

CREATE TABLE contact_identities (
    id                  bigserial PRIMARY KEY,
    account_id          bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contact_id          bigint NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    channel_type        text NOT NULL CHECK (channel_type IN ('whatsapp', 'telegram', 'asterisk')),
    external_id         text NOT NULL,
    display             text,
    unreachable_at      timestamptz,
    unreachable_reason  text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, channel_type, external_id)
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);

CREATE TABLE conversations (
    id                 bigserial PRIMARY KEY,
    account_id         bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel_id         bigint NOT NULL REFERENCES channels(id),
    contact_id         bigint NOT NULL REFERENCES contacts(id),
    status             text NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'pending', 'snoozed', 'resolved')),
    assignee           text,
    unread_count       integer NOT NULL DEFAULT 0,
    last_activity_at   timestamptz NOT NULL DEFAULT now(),
    first_inbound_at   timestamptz,
    first_response_at  timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- At most one unresolved conversation per contact on a channel (threading).
CREATE UNIQUE INDEX conversations_one_active ON conversations (channel_id, contact_id)
    WHERE status <> 'resolved';
CREATE INDEX conversations_account_activity ON conversations (account_id, last_activity_at DESC, id DESC);

CREATE TABLE messages (
    id                    bigserial PRIMARY KEY,
    account_id            bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    conversation_id       bigint NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    channel_id            bigint NOT NULL REFERENCES channels(id),
    direction             text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    type                  text NOT NULL CHECK (type IN ('text', 'image', 'audio', 'video', 'document',
                              'sticker', 'location', 'contacts', 'interactive', 'unsupported')),
    text                  text,
    status                text NOT NULL CHECK (status IN ('received', 'pending', 'sent', 'delivered',
                              'read', 'played', 'failed')),
    external_id           text,
    reply_to_id           bigint REFERENCES messages(id) ON DELETE SET NULL,
    reply_to_external_id  text,
    sender                jsonb,
    author                text,            -- the agent who sent an outbound message
    reactions             jsonb NOT NULL DEFAULT '[]'::jsonb,
    edit_history          jsonb NOT NULL DEFAULT '[]'::jsonb,
    extra                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    raw                   jsonb,
    idempotency_key       text,
    error_code            text,
    error_message         text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    sent_at               timestamptz,
    delivered_at          timestamptz,
    read_at               timestamptz,
    played_at             timestamptz,
    failed_at             timestamptz,
    edited_at             timestamptz,
    deleted_at            timestamptz,
    redacted_at           timestamptz,
    UNIQUE (channel_id, external_id)
);
CREATE UNIQUE INDEX messages_idempotency ON messages (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_conversation ON messages (conversation_id, created_at, id);
CREATE INDEX messages_account_created ON messages (account_id, created_at);

CREATE TABLE media_files (
    id               bigserial PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel_id       bigint NOT NULL REFERENCES channels(id),
    provider_id      text,
    mime_type        text,
    name             text,
    size             bigint,
    sha256           text,              -- of the stored bytes
    expected_sha256  text,              -- as announced by the provider
    source_url       text,
    storage_path     text,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'stored', 'failed', 'too_large')),
    error            text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_files_due ON media_files (next_attempt_at) WHERE status = 'pending';

CREATE TABLE message_media (
    message_id  bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    media_id    bigint NOT NULL REFERENCES media_files(id) ON DELETE CASCADE,
    position    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, media_id)
);
CREATE INDEX message_media_media ON message_media (media_id);

CREATE TABLE calls (
    id                  bigserial PRIMARY KEY,
    account_id          bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel_id          bigint NOT NULL REFERENCES channels(id),
    conversation_id     bigint REFERENCES conversations(id) ON DELETE SET NULL,
    contact_id          bigint REFERENCES contacts(id) ON DELETE SET NULL,
    direction           text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    from_number         text,
    to_number           text,
    caller_name         text,
    status              text NOT NULL CHECK (status IN ('ringing', 'in_progress', 'ended')),
    disposition         text CHECK (disposition IN ('answered', 'no_answer', 'busy', 'failed', 'cancelled')),
    agent               text,
    external_id         text,              -- Asterisk Linkedid
    originate_id        text,              -- ChannelId chosen for click-to-call
    started_at          timestamptz NOT NULL DEFAULT now(),
    answered_at         timestamptz,
    ended_at            timestamptz,
    duration            integer,
    billsec             integer,
    hangup_cause        text,
    recording_media_id  bigint REFERENCES media_files(id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    redacted_at         timestamptz,
    UNIQUE (channel_id, external_id),
    UNIQUE (channel_id, originate_id)
);
CREATE INDEX calls_account_started ON calls (account_id, started_at DESC, id DESC);
CREATE INDEX calls_conversation ON calls (conversation_id, started_at);

CREATE TABLE call_events (
    id           bigserial PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    call_id      bigint NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    type         text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL,
    dedup_key    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, dedup_key)
);

-- The durable event log: one row per change, written in the same transaction.
CREATE TABLE events (
    account_id       bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    seq              bigint NOT NULL,
    name             text NOT NULL CHECK (name IN ('conversation.created', 'conversation.updated',
                         'message.created', 'message.updated', 'call.created', 'call.updated',
                         'call.ended', 'contact.updated')),
    conversation_id  bigint,
    data             jsonb NOT NULL,
    ts               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, seq)
);
CREATE INDEX events_ts ON events (ts);

-- Raw provider payloads, processed or dead-lettered.
CREATE TABLE inbound_events (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel_id    bigint NOT NULL REFERENCES channels(id),
    dedup_key     text,                -- e.g. Telegram update_id, sha256 of a WhatsApp body
    status        text NOT NULL CHECK (status IN ('processed', 'ignored', 'failed')),
    error         text,
    payload       text NOT NULL,       -- verbatim
    attempts      integer NOT NULL DEFAULT 1,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    UNIQUE (channel_id, dedup_key)
);
CREATE INDEX inbound_events_account_status ON inbound_events (account_id, status, id);

-- Updates that arrived before the message they target (statuses, reactions,
-- edits): applied when that message appears.
CREATE TABLE pending_updates (
    id           bigserial PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel_id   bigint NOT NULL REFERENCES channels(id),
    external_id  text NOT NULL,
    event        jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_updates_target ON pending_updates (channel_id, external_id);

CREATE TABLE outbound_jobs (
    id               bigserial PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    message_id       bigint NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    channel_id       bigint NOT NULL REFERENCES channels(id),
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'in_flight', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 8,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    locked_at        timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbound_jobs_due ON outbound_jobs (next_attempt_at) WHERE status = 'queued';

CREATE TABLE outbound_attempts (
    id             bigserial PRIMARY KEY,
    account_id     bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    job_id         bigint NOT NULL REFERENCES outbound_jobs(id) ON DELETE CASCADE,
    attempt        integer NOT NULL,
    outcome        text NOT NULL DEFAULT 'started'
                   CHECK (outcome IN ('started', 'sent', 'transient_error', 'permanent_error', 'unknown')),
    error_code     text,
    error_message  text,
    external_id    text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    UNIQUE (job_id, attempt)
);
