"""Sends outbox requests through aiogram, turning Telegram's answers into ``SendResult``."""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import (
    CopyMessage,
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    SendDocument,
    SendMessage,
    SendPhoto,
    SendVoice,
    TelegramMethod,
)
from aiogram.types import BufferedInputFile

from bot.outbox import SendResult

log = logging.getLogger(__name__)

METHODS: dict[str, type[TelegramMethod[Any]]] = {
    "sendMessage": SendMessage,
    "copyMessage": CopyMessage,
    "deleteMessage": DeleteMessage,
    "editMessageText": EditMessageText,
    "editMessageReplyMarkup": EditMessageReplyMarkup,
    "sendPhoto": SendPhoto,
    "sendDocument": SendDocument,
    "sendVoice": SendVoice,
}


def upload(data: bytes, filename: str) -> dict[str, str]:
    """A file to upload, as it is stored in an outbox payload (JSON: base64)."""
    return {"upload_base64": base64.b64encode(data).decode("ascii"), "filename": filename}


def with_files(payload: dict[str, Any]) -> dict[str, Any]:
    """Turn stored uploads back into files aiogram sends as multipart."""
    out = dict(payload)
    for key, value in payload.items():
        if isinstance(value, dict) and "upload_base64" in value:
            out[key] = BufferedInputFile(base64.b64decode(value["upload_base64"]), value["filename"])
    return out


class TelegramTransport:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def __call__(self, method: str, payload: dict[str, Any]) -> SendResult:
        cls = METHODS.get(method)
        if cls is None:
            return SendResult(False, permanent=True, error=f"unknown method {method}")
        try:
            result = await self.bot(cls(**with_files(payload)))
        except TelegramRetryAfter as exc:
            return SendResult(False, retry_after=float(exc.retry_after), error=str(exc), code=429)
        except TelegramForbiddenError as exc:
            return SendResult(False, blocked=True, error=str(exc), code=403)
        except TelegramBadRequest as exc:
            if "message is not modified" in str(exc):
                return SendResult(True, message_id=payload.get("message_id"), code=400)
            log.error("Telegram refused %s: %s", method, exc)
            return SendResult(False, permanent=True, error=str(exc), code=400)
        except (TelegramNotFound, TelegramUnauthorizedError) as exc:
            # A wrong token or API URL: keep the message, an operator will fix the setting.
            return SendResult(False, error=str(exc), code=404 if isinstance(exc, TelegramNotFound) else 401)
        except TelegramServerError as exc:
            return SendResult(False, error=str(exc), code=500)
        except (TimeoutError, TelegramNetworkError, aiohttp.ClientError, OSError) as exc:
            return SendResult(False, error=f"network: {exc}", code=None)
        message_id = getattr(result, "message_id", None)
        return SendResult(True, message_id=message_id, code=200)
