"""In-process fake of the Telegram Bot API for end-to-end tests of the aiogram bot.

Usage::

    async with FakeTelegram(token="123:ABC") as server:
        bot = Bot(server.token, session=AiohttpSession(api=TelegramAPIServer.from_base(server.url)))
        server.push_message(42, "/start")
        call = await server.wait_for(method="sendMessage", chat_id=42)

The server speaks the real wire protocol (``POST /bot<token>/<method>`` with urlencoded, multipart or
JSON bodies), validates requests with Telegram's error wording, records every call, and supports
fault injection (``fail_next``, ``block_chat``).  Deliberate deviations from Telegram: a bare ``&``
in HTML is rejected (Telegram keeps it literally; the docs require ``&amp;``) and ``setWebhook``
accepts plain ``http://`` URLs so a local aiohttp app can receive updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import logging
import mimetypes
import re
import secrets
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import aiohttp
from aiohttp import web

JSON = dict[str, Any]
_T = TypeVar("_T")
_log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- text & entities


class EntityParseError(Exception):
    """Raised by the parse_mode parsers; becomes "Bad Request: can't parse entities: ..."."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram uses for limits and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _boff(text: str, index: int) -> int:
    return len(text[:index].encode())


class _Out:
    """Plain-text accumulator that tracks the current UTF-16 position."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.pos += utf16_len(chunk)

    def text(self) -> str:
        return "".join(self.parts)


_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}  # fmt: skip
_HTML_ENTITY_RE = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,7}));")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z0-9_-]*")
_UNQUOTED_VALUE_RE = re.compile(r"[^\s>]*")


def _html_entity(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    if match.group(1):
        return _NAMED_ENTITIES[match.group(1)]
    code = int(match.group(2)) if match.group(2) else int(match.group(3), 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def parse_html(text: str) -> tuple[str, list[JSON]]:
    """Parse Telegram-flavoured HTML into (text, entities); raises EntityParseError like tdlib."""
    out, entities = _Out(), []
    stack: list[tuple[str, int, dict[str, str]]] = []  # (tag, start position, attributes)
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "&":
            match = _HTML_ENTITY_RE.match(text, i)
            decoded = _html_entity(match)
            if decoded is None or match is None:
                raise EntityParseError(f"Unsupported HTML entity at byte offset {_boff(text, i)}")
            out.add(decoded)
            i = match.end()
            continue
        if char != "<":
            stops = [p for p in (text.find("<", i), text.find("&", i)) if p >= 0]
            end = min(stops) if stops else n
            out.add(text[i:end])
            i = end
            continue
        begin = _boff(text, i)
        if text.startswith("</", i):
            end = text.find(">", i)
            if end < 0:
                raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
            name = text[i + 2 : end].strip().lower()
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
            tag, start, attrs = stack.pop()
            if name != tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", found "</{name}>"'
                )
            _close_html_tag(tag, start, attrs, out.pos, entities, stack)
            i = end + 1
            continue
        name_match = _TAG_NAME_RE.match(text, i + 1)
        assert name_match is not None
        name, i = name_match.group().lower(), name_match.end()
        if name not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {begin}')
        attrs, i = _parse_html_attributes(text, i, name, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError(f"Expected custom emoji identifier at byte offset {begin}")
        stack.append((name, out.pos, attrs))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.text(), entities


def _parse_html_attributes(text: str, i: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    attrs: dict[str, str] = {}
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
        if text[i] == ">":
            return attrs, i + 1
        name_match = _ATTR_NAME_RE.match(text, i)
        assert name_match is not None
        attr, i = name_match.group().lower(), name_match.end()
        if not attr:
            raise EntityParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            attrs[attr] = ""  # value-less attribute, e.g. <blockquote expandable>
            continue
        i += 1
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] in "'\"":
            close = text.find(text[i], i + 1)
            if close < 0:
                raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
            value, i = text[i + 1 : close], close + 1
        else:
            value_match = _UNQUOTED_VALUE_RE.match(text, i)
            assert value_match is not None
            value, i = value_match.group(), value_match.end()
        attrs[attr] = _HTML_ENTITY_RE.sub(lambda m: _html_entity(m) or m.group(), value)


def _close_html_tag(
    tag: str, start: int, attrs: dict[str, str], pos: int, entities: list[JSON], stack: list[Any]
) -> None:
    kind = _HTML_TAGS[tag]
    css = attrs.get("class", "")
    if tag == "code" and stack and stack[-1][0] == "pre" and css.startswith("language-"):
        stack[-1][2]["language"] = css.removeprefix("language-")
        return
    if pos <= start:
        return
    entity: JSON = {"type": kind, "offset": start, "length": pos - start}
    if tag == "a":
        href = attrs.get("href", "")
        if not href:
            return
        if user_id := re.fullmatch(r"tg://user\?id=(\d+)", href):
            user = {"id": int(user_id[1]), "is_bot": False, "first_name": ""}
            entity.update(type="text_mention", user=user)
        else:
            entity["url"] = href
    elif tag == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs["emoji-id"]
    entities.append(entity)


_MD2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD2_OPEN = (
    ("```", "pre"), ("`", "code"), ("__", "underline"), ("_", "italic"), ("*", "bold"),
    ("~", "strikethrough"), ("||", "spoiler"), ("![", "custom_emoji"), ("[", "text_link"),
)  # fmt: skip
_MD2_CLOSE = {tok: tok for tok in ("```", "`", "__", "_", "*", "~", "||")}
_MD2_CLOSE_BY_KIND = {kind: _MD2_CLOSE.get(tok, "]") for tok, kind in _MD2_OPEN}
_MD2_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
}  # fmt: skip


def parse_markdown_v2(text: str) -> tuple[str, list[JSON]]:
    """Approximation of tdlib's MarkdownV2 parser (escapes, nesting, links, pre, block quotes)."""
    out, entities = _Out(), []
    stack: list[tuple[str, int, int, str]] = []  # (kind, start position, byte offset, pre language)
    quote: tuple[int, bool] | None = None  # (start position, expandable)
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        top = stack[-1] if stack else None
        if char == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.add(text[i + 1])
            i += 2
            continue
        if top and top[0] in ("code", "pre"):
            closer = _MD2_CLOSE_BY_KIND[top[0]]
            if text.startswith(closer, i):
                stack.pop()
                _md2_entity(entities, top, out.pos)
                i += len(closer)
            else:
                out.add(char)
                i += 1
            continue
        if (i == 0 or text[i - 1] == "\n") and (char == ">" or text.startswith("**>", i)):
            expandable = text.startswith("**>", i)
            quote = quote or (out.pos, expandable)
            i += 3 if expandable else 1
            continue
        if char == "\n" and quote and not text.startswith((">", "**>"), i + 1):
            _md2_quote(entities, quote, out.pos)
            quote = None
        ends_line = i + 2 == n or text.startswith("\n", i + 2)
        if quote and text.startswith("||", i) and ends_line and not (top and top[0] == "spoiler"):
            i += 2  # "||" closing an expandable block quote
            continue
        if char not in _MD2_RESERVED:
            out.add(char)
            i += 1
            continue
        if top and text.startswith(_MD2_CLOSE_BY_KIND[top[0]], i):
            stack.pop()
            i += len(_MD2_CLOSE_BY_KIND[top[0]])
            url = ""
            if top[0] in ("text_link", "custom_emoji") and i < n and text[i] == "(":
                url, i = _md2_url(text, i + 1)
            _md2_entity(entities, top, out.pos, url)
            continue
        for token, kind in _MD2_OPEN:
            if text.startswith(token, i):
                language = ""
                i += len(token)
                if kind == "pre":
                    newline = text.find("\n", i)
                    first_line = text[i:newline] if newline >= 0 else ""
                    if newline >= 0 and re.fullmatch(r"[\w+#.-]*", first_line):
                        language, i = first_line, newline + 1
                stack.append((kind, out.pos, _boff(text, i - len(token)), language))
                break
        else:
            reason = "is reserved and must be escaped with the preceding '\\'"
            raise EntityParseError(f"Character '{char}' {reason}")
    if stack:
        kind, _, byte_offset, _ = stack[-1]
        raise EntityParseError(f"Can't find end of {_MD2_NAMES[kind]} entity at byte offset {byte_offset}")
    if quote:
        _md2_quote(entities, quote, out.pos)
    return out.text(), entities


