"""Prometheus metrics of the gateway (served at /metrics)."""

from __future__ import annotations

import re

from prometheus_client import Counter, Histogram

INBOUND = Counter(
    "igw_inbound_payloads_total",
    "Provider payloads committed, by channel type and outcome (processed, ignored, failed, duplicate).",
    ["channel_type", "status"],
)
INGEST_SECONDS = Histogram(
    "igw_ingest_seconds",
    "Time to commit one provider payload (parse excluded).",
    ["channel_type"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
EVENTS_PUBLISHED = Counter("igw_events_published_total", "Events published to the broker after commit.")
COMMIT_BATCH_SIZE = Histogram(
    "igw_commit_batch_size",
    "Writes committed together in one transaction by the group commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
OUTBOUND_ATTEMPTS = Counter(
    "igw_outbound_attempts_total",
    "Outbound send attempts settled, by channel type, outcome (sent, transient_error, permanent_error) "
    "and provider error code (empty when sent; 'other' beyond the bounded set).",
    ["channel_type", "outcome", "code"],
)
MEDIA_DOWNLOAD_FAILURES = Counter(
    "igw_media_download_failures_total",
    "Failed media downloads, by channel type and whether the file is retried later or failed for good.",
    ["channel_type", "outcome"],
)
REDIS_PUBLISH_FAILURES = Counter(
    "igw_redis_publish_failures_total",
    "Publishes to Redis that failed (events: other nodes catch up from the log; revocation: from the database).",
    ["kind"],
)

# Provider error codes are provider-chosen strings: a label value is kept only
# while it looks like a code and the set stays small, so a misbehaving provider
# cannot grow the series without bound.
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,40}")
MAX_CODES = 64


class CodeLabels:
    def __init__(self, limit: int = MAX_CODES) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, code: str | None) -> str:
        """``code`` as a bounded label value."""
        if not code:
            return ""
        if code in self.seen:
            return code
        if _CODE.fullmatch(code) is None or len(self.seen) >= self.limit:
            return "other"
        self.seen.add(code)
        return code


code_label = CodeLabels()
