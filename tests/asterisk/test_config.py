"""An asterisk channel's config: what the runner and click-to-call rely on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from channels.asterisk.config import AgentMatcher, AsteriskConfig, normalize_number

BASE = {"host": "pbx", "username": "gw"}


def test_the_channel_config_refuses_an_originate_channel_it_cannot_fill():
    for bad in ("PJSIP/{agent}@{domain}", "PJSIP/1001", "{agent}", "PJSIP/{0}"):
        with pytest.raises(ValidationError):
            AsteriskConfig(**BASE, originate_channel=bad)
    assert AsteriskConfig(**BASE, originate_channel="SIP/{agent}").originate_channel == "SIP/{agent}"


def test_agents_are_named_by_their_extension_and_only_whole_devices_match():
    agents = AgentMatcher(r"PJSIP/1\d{3}")
    assert agents.agent_of("PJSIP/1001-0000004f") == "1001"
    assert agents.agent_of("PJSIP/1001") == "1001"
    assert agents.agent_of("PJSIP/10012-00000001") is None
    assert agents.agent_of("PJSIP/carrier-0000004e") is None
    assert AgentMatcher(r"SIP/agent-(\d+)").agent_of("SIP/agent-7-00000001") == "7"


@pytest.mark.parametrize(("raw", "expected"), [
    ("+14155550123", "+14155550123"),
    ("0033142685300", "+33142685300"),
    ("+1 (555) 123-4567", "+15551234567"),
    ("15105550100", "15105550100"),
    ("<unknown>", None),
    ("anonymous", None),
    ("", None),
])
def test_numbers_become_e164_when_they_say_their_country(raw, expected):
    assert normalize_number(raw) == expected
