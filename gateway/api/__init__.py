"""REST API under /api/v1 (DESIGN §6). ``routes`` is mounted by ``gateway.app``;
calls (``gateway.api.calls``) and media (``gateway.api.media``) are added there by their modules."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.api import channels, contacts, conversations, events, inbound, keys, messages, retention, stats

routes: list[BaseRoute] = [
    *channels.routes,
    *conversations.routes,
    *messages.routes,
    *contacts.routes,
    *events.routes,
    *inbound.routes,
    *stats.routes,
    *keys.routes,
    *retention.routes,
]
