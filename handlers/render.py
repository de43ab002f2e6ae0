"""Render services' plain replies as Telegram requests for the outbox (HTML, escaped, split)."""

from __future__ import annotations

import html
from typing import Any

from bot.replies import Outgoing, Reply
from handlers.callbacks import pack

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# Room for the header and "(2/3)" part marks; counted in UTF-16 units as Telegram does.
CHUNK = 3800


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = CHUNK) -> list[str]:
    """Split at paragraph, line or sentence ends so no piece exceeds ``limit`` UTF-16 units."""
    if utf16_len(text) <= limit:
        return [text]
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        # Largest prefix within the limit, then back off to a natural break.
        cut = limit
        while utf16_len(rest[:cut]) > limit:
            cut -= 1
        window = rest[:cut]
        for sep in ("\n\n", "\n", "。", "！", "？", "；", ". ", "，", " "):
            pos = window.rfind(sep)
            if pos > cut // 2:
                cut = pos + len(sep)
                break
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n")
    if rest.strip():
        pieces.append(rest)
    return [p for p in pieces if p.strip()]


def keyboard(reply: Reply) -> dict[str, Any] | None:
    if not reply.buttons:
        return None
    return {
        "inline_keyboard": [
            [{"text": b.label[:60] or "…", "callback_data": pack(b)} for b in row] for row in reply.buttons
        ]
    }


def html_parts(reply: Reply) -> list[str]:
    """The reply as one or more HTML texts; only our own tags, user text always escaped."""
    body = reply.text or ""
    chunks = split_text(body) if body.strip() else [""]
    out = []
    for i, chunk in enumerate(chunks):
        parts = []
        if reply.header and i == 0:
            parts.append(f"<b>{html.escape(reply.header)}</b>")
        if len(chunks) > 1:
            parts.append(f"({i + 1}/{len(chunks)})")
        if chunk.strip():
            parts.append(html.escape(chunk))
        if reply.footer and i == len(chunks) - 1:
            parts.append(f"<i>{html.escape(reply.footer)}</i>")
        out.append("\n".join(parts) if parts else "…")
    return out


def to_requests(item: Outgoing) -> list[tuple[str, dict[str, Any]]]:
    """Outbox requests (method, payload) for one outgoing message."""
    if item.delete_message_id is not None:
        return [("deleteMessage", {"message_id": item.delete_message_id})]
    if item.copy_from is not None:
        caption = item.caption or ""
        if len(caption) > CAPTION_LIMIT - 10:
            caption = caption[: CAPTION_LIMIT - 11] + "…"
        payload: dict[str, Any] = {"from_chat_id": item.copy_from[0], "message_id": item.copy_from[1]}
        if caption:
            payload.update(caption=html.escape(caption), parse_mode="HTML")
        return [("copyMessage", payload)]
    assert item.reply is not None
    texts = html_parts(item.reply)
    markup = keyboard(item.reply)
    if item.edit_card:
        # The card is edited in place; its message id is looked up when the edit is sent.
        payload = {"text": texts[0], "parse_mode": "HTML", "ticket_card": item.ticket_id}
        if markup:
            payload["reply_markup"] = markup
        return [("editMessageText", payload)]
    requests: list[tuple[str, dict[str, Any]]] = []
    for i, text in enumerate(texts):
        payload = {"text": text, "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}}
        if markup and i == len(texts) - 1:
            payload["reply_markup"] = markup
        requests.append(("sendMessage", payload))
    return requests
