"""One NewType per provider id, so ids of different providers never mix silently."""

from __future__ import annotations

from typing import NewType

WaMessageId = NewType("WaMessageId", str)
WaPhoneNumberId = NewType("WaPhoneNumberId", str)
TelegramChatId = NewType("TelegramChatId", int)
TelegramUpdateId = NewType("TelegramUpdateId", int)
AmiLinkedId = NewType("AmiLinkedId", str)