def _md2_url(text: str, i: int) -> tuple[str, int]:
    url: list[str] = []
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            url.append(text[i + 1])
            i += 2
        elif text[i] == ")":
            return "".join(url), i + 1
        else:
            url.append(text[i])
            i += 1
    raise EntityParseError(f"Can't find end of a URL at byte offset {_boff(text, i)}")


def _md2_entity(entities: list[JSON], top: tuple[str, int, int, str], pos: int, url: str = "") -> None:
    kind, start, _, language = top
    if pos <= start or (kind in ("text_link", "custom_emoji") and not url):
        return
    entity: JSON = {"type": kind, "offset": start, "length": pos - start}
    if kind == "text_link":
        entity["url"] = url
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = url.rpartition("id=")[2]
    elif language:
        entity["language"] = language
    entities.append(entity)


def _md2_quote(entities: list[JSON], quote: tuple[int, bool], pos: int) -> None:
    if pos > quote[0]:
        kind = "expandable_blockquote" if quote[1] else "blockquote"
        entities.append({"type": kind, "offset": quote[0], "length": pos - quote[0]})


def parse_markdown(text: str) -> tuple[str, list[JSON]]:
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    out, entities = _Out(), []
    i, n = 0, len(text)
    kinds = {"*": "bold", "_": "italic", "`": "code"}
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.add(char)
            i += 1
            continue
        token = "```" if text.startswith("```", i) else ("](" if char == "[" else char)
        end = text.find(token if char != "[" else "]", i + (3 if token == "```" else 1))
        if end < 0 or (char == "[" and (not text.startswith("](", end) or text.find(")", end) < 0)):
            raise EntityParseError(f"Can't find end of the entity starting at byte offset {_boff(text, i)}")
        start = out.pos
        if char == "[":
            close = text.find(")", end)
            out.add(text[i + 1 : end])
            entity: JSON = {"type": "text_link", "url": text[end + 2 : close]}
            i = close + 1
        elif token == "```":
            out.add(text[i + 3 : end])
            entity, i = {"type": "pre"}, end + 3
        else:
            out.add(text[i + 1 : end])
            entity, i = {"type": kinds[char]}, end + 1
        if out.pos > start:
            entities.append({**entity, "offset": start, "length": out.pos - start})
    return out.text(), entities


_PARSERS: dict[str, Callable[[str], tuple[str, list[JSON]]]] = {
    "html": parse_html,
    "markdownv2": parse_markdown_v2,
    "markdown": parse_markdown,
}


