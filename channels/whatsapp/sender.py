"""Outbound text through the Graph API, with errors classified for the outbound worker.

Retrying is the worker's job; this module decides only *whether* a failure is
worth retrying:

- 429, 5xx, a connection that could not be made, and WhatsApp's throughput /
  pair / spam rate limits → :class:`TransientSendError` (with ``Retry-After``);
- a connection lost after the request went out → :class:`PermanentSendError`
  ``delivery_unknown`` (at most once: WhatsApp may have the message);
- every other error answer (131047 outside the 24-hour window, bad recipient,
  bad token...) → :class:`PermanentSendError` with the provider's code and a
  readable reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

from channels.whatsapp.client import GraphApiClient, GraphApiError, GraphTransportError
from schema.outbound import OutboundRequest, PermanentSendError, SendResult, TransientSendError

# The outbound worker's code for "the provider may or may not have it".
DELIVERY_UNKNOWN = "delivery_unknown"

# Graph error codes that mean "later", whatever the HTTP status says.
TRANSIENT_CODES = frozenset({
    "1",       # API unknown (temporary)
    "2",       # API service temporarily unavailable
    "4",       # application request limit reached
    "80007",   # WhatsApp Business Account rate limit
    "130429",  # Cloud API throughput reached
    "131000",  # something went wrong (Meta advises retrying)
    "131016",  # service unavailable
    "131048",  # spam rate limit
    "131056",  # (business, consumer) pair rate limit
    "133004",  # server temporarily unavailable
})


class WhatsAppSender:
    """Implements :class:`schema.outbound.OutboundSender` for WhatsApp channels."""

    def __init__(self, client: GraphApiClient) -> None:
        self._client = client

    async def send(self, request: OutboundRequest) -> SendResult:
        phone_number_id = request.channel_config.get("phone_number_id")
        token = request.channel_secrets.get("access_token")
        if not isinstance(phone_number_id, str) or not phone_number_id:
            raise PermanentSendError("channel_config", "the channel has no phone_number_id")
        if not isinstance(token, str) or not token:
            raise PermanentSendError("channel_config", "the channel has no access_token")
        if not request.text:
            raise PermanentSendError("unsupported_content", "only text messages can be sent to WhatsApp yet")
        try:
            wamid = await self._client.send_text(
                phone_number_id=phone_number_id,
                access_token=token,
                to=preferred_recipient(request.to, request.identities),
                body=request.text,
                reply_to=request.reply_to_external_id,
            )
        except GraphTransportError as exc:
            if exc.request_sent:
                # The request may have reached WhatsApp (reset or timeout before the answer), and the
                # Graph API has no idempotency key: sending again could deliver the message twice.
                raise PermanentSendError(
                    DELIVERY_UNKNOWN,
                    f"{exc}; it is unknown whether WhatsApp accepted the message, so it is not sent again "
                    "automatically",
                ) from exc
            raise TransientSendError("network", str(exc)) from exc
        except GraphApiError as exc:
            raise classify(exc) from exc
        return SendResult(external_id=wamid, sent_at=datetime.now(UTC))


def _is_phone(identity: str) -> bool:
    digits = identity.removeprefix("+")
    return digits.isascii() and digits.isdigit()


def preferred_recipient(to: str, identities: tuple[str, ...]) -> str:
    """The phone number (wa_id) whenever the contact has one, the user id (BSUID) otherwise.

    WhatsApp documents that the phone number takes precedence; a BSUID is the
    address of users whose number is hidden from the business.
    """
    return next((i for i in (to, *identities) if _is_phone(i)), to)


def classify(exc: GraphApiError) -> TransientSendError | PermanentSendError:
    code = exc.code or f"http_{exc.status}"
    if exc.code == "invalid_response":
        # The provider accepted the request but we cannot tell the message id: sending again
        # could deliver it twice, so this is not retried.
        return PermanentSendError(code, exc.reason)
    if exc.status == 429 or exc.status >= 500 or exc.code in TRANSIENT_CODES or exc.is_transient is True:
        return TransientSendError(code, exc.reason, retry_after=exc.retry_after)
    return PermanentSendError(code, exc.reason)
