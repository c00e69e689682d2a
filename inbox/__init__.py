"""The domain over PostgreSQL: ingest, conversations, messages, calls, event log,
outbound queue, retention and the migrations runner. Never imports channels or gateway."""
