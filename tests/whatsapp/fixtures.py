"""Loading the WhatsApp fixtures copied under tests/fixtures/whatsapp."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "whatsapp"
PEERS = FIXTURES / "pywa-updates"
PHONE_NUMBER_ID = "110987654321098"  # the number in our own fixtures


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw(name))
    return data


def own_fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.json"))


def peer_examples() -> list[tuple[str, str, dict[str, Any]]]:
    """(file, example name, whole webhook body) for every pywa example."""
    out = []
    for path in sorted(PEERS.glob("*.json")):
        for name, example in json.loads(path.read_text()).items():
            out.append((path.name, name, example))
    return out


def with_phone_number_id(data: Any, phone_number_id: str) -> Any:
    """A copy of a body whose every ``metadata.phone_number_id`` is ``phone_number_id``."""
    if isinstance(data, dict):
        out = {k: with_phone_number_id(v, phone_number_id) for k, v in data.items()}
        if isinstance(out.get("metadata"), dict) and "phone_number_id" in out["metadata"]:
            out["metadata"] = {**out["metadata"], "phone_number_id": phone_number_id}
        return out
    if isinstance(data, list):
        return [with_phone_number_id(v, phone_number_id) for v in data]
    return data
