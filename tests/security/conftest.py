from __future__ import annotations

from typing import Any

from tests.security.tally import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.requests or TALLY.ws_frames:
        terminalreporter.section("hostile-input suite")
        for line in TALLY.lines():
            terminalreporter.write_line(line)
