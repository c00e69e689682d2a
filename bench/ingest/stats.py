"""Percentiles and where the CPU went (Linux ``/proc``; empty elsewhere)."""

from __future__ import annotations

import asyncio
import math
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _process_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / _TICK


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs since boot."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSample:
    processes: dict[str, float | None]
    self_seconds: float
    machine: tuple[int, int] | None


class CpuMeter:
    """CPU seconds used by named processes (and this one) and the machine's busy share over a phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def sample(self) -> CpuSample:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return CpuSample({name: _process_cpu_seconds(pid) for name, pid in self.pids.items()},
                         usage.ru_utime + usage.ru_stime, _machine_ticks())

    @staticmethod
    def between(before: CpuSample, after: CpuSample, seconds: float) -> dict[str, float]:
        """Cores used on average (1.0 = one core busy the whole phase)."""
        out: dict[str, float] = {}
        if seconds <= 0:
            return out
        for name, start in before.processes.items():
            end = after.processes.get(name)
            if start is not None and end is not None:
                out[name] = round((end - start) / seconds, 2)
        out["bench"] = round((after.self_seconds - before.self_seconds) / seconds, 2)
        if before.machine and after.machine:
            busy = after.machine[0] - before.machine[0]
            total = after.machine[1] - before.machine[1]
            if total > 0:
                out["machine"] = round(busy / total * (os.cpu_count() or 1), 2)
        return out


class WaitSampler:
    """What the database's busy backends are doing, sampled every ``interval`` seconds from
    ``pg_stat_activity``: ``Lock:transactionid`` is a writer queued behind another's row lock (one
    account's ``last_seq``, a conversation); ``idle in transaction`` is a transaction waiting for
    the gateway to send its next statement."""

    def __init__(self, dsn: str, database: str, interval: float = 0.1) -> None:
        self.dsn = dsn
        self.database = database
        self.interval = interval
        self.samples = 0
        self.counts: dict[str, int] = {}

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                rows = await conn.fetch(
                    """SELECT CASE WHEN state = 'active'
                                   THEN coalesce(wait_event_type || ':' || wait_event, 'on CPU')
                                   ELSE 'idle in transaction' END AS w,
                              count(*) AS n
                       FROM pg_stat_activity
                       WHERE datname = $1 AND state IN ('active', 'idle in transaction')
                         AND pid <> pg_backend_pid()
                       GROUP BY 1""",
                    self.database,
                )
                self.samples += 1
                for row in rows:
                    self.counts[row["w"]] = self.counts.get(row["w"], 0) + row["n"]
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def mean_backends(self) -> dict[str, float]:
        """Average number of backends in each state."""
        if not self.samples:
            return {}
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])
        return {k: round(v / self.samples, 2) for k, v in ranked}


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving one database (same host only: read from
    ``/proc``), so the PostgreSQL share can be told apart from whatever else runs on the machine."""

    def __init__(self, dsn: str, database: str) -> None:
        self.dsn = dsn
        self.database = database

    async def sample(self) -> dict[int, float]:
        conn = await asyncpg.connect(self.dsn)
        try:
            pids = [r["pid"] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", self.database)]
        finally:
            await conn.close()
        return {pid: secs for pid in pids if (secs := _process_cpu_seconds(pid)) is not None}

    @staticmethod
    def between(before: dict[int, float], after: dict[int, float], seconds: float) -> float | None:
        if not after or seconds <= 0:
            return None
        # A backend that started during the phase counts whole; one that ended is lost (rare: pools keep theirs).
        return round(sum(secs - before.get(pid, 0.0) for pid, secs in after.items()) / seconds, 2)
