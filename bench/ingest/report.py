"""One printed line per figure, and the whole run as JSON under ``bench/results/``."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def figure_line(name: str, value: float | None, unit: str, context: str = "") -> str:
    shown = "n/a" if value is None else f"{value:,.1f}"
    return f"{name:<30} {shown:>12} {unit:<10} {context}".rstrip()


def machine() -> dict[str, Any]:
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def write_result(directory: Path, result: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"ingest-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return path
