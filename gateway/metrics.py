"""Prometheus metrics of the gateway (served at /metrics)."""

from __future__ import annotations

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