def _strip_entities(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Trim surrounding whitespace like Telegram does and shift/clip entities accordingly."""
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    plain = text.strip()
    total, result = utf16_len(plain), []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    result.sort(key=lambda e: (e["offset"], -e["length"]))
    return plain, result


def format_text(raw: str | None, parse_mode: str | None, entities: Any = None) -> tuple[str, list[JSON]]:
    """Return Telegram's (plain text, entities) for a text/caption, or raise ApiError(400)."""
    raw = raw if isinstance(raw, str) else ""
    if isinstance(entities, list):
        return _strip_entities(raw, [e for e in entities if isinstance(e, dict)])
    if not parse_mode:
        return _strip_entities(raw, [])
    parser = _PARSERS.get(parse_mode.lower())
    if parser is None:
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    try:
        return _strip_entities(*parser(raw))
    except EntityParseError as exc:
        raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None


# ----------------------------------------------------------------------------- records


class ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after


class WaitTimeout(AssertionError, TimeoutError):
    """Raised by wait_for / wait_sent_count; is both an AssertionError and an asyncio.TimeoutError."""


@dataclass
class SentCall:
    """One API call made by the bot. ``text`` is the plain text (or caption) after entity parsing."""

    method: str
    params: JSON
    chat_id: int | str | None = None
    text: str | None = None
    raw_text: str | None = None
    parse_mode: str | None = None
    reply_markup: JSON | None = None
    message_id: int | None = None
    reply_to_message_id: int | None = None
    entities: list[JSON] = field(default_factory=list)
    result: Any = None
    ok: bool = True
    status: int = 200
    error: str | None = None
    time: float = field(default_factory=time.monotonic)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def short(self) -> str:
        state = "ok" if self.ok else f"{self.status} {self.error}"
        where = f"chat_id={self.chat_id}, message_id={self.message_id}"
        return f"{self.method}({where}, text={self.text!r:.80}) {state}"


@dataclass
class UploadedFile:
    file_id: str
    file_unique_id: str
    content: bytes
    file_name: str
    mime_type: str
    file_path: str


@dataclass
class _Fault:
    method: str
    status: int
    remaining: int
    retry_after: int | None
    description: str | None


_JSON_FIELDS = frozenset(
    "reply_markup entities caption_entities reply_parameters commands scope allowed_updates "
    "link_preview_options media".split()
)
_INT_FIELDS = frozenset(
    "chat_id from_chat_id message_id offset limit timeout user_id reply_to_message_id cache_time "
    "duration max_connections message_thread_id".split()
)
_BOOL_FIELDS = frozenset(
    "disable_notification protect_content show_alert drop_pending_updates allow_sending_without_reply "
    "disable_web_page_preview has_spoiler remove_caption".split()
)
_STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
                500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}  # fmt: skip
_CHAT_METHODS = frozenset(
    "sendMessage sendPhoto sendDocument sendVoice sendChatAction copyMessage forwardMessage "
    "editMessageText editMessageReplyMarkup".split()
)
_CHAT_ACTIONS = frozenset(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note".split()
)
_BUTTON_ACTIONS = (
    "url callback_data web_app login_url switch_inline_query copy_text switch_inline_query_current_chat "
    "switch_inline_query_chosen_chat callback_game pay"
).split()
_ADMIN_RIGHTS = (
    "can_manage_chat can_delete_messages can_manage_video_chats can_restrict_members can_promote_members "
    "can_change_info can_invite_users can_post_stories can_edit_stories can_delete_stories "
    "can_send_welcome_messages can_pin_messages"
).split()
_RESTRICTED_RIGHTS = (
    "can_send_messages can_send_audios can_send_documents can_send_photos can_send_videos "
    "can_send_video_notes can_send_voice_notes can_send_polls can_send_other_messages "
    "can_add_web_page_previews can_react_to_messages can_edit_tag can_change_info can_invite_users "
    "can_pin_messages can_manage_topics"
).split()
_NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_CONTENT_KEYS = ("text", "entities", "photo", "document", "voice", "sticker", "location", "caption",
                 "caption_entities")  # fmt: skip
DEFAULT_GROUP_USER_ID = 700_000_001
Uploads = dict[str, UploadedFile]
Handler = Callable[[JSON, Uploads, SentCall], Any]


def _update_type(update: JSON) -> str:
    return next((key for key in update if key != "update_id"), "")


def _reply_copy(message: JSON) -> JSON:
    """Telegram nests reply_to_message only one level deep."""
    result = copy.deepcopy(message)
    result.pop("reply_to_message", None)
    return result


# ----------------------------------------------------------------------------- the server


