"""Counts of what the hostile-input suite sent and got back, printed at the end of the run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Tally:
    requests: int = 0
    status_4xx: int = 0
    status_5xx: int = 0
    ws_frames: int = 0
    ws_error_frames: int = 0
    ws_server_errors: int = 0  # closes with 1011
    failures: list[str] = field(default_factory=list)

    def http(self, method: str, url: str, status: int) -> None:
        self.requests += 1
        if 400 <= status < 500:
            self.status_4xx += 1
        elif status >= 500:
            self.status_5xx += 1
            self.failures.append(f"{status} {method} {url[:200]}")

    def lines(self) -> list[str]:
        out = [
            f"hostile input: {self.requests} requests, {self.status_4xx} answered 4xx, {self.status_5xx} answered 5xx",
            f"hostile input: {self.ws_frames} WebSocket frames, {self.ws_error_frames} error frames, "
            f"{self.ws_server_errors} closed with 1011",
        ]
        out += [f"  5xx: {line}" for line in self.failures[:20]]
        return out


TALLY = Tally()
