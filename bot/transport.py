"""Sends outbox requests to the Bot API, turning Telegram's answers into ``SendResult``.

Outbox payloads are already Bot API JSON, so plain JSON requests go straight through the bot's
aiohttp session: building aiogram's method model and parsing the whole returned ``Message``
(only its id is needed) cost about 0.5 ms of CPU a message, the largest single cost per citizen
question (benchmarks/bench_bot.py). Requests with files to upload go through aiogram.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
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


def _result(method: str, payload: dict[str, Any], status: int, body: dict[str, Any]) -> SendResult:
    """Telegram's JSON answer as a SendResult (the same mapping as aiogram's exceptions below)."""
    if body.get("ok"):
        result = body.get("result")
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return SendResult(True, message_id=message_id, code=200)
    code = int(body.get("error_code") or status)
    error = f"Telegram server says - {body.get('description', '')}"
    params = body.get("parameters") or {}
    if code == 429 or "retry_after" in params:
        return SendResult(False, retry_after=float(params.get("retry_after", 1)), error=error, code=429)
    if code == 403:
        return SendResult(False, blocked=True, error=error, code=403)
    if code == 400:
        if "message is not modified" in error:
            return SendResult(True, message_id=payload.get("message_id"), code=400)
        log.error("Telegram refused %s: %s", method, error)
        return SendResult(False, permanent=True, error=error, code=400)
    # 401/404 (wrong token or URL: an operator fixes the setting), 5xx: keep the message, retry.
    return SendResult(False, error=error, code=code)


class TelegramTransport:
    def __init__(self, bot: Bot, on_api_error: Callable[[str, str], None] | None = None) -> None:
        self.bot = bot
        self.on_api_error = on_api_error  # (method, code) for the metrics; aiogram's path has its own

    async def _post_json(self, method: str, payload: dict[str, Any]) -> SendResult:
        session = self.bot.session
        http = await session.create_session()  # type: ignore[attr-defined]
        url = session.api.api_url(token=self.bot.token, method=method)
        try:
            async with http.post(
                url,
                data=json.dumps(payload, ensure_ascii=False),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=float(session.timeout)),
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            result = SendResult(False, error=f"network: {exc!r}", code=None)
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                text = raw[:200].decode("utf-8", "replace")
                body = {"ok": False, "error_code": status, "description": text}
            result = _result(method, payload, status, body if isinstance(body, dict) else {})
        if not result.ok and self.on_api_error is not None:
            code = result.code
            label = "network" if code is None else "5xx" if code >= 500 else str(code)
            self.on_api_error(method, label)
        return result

    async def __call__(self, method: str, payload: dict[str, Any]) -> SendResult:
        cls = METHODS.get(method)
        if cls is None:
            return SendResult(False, permanent=True, error=f"unknown method {method}")
        if not any(isinstance(v, dict) and "upload_base64" in v for v in payload.values()):
            return await self._post_json(method, payload)
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
