from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.context import ChannelSetup
from inbox.accounts import create_api_key
from schema.enums import ApiKeyRole, ChannelType
from tests.api.helpers import inbound, make_account, make_channel
from tests.server import run_server


@dataclass
class Wakes:
    count: int = 0

    def __call__(self) -> None:
        self.count += 1


@dataclass
class SetupCalls:
    calls: list[tuple[dict, dict, int | None]] = field(default_factory=list)

    async def __call__(self, ctx, config, secrets, channel_id):
        """Stands in for the Telegram hook (which asks getMe): the bot id is the token's prefix."""
        self.calls.append((config, secrets, channel_id))
        bot_id = secrets["bot_token"].split(":")[0]
        return ChannelSetup(provider_key=bot_id, config={**config, "bot_id": int(bot_id), "username": "acme_bot"})


@pytest.fixture
def wakes():
    return Wakes()


@pytest.fixture
def telegram_setup():
    return SetupCalls()


@pytest.fixture
async def server(db_url, wakes, telegram_setup):
    async with run_server(db_url, gateway_workers=False, extras={"wake_supervisor": wakes},
                          setup_hooks={ChannelType.TELEGRAM: telegram_setup}) as srv:
        yield srv


@dataclass
class Tenant:
    account_id: int
    admin_key: str
    agent_key: str
    channel_id: int
    conversation_id: int
    message_id: int
    contact_id: int


async def make_tenant(pool, name: str, phone_number_id: str, contact: str) -> Tenant:
    account_id, admin_key = await make_account(pool, name)
    agent_key = await create_api_key(pool, account_id, ApiKeyRole.AGENT, name=f"{name} agent")
    channel = await make_channel(pool, account_id, provider_key=phone_number_id, phone_number_id=phone_number_id)
    conversation_id = await inbound(pool, channel, external_id=f"wamid.{name}.1", contact=contact,
                                    name=f"{name} customer")
    message_id = await pool.fetchval("SELECT id FROM messages WHERE conversation_id = $1", conversation_id)
    contact_id = await pool.fetchval("SELECT contact_id FROM conversations WHERE id = $1", conversation_id)
    return Tenant(account_id, admin_key, agent_key, channel.id, conversation_id, message_id, contact_id)


@pytest.fixture
async def tenants(pool):
    a = await make_tenant(pool, "alpha", "1001", "4915100000001")
    b = await make_tenant(pool, "beta", "2002", "4915100000002")
    return a, b
