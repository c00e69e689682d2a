"""Every response model of ``schema.resources`` matches what its route really answers.

One request per published operation against a populated gateway; each answer is parsed
strictly by the model its route declares for that status (models forbid unknown fields,
so a field the JSON helpers add or drop without the model fails here)."""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import BaseModel

from gateway.openapi import operations_of
from schema.resources import Error
from tests.openapi.world import populated_world


def _declared(app) -> dict[tuple[str, str], object]:
    return {(m, p): op for m, p, op in operations_of(app.routes) if op.published}


async def test_every_response_model_matches_a_real_response(db_url, pool, tmp_path):
    async with populated_world(db_url, pool, tmp_path / "media") as p:
        w = p.world
        ops = _declared(w.server.app)
        admin = w.admin()
        tg_body = json.dumps({"update_id": 1, "message": {
            "message_id": 5, "date": 1767225600, "chat": {"id": 42, "type": "private", "first_name": "Tom"},
            "from": {"id": 42, "is_bot": False, "first_name": "Tom"}, "text": "hi"}}).encode()
        wa_status = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
        digest = hmac.new(b"x", b"", hashlib.sha256).hexdigest()
        conv, call = w.conversation_id, p.call_id
        # (method, declared path, concrete path, JSON body, headers, expected status)
        requests = [
            ("GET", "/healthz", "/healthz", None, {}, 200),
            ("GET", "/readyz", "/readyz", None, {}, 200),
            ("GET", "/api/v1/channels", "/api/v1/channels", None, admin, 200),
            ("POST", "/api/v1/channels", "/api/v1/channels",
             {"type": "whatsapp", "name": "second", "config": {"phone_number_id": "2002"},
              "secrets": {"access_token": "t", "app_secret": "s", "verify_token": "v"}}, admin, 201),
            ("GET", "/api/v1/channels/{id}", f"/api/v1/channels/{w.asterisk_channel}", None, admin, 200),
            ("PATCH", "/api/v1/channels/{id}", f"/api/v1/channels/{w.telegram_channel}", {"name": "bot 2"},
             admin, 200),
            ("GET", "/api/v1/conversations", "/api/v1/conversations", None, admin, 200),
            ("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}", None, admin, 200),
            ("PATCH", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}",
             {"status": "pending", "assignee": "ana"}, admin, 200),
            ("POST", "/api/v1/conversations/{id}/read", f"/api/v1/conversations/{conv}/read", None, admin, 200),
            ("GET", "/api/v1/conversations/{id}/timeline", f"/api/v1/conversations/{conv}/timeline", None, admin,
             200),
            ("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
             {"text": "on it", "reply_to_id": p.image_message_id}, {**admin, "Idempotency-Key": "k1"}, 202),
            ("GET", "/api/v1/messages/{id}", f"/api/v1/messages/{p.image_message_id}", None, admin, 200),
            ("GET", "/api/v1/contacts", "/api/v1/contacts", None, admin, 200),
            ("GET", "/api/v1/contacts/{id}", f"/api/v1/contacts/{p.contact_id}", None, admin, 200),
            ("GET", "/api/v1/calls", "/api/v1/calls", None, admin, 200),
            ("POST", "/api/v1/calls", "/api/v1/calls",
             {"channel_id": w.asterisk_channel, "agent": "1001", "to_number": "+15551234567"}, admin, 202),
            ("GET", "/api/v1/calls/{id}", f"/api/v1/calls/{call}", None, admin, 200),
            ("GET", "/api/v1/events", "/api/v1/events", None, admin, 200),
            ("GET", "/api/v1/inbound", "/api/v1/inbound", None, admin, 200),
            ("GET", "/api/v1/inbound/{id}", f"/api/v1/inbound/{p.inbound_id}", None, admin, 200),
            ("GET", "/api/v1/stats", "/api/v1/stats", None, admin, 200),
            ("GET", "/api/v1/keys", "/api/v1/keys", None, admin, 200),
            ("POST", "/api/v1/keys", "/api/v1/keys", {"name": "bot", "role": "agent"}, admin, 201),
            ("GET", "/api/v1/retention", "/api/v1/retention", None, admin, 200),
            ("PUT", "/api/v1/retention", "/api/v1/retention", {"messages_days": 365, "redact_after_days": 30},
             admin, 200),
            ("GET", "/api/v1/retention/preview", "/api/v1/retention/preview", None, admin, 200),
            ("POST", "/webhooks/telegram/{channel_id}", f"/webhooks/telegram/{w.telegram_channel}", tg_body,
             w.telegram_headers(), 200),
            ("POST", "/webhooks/whatsapp/{channel_id}", f"/webhooks/whatsapp/{w.whatsapp_channel}", wa_status,
             w.whatsapp_headers(wa_status), 200),
            # Errors: the one shape for all of them.
            ("GET", "/api/v1/channels/{id}", "/api/v1/channels/999999", None, admin, 404),
            ("GET", "/api/v1/conversations", "/api/v1/conversations", None, {}, 401),
            ("GET", "/api/v1/keys", "/api/v1/keys", None, {"Authorization": f"Bearer {w.agent_key}"}, 403),
            ("POST", "/api/v1/keys", "/api/v1/keys", {"role": "owner"}, admin, 422),
            ("GET", "/api/v1/events", "/api/v1/events?after=x", None, admin, 400),
            ("POST", "/webhooks/whatsapp/{channel_id}", f"/webhooks/whatsapp/{w.whatsapp_channel}", b"{}",
             {"X-Hub-Signature-256": f"sha256={digest}"}, 401),
        ]
        covered = set()
        for method, declared, path, body, headers, status in requests:
            content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            r = await w.request(method, path, body=content,
                                headers={**headers, **({"Content-Type": "application/json"} if content else {})})
            assert r.status_code == status, (method, path, r.status_code, r.text)
            op = ops[(method, declared)]
            model = op.ok.get(status) if status < 400 else Error
            assert status < 400 or status in _error_statuses(w.server.app, method, declared), (method, declared)
            assert isinstance(model, type) and issubclass(model, BaseModel), (method, declared, status)
            model.model_validate_json(r.content, strict=True)
            covered.add((method, declared))
        with_models = {key for key, op in ops.items() if any(isinstance(b, type) for b in op.ok.values())}
        assert with_models - covered == set()
        # Filled in, not only well-typed: the page shows what the models promise.
        call_item = (await w.request("GET", f"/api/v1/calls/{call}", headers=admin)).json()
        assert call_item["recording"]["mime_type"] == "audio/wav" and call_item["events"][0]["type"] == "answered"
        message = (await w.request("GET", f"/api/v1/messages/{p.failed_message_id}", headers=admin)).json()
        assert message["error"] == {"code": "131047", "message": "Re-engagement message"}
        channel = (await w.request("GET", f"/api/v1/channels/{w.asterisk_channel}", headers=admin)).json()
        assert channel["connection"] == {"status": "connected", "reason": None}


def _error_statuses(app, method: str, path: str) -> set[int]:
    from gateway.openapi import build_spec

    responses = build_spec(app.routes)["paths"][path][method.lower()]["responses"]
    return {int(s) for s in responses}