class FakeTelegram:
    """Fake Bot API server. See the module docstring; all control methods are plain sync methods."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        username: str = "hotline_test_bot",
        first_name: str = "Hotline Test Bot",
        host: str = "127.0.0.1",
    ) -> None:
        self.token, self.host = token, host
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: JSON = {"id": self.bot_id, "is_bot": True, "first_name": first_name}
        self.bot_user["username"] = username
        self.url = ""
        self.sent: list[SentCall] = []
        self.attempts: list[SentCall] = []
        self.messages: dict[tuple[int, int], JSON] = {}
        self.deleted: list[tuple[int, int]] = []
        self.answered_callbacks: list[JSON] = []
        self.files: dict[str, UploadedFile] = {}
        self.users: dict[int, JSON] = {}
        self.chats: dict[int, JSON] = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.webhook: JSON = {}
        self.webhook_posts: list[tuple[int, int]] = []
        self.member_status: dict[tuple[int, int], str] = {}
        self.default_member_status = "member"
        self.blocked: dict[int, str] = {}
        self.dropped_updates: list[JSON] = []
        self.updates: list[JSON] = []
        self.allowed_updates: list[str] | None = None
        self._faults: list[_Fault] = []
        self._next_update_id = 100_000
        self._message_ids: dict[int, int] = {}
        self._callback_ids: set[str] = set()
        self._username_chats: dict[str, int] = {}
        self._counter = 0
        self._poll_generation = 0
        self._closing = False
        self._event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, getattr(self, "_api_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()))
            for name in (
                "getMe getUpdates deleteWebhook setWebhook getWebhookInfo setMyCommands deleteMyCommands "
                "getMyCommands sendMessage editMessageText editMessageReplyMarkup deleteMessage "
                "answerCallbackQuery sendPhoto sendDocument sendVoice sendChatAction copyMessage "
                "forwardMessage getChat getChatMember getFile close logOut"
            ).split()
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://{self.host}:{sock.getsockname()[1]}"
        self._closing = False

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- test control: updates ---------------------------------------------------------------

    def add_update(self, update: JSON) -> int:
        """Queue a raw update for getUpdates; assigns update_id when missing and returns it."""
        update = copy.deepcopy(update)
        update_id = update.setdefault("update_id", self._next_update_id)
        self._next_update_id = max(self._next_update_id, update_id) + 1
        if isinstance(query := update.get("callback_query"), dict):
            self._callback_ids.add(str(query.get("id")))
        self.updates.append(update)
        self._notify()
        return int(update_id)

    def message(
        self,
        chat_id: int,
        text: str = "",
        *,
        user_id: int | None = None,
        first_name: str = "张三",
        chat_type: str | None = None,
        reply_to_message_id: int | None = None,
        photo: bool = False,
        document: bool = False,
        voice: bool = False,
        sticker: bool = False,
        location: bool | tuple[float, float] = False,
        message_id: int | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        title: str = "测试群",
    ) -> JSON:
        """Build (and store) a user message; returns the update dict ``{"message": {...}}``.

        chat_type defaults to "private" for positive chat ids and "supergroup" for negative ones;
        user_id defaults to chat_id in private chats and DEFAULT_GROUP_USER_ID in groups.
        """
        chat_type = chat_type or ("private" if chat_id > 0 else "supergroup")
        uid = user_id if user_id is not None else chat_id if chat_type == "private" else DEFAULT_GROUP_USER_ID
        user: JSON = {"id": uid, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self.users[uid] = user
        chat: JSON = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat.update({k: v for k, v in user.items() if k in ("first_name", "username")})
        else:
            chat["title"] = title
        self.chats[chat_id] = chat
        if message_id is None:
            message_id = self._next_message_id(chat_id)
        self._message_ids[chat_id] = max(self._message_ids.get(chat_id, 0), message_id)
        msg: JSON = {"message_id": message_id, "from": user, "chat": chat, "date": int(time.time())}
        if reply_to_message_id is not None:
            if (chat_id, reply_to_message_id) not in self.messages:
                raise KeyError(f"no stored message {reply_to_message_id} in chat {chat_id} to reply to")
            msg["reply_to_message"] = _reply_copy(self.messages[(chat_id, reply_to_message_id)])
        if (sticker or location) and text:
            raise ValueError("stickers and locations cannot carry text")
        if photo:
            msg["photo"] = self._photo_sizes(self._new_file("photo", b"\xff\xd8fake-jpeg", "photo.jpg"))
        if document:
            doc = self._new_file("document", b"%PDF-1.4 fake", "document.pdf", "application/pdf")
            msg["document"] = self._document(doc)
        if voice:
            msg["voice"] = self._voice(self._new_file("voice", b"OggS fake", "voice.ogg", "audio/ogg"), 3)
        if sticker:
            sticker_file = self._new_file("sticker", b"RIFF fake", "sticker.webp", "image/webp")
            msg["sticker"] = {"file_id": sticker_file.file_id, "file_unique_id": sticker_file.file_unique_id,
                              "type": "regular", "width": 512, "height": 512, "is_animated": False,
                              "is_video": False, "emoji": "👍"}  # fmt: skip
        if location:
            lat, lon = location if isinstance(location, tuple) else (25.53, 102.40)
            msg["location"] = {"latitude": lat, "longitude": lon}
        if text:
            media = photo or document or voice
            msg["caption" if media else "text"] = text
            if command := re.match(r"/[A-Za-z0-9_]+(?:@\w+)?", text):
                kind = "caption_entities" if media else "entities"
                msg[kind] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command.group())}]
        self.messages[(chat_id, message_id)] = msg
        return {"message": copy.deepcopy(msg)}

    def callback(self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None) -> JSON:
        """Build a callback_query update pressing a button on the stored message (chat_id, message_id)."""
        if (chat_id, message_id) not in self.messages:
            raise KeyError(f"no stored message {message_id} in chat {chat_id}")
        uid = user_id if user_id is not None else chat_id if chat_id > 0 else DEFAULT_GROUP_USER_ID
        user = self.users.get(uid) or {"id": uid, "is_bot": False, "first_name": "张三"}
        self._counter += 1
        query_id = str(4_000_000_000_000_000 + self._counter)
        self._callback_ids.add(query_id)
        query = {"id": query_id, "from": user, "message": copy.deepcopy(self.messages[(chat_id, message_id)]),
                 "chat_instance": str(abs(chat_id) * 7919 % 10**18), "data": data}  # fmt: skip
        return {"callback_query": query}

    def push_message(self, chat_id: int, text: str = "", **kwargs: Any) -> JSON:
        """message(...) + add_update(...); returns the message dict."""
        update = self.message(chat_id, text, **kwargs)
        self.add_update(update)
        return update["message"]

    def push_callback(self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None) -> JSON:
        """callback(...) + add_update(...); returns the callback_query dict."""
        update = self.callback(chat_id, message_id, data, user_id=user_id)
        self.add_update(update)
        return update["callback_query"]

    async def post_update_to_webhook(
        self, update: JSON, *, secret: str | None = None, send_secret: bool = True
    ) -> int:
        """POST an update to the URL stored by setWebhook (with the secret header); returns HTTP status.

        ``secret`` replaces the stored secret token (a forger's guess); ``send_secret=False`` omits the
        header. Every attempt is recorded in ``webhook_posts`` as (update_id, status).
        """
        if not self.webhook.get("url"):
            raise RuntimeError("no webhook is set")
        update = copy.deepcopy(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
            self._next_update_id += 1
        if isinstance(query := update.get("callback_query"), dict):
            self._callback_ids.add(str(query.get("id")))
        headers = {}
        token = secret if secret is not None else self.webhook.get("secret_token")
        if token and send_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.webhook["url"], json=update, headers=headers) as response,
        ):
            await response.read()
            self.webhook_posts.append((int(update["update_id"]), response.status))
            return response.status

    # -- test control: configuration & faults ------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """Fail the next `count` calls of `method` ("*" = any method except getUpdates)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.append(_Fault(method.lower(), status, count, retry_after, description))

    def block_chat(self, chat_id: int, description: str | None = None) -> None:
        default = (
            "Forbidden: bot was blocked by the user"
            if chat_id > 0
            else ("Forbidden: bot was kicked from the supergroup chat")
        )
        self.blocked[chat_id] = description or default

    def unblock_chat(self, chat_id: int) -> None:
        self.blocked.pop(chat_id, None)

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """getChatMember status: creator/administrator/member/restricted/left/kicked."""
        self.member_status[(chat_id, user_id)] = status

    def commands_for(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        return self.commands.get((self._scope_key(scope), language_code), [])

    # -- test control: inspection ------------------------------------------------------------

    def sent_to(self, chat_id: int | str, methods: str | Collection[str] | None = None) -> list[SentCall]:
        """Successful calls addressed to chat_id. methods=None means all except sendChatAction."""
        return [c for c in self.sent if c.chat_id == chat_id and self._method_matches(c.method, methods)]

    async def wait_for(
        self, predicate: Callable[[SentCall], bool] | None = None, timeout: float = 5.0, **match: Any
    ) -> SentCall:
        """First successful call matching predicate and all `field=value` pairs, waiting if needed."""

        def find() -> SentCall | None:
            for call in self.sent:
                if all(getattr(call, k) == v for k, v in match.items()):
                    if predicate is None or predicate(call):
                        return call
            return None

        found = await self._wait_until(find, timeout)
        if found is None:
            raise WaitTimeout(f"no call matching {match or predicate} within {timeout}s\n{self.dump()}")
        return found

    async def wait_sent_count(
        self, chat_id: int | str, n: int, timeout: float = 5.0, methods: str | Collection[str] | None = None
    ) -> list[SentCall]:
        """Wait until at least n calls were sent to chat_id (see sent_to for `methods`); returns them."""

        def probe() -> list[SentCall] | None:
            calls = self.sent_to(chat_id, methods)
            return calls if len(calls) >= n else None

        calls = await self._wait_until(probe, timeout)
        if calls is None:
            raise WaitTimeout(f"expected {n} calls to chat {chat_id} within {timeout}s\n{self.dump()}")
        return calls

    def dump(self, last: int = 20) -> str:
        lines = [f"  {c.short()}" for c in self.attempts[-last:]]
        return "recent calls:\n" + ("\n".join(lines) if lines else "  (none)")

    def clear(self) -> None:
        """Forget recorded calls (sent, attempts, answered_callbacks, deleted)."""
        self.sent.clear()
        self.attempts.clear()
        self.answered_callbacks.clear()
        self.deleted.clear()

    # -- HTTP plumbing -----------------------------------------------------------------------

    def _notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def _wait_until(self, probe: Callable[[], _T | None], timeout: float) -> _T | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (result := probe()) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            event = self._event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        return result

    @staticmethod
    def _method_matches(method: str, methods: str | Collection[str] | None) -> bool:
        if methods is None:
            return method != "sendChatAction"
        return method == methods if isinstance(methods, str) else method in methods

    @staticmethod
    def _reply(
        status: int, payload: Any = None, description: str = "", retry_after: int | None = None
    ) -> web.Response:
        if status == 200:
            return web.json_response({"ok": True, "result": payload})
        body: JSON = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._reply(401, description="Unauthorized")
        entry = self._handlers.get(request.match_info["method"].lower())
        if entry is None:
            return self._reply(404, description="Not Found: method not found")
        name, handler = entry
        call = SentCall(method=name, params={})
        try:
            params, uploads = await self._read_params(request)
            call.params = params
            self._describe(call, params)
            self._check_faults(name, call)
            try:
                result = handler(params, uploads, call)
                if inspect.isawaitable(result):
                    result = await result
            except (ApiError, asyncio.CancelledError):
                raise
            except Exception as exc:  # a bug in the fake (or a wildly malformed request): make it loud
                _log.exception("fake_telegram: %s failed", name)
                raise ApiError(500, f"Internal Server Error: fake_telegram crashed: {exc!r}") from exc
        except ApiError as exc:
            call.ok, call.status, call.error = False, exc.status, exc.description
            self.attempts.append(call)
            self._notify()
            return self._reply(exc.status, description=exc.description, retry_after=exc.retry_after)
        call.result = result
        if name != "getUpdates":
            self.attempts.append(call)
            self.sent.append(call)
            self._notify()
        return self._reply(200, result)

    async def _handle_file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        record = next((f for f in self.files.values() if f.file_path == path), None)
        if request.match_info["token"] != self.token or record is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=record.content, content_type=record.mime_type)

    async def _read_params(self, request: web.Request) -> tuple[JSON, Uploads]:
        raw: JSON = dict(request.query)
        uploads: Uploads = {}
        if request.content_type == "application/json":
            body = await request.read()
            try:
                data = json.loads(body) if body.strip() else {}
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise ApiError(400, "Bad Request: request body must be a JSON object")
            raw.update(data)
        elif request.can_read_body:
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    content = value.file.read()
                    mime = value.content_type or mimetypes.guess_type(value.filename)[0]
                    mime = mime or "application/octet-stream"
                    uploads[key] = UploadedFile("", "", content, value.filename, mime, "")
                else:
                    raw[key] = value
        return {key: self._coerce(key, value) for key, value in raw.items()}, uploads

    @staticmethod
    def _coerce(key: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if key in _JSON_FIELDS:
            try:
                return json.loads(value)
            except ValueError:
                what = "reply keyboard markup" if key == "reply_markup" else key
                raise ApiError(400, f"Bad Request: can't parse {what} JSON object") from None
        if key in _INT_FIELDS:
            try:
                return int(value)
            except ValueError:
                if key in ("chat_id", "from_chat_id"):
                    return value
                raise ApiError(400, f"Bad Request: invalid {key} specified") from None
        if key in _BOOL_FIELDS:
            return value.lower() in ("true", "1")
        return value

    @staticmethod
    def _describe(call: SentCall, params: JSON) -> None:
        call.chat_id = params.get("chat_id")
        call.raw_text = params.get("text", params.get("caption"))
        call.parse_mode = params.get("parse_mode")
        markup = params.get("reply_markup")
        call.reply_markup = markup if isinstance(markup, dict) else None
        call.message_id = params.get("message_id") if isinstance(params.get("message_id"), int) else None
        reply = params.get("reply_parameters")
        call.reply_to_message_id = (
            reply.get("message_id") if isinstance(reply, dict) else params.get("reply_to_message_id")
        )

    def _check_faults(self, method: str, call: SentCall) -> None:
        for fault in self._faults:
            if fault.method == method.lower() or (fault.method == "*" and method != "getUpdates"):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                description = fault.description or (
                    f"Too Many Requests: retry after {fault.retry_after}" if fault.status == 429
                    else _STATUS_TEXT.get(fault.status, "Error"))  # fmt: skip
                raise ApiError(fault.status, description, fault.retry_after if fault.status == 429 else None)
        if method in _CHAT_METHODS and isinstance(call.chat_id, int) and call.chat_id in self.blocked:
            raise ApiError(403, self.blocked[call.chat_id])

    # -- helpers -----------------------------------------------------------------------------

    def _chat_id(self, params: JSON, key: str = "chat_id") -> int:
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.startswith("@") and len(value) > 1:
            fake_id = -1_001_000_000_000 - len(self._username_chats)
            return self._username_chats.setdefault(value.lower(), fake_id)
        if value in (None, ""):
            raise ApiError(400, f"Bad Request: {key} is empty")
        raise ApiError(400, "Bad Request: chat not found")

    def _chat_obj(self, chat_id: int) -> JSON:
        if chat_id in self.chats:
            return copy.deepcopy(self.chats[chat_id])
        if chat_id > 0:
            name = self.users.get(chat_id, {}).get("first_name", "User")
            return {"id": chat_id, "type": "private", "first_name": name}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def _next_message_id(self, chat_id: int) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _stored(self, params: JSON, what: str, chat_key: str = "chat_id") -> tuple[int, int, JSON]:
        chat_id = self._chat_id(params, chat_key)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = self.messages.get((chat_id, message_id))
        if message is None:
            raise ApiError(400, f"Bad Request: message to {what} not found")
        return chat_id, message_id, message

    def _new_file(self, kind: str, content: bytes, name: str, mime: str | None = None) -> UploadedFile:
        self._counter += 1
        ext = name.rpartition(".")[2] if "." in name else "bin"
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        file_id = f"{kind[:2].upper()}AC{secrets.token_urlsafe(24)}"
        unique_id = f"AQAD{secrets.token_urlsafe(8)}"
        record = UploadedFile(file_id, unique_id, content, name, mime, f"{kind}s/file_{self._counter}.{ext}")
        self.files[record.file_id] = record
        return record

    def _photo_sizes(self, record: UploadedFile) -> list[JSON]:
        small = self._new_file("photo", record.content, record.file_name, record.mime_type)
        sizes = ((small, 90, 68), (record, 1280, 960))
        return [{"file_id": f.file_id, "file_unique_id": f.file_unique_id, "width": w, "height": h,
                 "file_size": len(f.content)} for f, w, h in sizes]  # fmt: skip

    @staticmethod
    def _document(record: UploadedFile) -> JSON:
        return {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                "file_name": record.file_name, "mime_type": record.mime_type,
                "file_size": len(record.content)}  # fmt: skip

    @staticmethod
    def _voice(record: UploadedFile, duration: int) -> JSON:
        return {"file_id": record.file_id, "file_unique_id": record.file_unique_id, "duration": duration,
                "mime_type": record.mime_type, "file_size": len(record.content)}  # fmt: skip

    def _input_file(self, params: JSON, uploads: Uploads, key: str, kind: str) -> UploadedFile:
        value = params.get(key)
        upload = uploads.get(value[9:]) if isinstance(value, str) and value.startswith("attach://") else None
        upload = upload or uploads.get(key)
        if upload is not None:
            if not upload.content:
                raise ApiError(400, "Bad Request: file must be non-empty")
            return self._new_file(kind, upload.content, upload.file_name or key, upload.mime_type)
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        if isinstance(value, str) and re.match(r"https?://\S+$", value):
            return self._new_file(kind, b"", value.rsplit("/", 1)[-1] or key)
        if value:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raise ApiError(400, f"Bad Request: there is no {key} in the request")

    @staticmethod
    def _validate_markup(markup: Any) -> JSON | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise ApiError(400, 'Bad Request: field "inline_keyboard" must be an Array of Arrays')
            buttons = [button for row in rows for button in row]
            for button in buttons:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise ApiError(400, "Bad Request: can't parse inline keyboard button: "
                                        'Field "text" must be of type String')  # fmt: skip
                if not button["text"].strip():
                    raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
                if not any(key in button for key in _BUTTON_ACTIONS):
                    raise ApiError(400, "Bad Request: can't parse inline keyboard button: Text buttons are "
                                        "unallowed in the inline keyboard")  # fmt: skip
                data = button.get("callback_data")
                valid_data = isinstance(data, str) and 1 <= len(data.encode()) <= 64
                if "callback_data" in button and not valid_data:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if "url" in button and not re.match(r"(https?|tg)://\S+$", str(button["url"])):
                    raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
            if len(buttons) > 100:
                raise ApiError(400, "Bad Request: REPLY_MARKUP_TOO_LONG")
            return markup
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise ApiError(400, 'Bad Request: field "keyboard" must be an Array of Arrays')
            for button in (b for row in rows for b in row):
                text = button.get("text") if isinstance(button, dict) else button
                if not isinstance(text, str) or not text.strip():
                    raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
            return None
        if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
            return None
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")

    def _caption(self, params: JSON, call: SentCall) -> JSON:
        caption, entities = format_text(params.get("caption"), params.get("parse_mode"),
                                        params.get("caption_entities"))  # fmt: skip
        if utf16_len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        call.text, call.entities = caption or None, entities
        return {"caption": caption, "caption_entities": entities} if caption else {}

    def _send(self, chat_id: int, params: JSON, content: JSON, call: SentCall, markup: bool = True) -> JSON:
        """Create, store and return a new bot message (after all validation has passed)."""
        markup_obj = self._validate_markup(params.get("reply_markup")) if markup else None
        reply = params.get("reply_parameters") if isinstance(params.get("reply_parameters"), dict) else {}
        reply_id = reply.get("message_id", params.get("reply_to_message_id"))
        reply_chat = self._chat_id(reply, "chat_id") if "chat_id" in reply else chat_id
        replied = self.messages.get((reply_chat, reply_id)) if isinstance(reply_id, int) else None
        allow_missing = reply.get("allow_sending_without_reply", params.get("allow_sending_without_reply"))
        if reply_id and replied is None and not allow_missing:
            raise ApiError(400, "Bad Request: message to be replied not found")
        message_id = self._next_message_id(chat_id)
        msg: JSON = {"message_id": message_id, "from": dict(self.bot_user), "chat": self._chat_obj(chat_id),
                     "date": int(time.time())}  # fmt: skip
        msg.update({key: value for key, value in content.items() if value not in (None, [], "")})
        if replied is not None:
            msg["reply_to_message"] = _reply_copy(replied)
        if markup_obj is not None:
            msg["reply_markup"] = markup_obj
        self.messages[(chat_id, message_id)] = msg
        call.chat_id, call.message_id = chat_id, message_id
        return copy.deepcopy(msg)

    @staticmethod
    def _scope_key(scope: Any) -> str:
        return json.dumps(scope if isinstance(scope, dict) else {"type": "default"}, sort_keys=True)

    def _take_updates(self, limit: int) -> list[JSON]:
        allowed = set(self.allowed_updates) if self.allowed_updates else None
        kept = []
        for update in self.updates:
            kind = _update_type(update)
            if (kind in allowed) if allowed is not None else (kind not in _NOT_DEFAULT_UPDATES):
                kept.append(update)
            else:
                self.dropped_updates.append(update)
        self.updates = kept
        return copy.deepcopy(kept[:limit])

    # -- API methods -------------------------------------------------------------------------

    def _api_get_me(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        flags = ("can_read_all_group_messages supports_inline_queries can_connect_to_business "
                 "has_main_web_app").split()  # fmt: skip
        return {**self.bot_user, "can_join_groups": True, **dict.fromkeys(flags, False)}

    async def _api_get_updates(self, params: JSON, uploads: Uploads, call: SentCall) -> list[JSON]:
        if self.webhook.get("url"):
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")  # fmt: skip
        offset, timeout = params.get("offset") or 0, max(0, params.get("timeout") or 0)
        limit = min(max(params.get("limit") or 100, 1), 100)
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = params["allowed_updates"] or None
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # terminates an older long poll with 409, like Telegram

        def probe() -> list[JSON] | None:
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                    "make sure that only one bot instance is running")  # fmt: skip
            batch = self._take_updates(limit)
            return batch if batch or self._closing else None

        return await self._wait_until(probe, timeout) or []

    def _api_set_webhook(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        url, secret = params.get("url") or "", params.get("secret_token")
        if url and not re.match(r"https?://\S+$", url):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self.updates.clear()
        keys = ("url", "secret_token", "allowed_updates", "max_connections")
        self.webhook = {key: params[key] for key in keys if params.get(key)} if url else {}
        return True

    def _api_delete_webhook(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        if params.get("drop_pending_updates"):
            self.updates.clear()
        self.webhook = {}
        return True

    def _api_get_webhook_info(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        info: JSON = {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                      "pending_update_count": len(self.updates)}  # fmt: skip
        info.update({k: v for k, v in self.webhook.items() if k in ("allowed_updates", "max_connections")})
        return info

    def _api_set_my_commands(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be an array of at most 100 BotCommand")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            if not isinstance(command, dict) or not re.fullmatch(r"[a-z0-9_]{1,32}", str(name)):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[(self._scope_key(params.get("scope")), params.get("language_code", ""))] = commands
        return True

    def _api_delete_my_commands(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        self.commands.pop((self._scope_key(params.get("scope")), params.get("language_code", "")), None)
        return True

    def _api_get_my_commands(self, params: JSON, uploads: Uploads, call: SentCall) -> list[JSON]:
        return self.commands_for(params.get("scope"), params.get("language_code", ""))

    def _api_send_message(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        chat_id = self._chat_id(params)
        text, entities = format_text(params.get("text"), params.get("parse_mode"), params.get("entities"))
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        call.text, call.entities = text, entities
        return self._send(chat_id, params, {"text": text, "entities": entities}, call)

    def _api_edit_message_text(self, params: JSON, uploads: Uploads, call: SentCall) -> Any:
        if "inline_message_id" in params and "chat_id" not in params:
            return True
        _, _, msg = self._stored(params, "edit")
        text, entities = format_text(params.get("text"), params.get("parse_mode"), params.get("entities"))
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        if msg["from"].get("id") != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        call.text, call.entities = text, entities
        markup = self._validate_markup(params.get("reply_markup"))
        return self._edit(msg, {"text": text, "entities": entities}, markup)

    def _api_edit_message_reply_markup(self, params: JSON, uploads: Uploads, call: SentCall) -> Any:
        if "inline_message_id" in params and "chat_id" not in params:
            return True
        _, _, msg = self._stored(params, "edit")
        if msg["from"].get("id") != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        call.text = msg.get("text", msg.get("caption"))
        return self._edit(msg, {}, self._validate_markup(params.get("reply_markup")))

    def _edit(self, msg: JSON, content: JSON, markup: JSON | None) -> JSON:
        if all(msg.get(k, []) == v for k, v in content.items()) and msg.get("reply_markup") == markup:
            raise ApiError(400, "Bad Request: message is not modified: specified new message content and "
                                "reply markup are exactly the same as a current content and reply markup "
                                "of the message")  # fmt: skip
        for key, value in content.items():
            msg.pop(key, None)
            if value:
                msg[key] = value
        msg.pop("reply_markup", None)
        if markup is not None:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        return copy.deepcopy(msg)

    def _api_delete_message(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        chat_id, message_id, _ = self._stored(params, "delete")
        del self.messages[(chat_id, message_id)]
        self.deleted.append((chat_id, message_id))
        return True

    def _api_answer_callback_query(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._callback_ids:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired "
                                "or query ID is invalid")  # fmt: skip
        if len(str(params.get("text", ""))) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._callback_ids.discard(query_id)
        self.answered_callbacks.append(params)
        call.text = params.get("text")
        return True

    def _api_send_photo(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        chat_id, caption = self._chat_id(params), self._caption(params, call)
        photo = self._photo_sizes(self._input_file(params, uploads, "photo", "photo"))
        return self._send(chat_id, params, {"photo": photo, **caption}, call)

    def _api_send_document(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        chat_id, caption = self._chat_id(params), self._caption(params, call)
        document = self._document(self._input_file(params, uploads, "document", "document"))
        return self._send(chat_id, params, {"document": document, **caption}, call)

    def _api_send_voice(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        chat_id, caption = self._chat_id(params), self._caption(params, call)
        voice = self._voice(self._input_file(params, uploads, "voice", "voice"), params.get("duration") or 1)
        return self._send(chat_id, params, {"voice": voice, **caption}, call)

    def _api_send_chat_action(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        call.chat_id = self._chat_id(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        call.text = params["action"]
        return True

    def _copy_source(self, params: JSON, what: str, call: SentCall) -> tuple[int, JSON]:
        chat_id = self._chat_id(params)
        _, _, source = self._stored(params, what, "from_chat_id")
        content = {key: copy.deepcopy(source[key]) for key in _CONTENT_KEYS if key in source}
        call.text = content.get("text", content.get("caption"))
        return chat_id, content

    def _api_copy_message(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        chat_id, content = self._copy_source(params, "copy", call)
        if "caption" in params or params.get("remove_caption"):
            content.pop("caption", None)
            content.pop("caption_entities", None)
            if not params.get("remove_caption"):
                content.update(self._caption(params, call))
        return {"message_id": self._send(chat_id, params, content, call)["message_id"]}

    def _api_forward_message(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        chat_id, content = self._copy_source(params, "forward", call)
        source = self.messages[(self._chat_id(params, "from_chat_id"), params["message_id"])]
        content["forward_origin"] = {"type": "user", "sender_user": source["from"], "date": source["date"]}
        return self._send(chat_id, {}, content, call, markup=False)

    def _api_get_chat(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        gifts = dict.fromkeys(("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription",
                               "gifts_from_channels"), True)  # fmt: skip
        return {**self._chat_obj(self._chat_id(params)), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": gifts}  # fmt: skip

    def _api_get_chat_member(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        chat_id, user_id = self._chat_id(params), params.get("user_id")
        if not isinstance(user_id, int):
            raise ApiError(400, "Bad Request: invalid user_id specified")
        status = self.member_status.get((chat_id, user_id), self.default_member_status)
        user = self.bot_user if user_id == self.bot_id else self.users.get(user_id)
        user = user or {"id": user_id, "is_bot": False, "first_name": "User"}
        member: JSON = {"status": status, "user": user}
        if status in ("creator", "administrator"):
            member["is_anonymous"] = False
        if status == "administrator":
            member["can_be_edited"] = False
            member.update(dict.fromkeys(_ADMIN_RIGHTS, True))
        if status == "restricted":
            member.update(dict.fromkeys(_RESTRICTED_RIGHTS, False), is_member=True)
        if status in ("restricted", "kicked"):
            member["until_date"] = 0
        return member

    def _api_get_file(self, params: JSON, uploads: Uploads, call: SentCall) -> JSON:
        record = self.files.get(str(params.get("file_id", "")))
        if record is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                "file_size": len(record.content), "file_path": record.file_path}  # fmt: skip

    def _api_close(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        return True

    def _api_log_out(self, params: JSON, uploads: Uploads, call: SentCall) -> bool:
        return True
