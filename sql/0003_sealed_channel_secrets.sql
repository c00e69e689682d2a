-- Channel secrets at rest are encrypted (finding 10 of the security audit).
--
-- secrets_enc holds a Fernet token sealed by the gateway under GATEWAY_SECRET_KEY
-- (gateway/secret_box.py); NULL means the channel has no secrets. SQL cannot
-- encrypt (it never sees the key), so the old plaintext column is renamed, not
-- converted: the gateway seals what it holds and empties it at its first start
-- (and `inbox-gateway secrets rotate` does the same). The rename also makes any
-- forgotten writer of plaintext secrets fail loudly instead of storing them.
ALTER TABLE channels RENAME COLUMN secrets TO secrets_plaintext;
COMMENT ON COLUMN channels.secrets_plaintext IS
    'legacy plaintext secrets from before 0003; sealed into secrets_enc and emptied at gateway start';
ALTER TABLE channels ADD COLUMN secrets_enc text;
COMMENT ON COLUMN channels.secrets_enc IS 'Fernet token of the secrets JSON object (gateway/secret_box.py); NULL = none';
