"""Signed WhatsApp text webhooks with unique wamids, shaped like ``tests/fixtures/whatsapp/text.json``."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from dataclasses import dataclass

from channels.whatsapp.verify import SIGNATURE_HEADER, sign


@dataclass(frozen=True)
class SignedWebhook:
    wamid: str
    body: bytes
    headers: dict[str, str]


class WebhookMaker:
    """Texts from ``contacts`` different customers in turn: one sender per message would create a
    contact and a conversation every time, one sender for all would serialise on one conversation."""

    def __init__(self, *, phone_number_id: str, app_secret: str, contacts: int) -> None:
        self.phone_number_id = phone_number_id
        self.app_secret = app_secret
        self.contacts = contacts
        self._run = secrets.token_hex(4)
        self._counter = itertools.count()

    def contact_number(self, index: int) -> str:
        return f"4915{index % self.contacts:09d}"

    def next(self) -> SignedWebhook:
        i = next(self._counter)
        wamid = f"wamid.bench.{self._run}.{i}"
        wa_id = self.contact_number(i)
        data = {
            "object": "whatsapp_business_account",
            "entry": [{
                "id": "209876543210987",
                "changes": [{
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550109876", "phone_number_id": self.phone_number_id},
                        "contacts": [{"profile": {"name": f"Kunde {wa_id[-4:]}"}, "wa_id": wa_id}],
                        "messages": [{
                            "from": wa_id,
                            "id": wamid,
                            "timestamp": str(int(time.time())),
                            "type": "text",
                            "text": {"body": f"Hallo, ist meine Bestellung {4711 + i} schon unterwegs?"},
                        }],
                    },
                    "field": "messages",
                }],
            }],
        }
        # Compact, as WhatsApp serialises; the signature covers these exact bytes.
        body = json.dumps(data, separators=(",", ":")).encode()
        headers = {SIGNATURE_HEADER: sign(body, self.app_secret), "Content-Type": "application/json"}
        return SignedWebhook(wamid, body, headers)
