"""Tests for the fake Telegram Bot API server, driven by a real aiogram Bot/Dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiohttp import web

try:
    from tests.fake_telegram import FakeTelegram, WaitTimeout, parse_html, parse_markdown_v2, utf16_len
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from fake_telegram import FakeTelegram, WaitTimeout, parse_html, parse_markdown_v2, utf16_len

TOKEN = "123:ABC"
USER = 5001


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


def make_bot(server: FakeTelegram, token: str = TOKEN) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(server.url)))


@pytest.fixture
async def bot(server: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(server)
    yield bot
    await bot.session.close()


def keyboard(data: str, text: str = "按钮") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data)]])


@contextlib.asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=2))
    try:
        yield task
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(task, 5)


# ----------------------------------------------------------------------------- basics


async def test_get_me(server: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123, "hotline_test_bot", True)
    assert server.url.startswith("http://127.0.0.1:")


async def test_wrong_token_is_unauthorized(server: FakeTelegram) -> None:
    other = make_bot(server, token="999:WRONG")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await other.get_me()
    finally:
        await other.session.close()


async def test_unknown_method_and_json_body(server: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/bot{TOKEN}/sendUnicorn", json={}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404,
                                         "description": "Not Found: method not found"}  # fmt: skip
        body = {
            "chat_id": 7,
            "text": "hi",
            "reply_markup": {"inline_keyboard": [[{"text": "a", "url": "https://x.y"}]]},
        }
        async with http.post(f"{server.url}/bot{TOKEN}/sendmessage", json=body) as resp:
            data = await resp.json()
    assert data["ok"] and data["result"]["reply_markup"] == body["reply_markup"]
    assert server.sent[-1].method == "sendMessage"


async def test_message_ids_increase_per_chat(server: FakeTelegram, bot: Bot) -> None:
    first = await bot.send_message(1, "a")
    second = await bot.send_message(1, "b")
    other = await bot.send_message(2, "c")
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert first.from_user is not None and first.from_user.id == 123
    assert server.messages[(1, 2)]["text"] == "b"
    assert [c.text for c in server.sent_to(1)] == ["a", "b"]


# ----------------------------------------------------------------------------- validation


async def test_html_escaped_text_records_plain_text(server: FakeTelegram, bot: Bot) -> None:
    msg = await bot.send_message(USER, "<b>办理</b> &lt;户口&gt; &amp; &#20013;&#x6587; <a href='https://gov.cn'>链接</a>",
                                 parse_mode="HTML")  # fmt: skip
    plain = "办理 <户口> & 中文 链接"
    assert msg.text == plain
    call = server.sent[-1]
    assert (call.text, call.parse_mode, call.chat_id) == (plain, "HTML", USER)
    assert call.message_id == msg.message_id
    assert call.raw_text is not None and call.raw_text.startswith("<b>")
    assert [e.type for e in msg.entities or []] == ["bold", "text_link"]
    assert msg.entities and msg.entities[1].url == "https://gov.cn"


@pytest.mark.parametrize(
    "text",
    ["<script>alert(1)</script>", "1 < 2", "<b>unclosed", "<b><i>bad</b></i>", "</b>", "A & B", "&nbsp;",
     '<span class="x">s</span>', "<br/>"],
)  # fmt: skip
async def test_html_invalid_markup_is_rejected(server: FakeTelegram, bot: Bot, text: str) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, text, parse_mode="HTML")
    assert server.sent == [] and server.attempts[-1].status == 400


def test_html_parser_details() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">x = 1</code></pre>'
        "<blockquote expandable>q</blockquote><tg-spoiler>s</tg-spoiler>😀<u>u</u>"
    )
    assert text == "x = 1qs😀u"
    assert entities[0] == {"type": "pre", "offset": 0, "length": 5, "language": "python"}
    assert entities[1]["type"] == "expandable_blockquote"
    assert entities[3] == {"type": "underline", "offset": 9, "length": 1}  # emoji counts as 2 UTF-16 units


async def test_text_length_limits(server: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(USER, "a" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "a" * 4097)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "😀" * 2049)  # 4098 UTF-16 code units
    # the limit applies to the plain text after entity parsing
    await bot.send_message(USER, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    assert utf16_len("😀") == 2
    for empty in ("", "   \n ", "<b> </b>"):
        with pytest.raises(TelegramBadRequest, match="message text is empty"):
            await bot.send_message(USER, empty, parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_document(USER, BufferedInputFile(b"x", "a.txt"), caption="c" * 1025)


async def test_markdown_v2(server: FakeTelegram, bot: Bot) -> None:
    msg = await bot.send_message(USER, r"*粗体* _斜体_ 电话 12345\-678\. [官网](https://gov.cn/a\(b\))",
                                 parse_mode="MarkdownV2")  # fmt: skip
    assert msg.text == "粗体 斜体 电话 12345-678. 官网"
    assert [e.type for e in msg.entities or []] == ["bold", "italic", "text_link"]
    assert msg.entities and msg.entities[2].url == "https://gov.cn/a(b)"
    for bad in ("电话 123-456", "结束.", "*未闭合"):
        with pytest.raises(TelegramBadRequest, match="can't parse entities"):
            await bot.send_message(USER, bad, parse_mode="MarkdownV2")
    text, entities = parse_markdown_v2(">引用\n>第二行\n正文 `a-b.c` ```py\nprint()```")
    assert text == "引用\n第二行\n正文 a-b.c print()"
    assert [e["type"] for e in entities] == ["blockquote", "code", "pre"]


async def test_callback_data_byte_limit(server: FakeTelegram, bot: Bot) -> None:
    ok = "中" * 21 + "a"  # 63 + 1 = 64 bytes in UTF-8, only 22 characters
    msg = await bot.send_message(USER, "选择", reply_markup=keyboard(ok))
    assert msg.reply_markup is not None and msg.reply_markup.inline_keyboard[0][0].callback_data == ok
    assert server.sent[-1].reply_markup == {"inline_keyboard": [[{"text": "按钮", "callback_data": ok}]]}
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "选择", reply_markup=keyboard(ok + "b"))
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "选择", reply_markup=keyboard(""))
    with pytest.raises(TelegramBadRequest, match="BUTTON_TEXT_INVALID"):
        await bot.send_message(USER, "选择", reply_markup=keyboard("x", text=" "))
    too_many = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=str(i), callback_data=str(i)) for i in range(101)]]
    )
    with pytest.raises(TelegramBadRequest, match="REPLY_MARKUP_TOO_LONG"):
        await bot.send_message(USER, "选择", reply_markup=too_many)
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed"):
        await bot.send_message(USER, "选择", reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="只有文字")]]))  # fmt: skip


# ----------------------------------------------------------------------------- fault injection


async def test_429_surfaces_as_retry_after(server: FakeTelegram, bot: Bot) -> None:
    server.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(USER, "hi")
    assert info.value.retry_after == 7
    await bot.send_message(USER, "hi")  # only the next call failed
    assert [(a.ok, a.status) for a in server.attempts] == [(False, 429), (True, 200)]
    assert len(server.sent) == 1


async def test_500_and_wildcard_faults(server: FakeTelegram, bot: Bot) -> None:
    server.fail_next("sendMessage", status=500)
    with pytest.raises(TelegramServerError):
        await bot.send_message(USER, "hi")
    server.fail_next("*", status=502, count=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.get_me()
    assert (await bot.get_me()).id == 123


async def test_blocked_chat_is_forbidden(server: FakeTelegram, bot: Bot) -> None:
    server.block_chat(USER)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "hi")
    await bot.send_message(USER + 1, "other chat still works")
    assert [c.chat_id for c in server.sent] == [USER + 1]
    assert server.attempts[0].status == 403 and server.attempts[0].text is None
    server.unblock_chat(USER)
    await bot.send_message(USER, "hi again")


async def test_wait_for_timeout_dumps_recent_calls(server: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(USER, "最近的一条")
    with pytest.raises(AssertionError, match="最近的一条"):
        await server.wait_for(lambda c: c.text == "never", timeout=0.1)
    with pytest.raises(asyncio.TimeoutError):
        await server.wait_sent_count(USER, 2, timeout=0.1)
    assert issubclass(WaitTimeout, AssertionError)


# ----------------------------------------------------------------------------- editing & other methods


async def test_edit_delete_and_not_modified(server: FakeTelegram, bot: Bot) -> None:
    msg = await bot.send_message(USER, "旧", reply_markup=keyboard("a"))
    edited = await bot.edit_message_text(text="<i>新</i>", chat_id=USER, message_id=msg.message_id,
                                         parse_mode="HTML", reply_markup=keyboard("b"))  # fmt: skip
    assert isinstance(edited, Message) and edited.text == "新" and edited.edit_date
    stored = server.messages[(USER, msg.message_id)]
    assert stored["reply_markup"] == keyboard("b").model_dump(exclude_none=True)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(text="<i>新</i>", chat_id=USER, message_id=msg.message_id,
                                    parse_mode="HTML", reply_markup=keyboard("b"))  # fmt: skip
    await bot.edit_message_reply_markup(chat_id=USER, message_id=msg.message_id)
    assert "reply_markup" not in server.messages[(USER, msg.message_id)]
    assert await bot.delete_message(USER, msg.message_id) is True
    assert server.deleted == [(USER, msg.message_id)]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER, msg.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=USER, message_id=999)


async def test_misc_methods(server: FakeTelegram, bot: Bot) -> None:
    assert await bot.set_my_commands([BotCommand(command="start", description="开始")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert server.commands_for() == [{"command": "start", "description": "开始"}]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    assert await bot.send_chat_action(USER, "typing")
    assert server.sent_to(USER) == [] and server.sent_to(USER, "sendChatAction")[0].text == "typing"
    member = await bot.get_chat_member(-100500, USER)
    assert member.status == "member"
    server.set_member_status(-100500, USER, "administrator")
    assert (await bot.get_chat_member(-100500, USER)).status == "administrator"
    chat = await bot.get_chat(-100500)
    assert chat.type == "supergroup"
    src = await bot.send_message(USER, "原文")
    copied = await bot.copy_message(USER + 1, USER, src.message_id)
    assert server.messages[(USER + 1, copied.message_id)]["text"] == "原文"
    forwarded = await bot.forward_message(USER + 2, USER, src.message_id)
    assert forwarded.forward_origin is not None and forwarded.text == "原文"
    voice = await bot.send_voice(USER, BufferedInputFile(b"OggS", "v.ogg"), duration=4)
    assert voice.voice is not None and voice.voice.duration == 4
    photo = await bot.send_photo(USER, BufferedInputFile(b"\xff\xd8", "p.jpg"), caption="<b>照片</b>",
                                 parse_mode="HTML")  # fmt: skip
    assert photo.photo and photo.caption == "照片" and server.sent[-1].text == "照片"
    reply = await bot.send_photo(USER, photo.photo[-1].file_id, reply_to_message_id=src.message_id)
    assert reply.reply_to_message is not None and reply.reply_to_message.message_id == src.message_id
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(USER, "x", reply_to_message_id=999)
    assert await bot.close() and await bot.log_out()


async def test_send_document_and_download(server: FakeTelegram, bot: Bot) -> None:
    upload = BufferedInputFile("材料清单".encode(), filename="清单.txt")
    msg = await bot.send_document(USER, upload, caption="附件")
    assert msg.document is not None and msg.document.file_name == "清单.txt" and msg.caption == "附件"
    call = await server.wait_for(method="sendDocument", chat_id=USER)
    assert call.text == "附件" and call.message_id == msg.message_id
    file = await bot.get_file(msg.document.file_id)
    assert file.file_path and file.file_size == len("材料清单".encode())
    data = await bot.download_file(file.file_path)
    assert data is not None and data.read() == "材料清单".encode()
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(USER, "not-a-known-file-id")


# ----------------------------------------------------------------------------- updates


async def test_get_updates_offset_timeout_and_allowed_updates(server: FakeTelegram, bot: Bot) -> None:
    first = server.add_update(server.message(USER, "一"))
    server.add_update(server.message(USER, "二"))
    updates = await bot.get_updates(limit=1)
    assert [u.update_id for u in updates] == [first]
    updates = await bot.get_updates(offset=first + 1)
    assert [u.message.text for u in updates if u.message] == ["二"]
    started = time.monotonic()
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1) == []
    assert time.monotonic() - started >= 0.9

    async def add_later() -> None:
        await asyncio.sleep(0.2)
        server.push_message(USER, "三")

    later = asyncio.create_task(add_later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    assert [u.message.text for u in updates if u.message] == ["三"] and time.monotonic() - started < 2
    await later
    server.push_message(USER, "丢弃")
    assert await bot.get_updates(offset=updates[-1].update_id + 1, allowed_updates=["callback_query"]) == []
    assert server.dropped_updates[-1]["message"]["text"] == "丢弃"


async def test_concurrent_get_updates_conflict(server: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError):
        await first
    assert await second == []


async def test_dispatcher_polling_message_and_reply(server: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message(Command("start"))
    async def start(message: Message) -> None:
        await message.answer("<b>欢迎</b>使用便民热线", parse_mode="HTML")

    @router.message(F.reply_to_message)
    async def replied(message: Message) -> None:
        assert message.reply_to_message is not None and message.reply_to_message.from_user is not None
        original = message.reply_to_message
        await message.reply(f"回复 {original.message_id} {original.from_user.id}")

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot):
        server.push_message(USER, "/start")
        call = await server.wait_for(method="sendMessage", chat_id=USER)
        assert call.text == "欢迎使用便民热线" and call.entities[0]["type"] == "bold"
        group = -1001234
        bot_msg = await bot.send_message(group, "群消息")
        server.push_message(group, "引用回复", user_id=USER, reply_to_message_id=bot_msg.message_id)
        answer = await server.wait_for(lambda c: c.chat_id == group and c.reply_to_message_id is not None)
        assert answer.text == f"回复 {bot_msg.message_id} 123"
        assert server.messages[(group, answer.message_id)]["reply_to_message"]["message_id"] == 2


async def test_dispatcher_callback_query(server: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.callback_query(F.data.startswith("topic:"))
    async def on_topic(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.answer("已选择")
        await query.message.edit_text(f"主题 {query.data}")

    dp = Dispatcher()
    dp.include_router(router)
    msg = await bot.send_message(USER, "请选择", reply_markup=keyboard("topic:户籍"))
    async with polling(dp, bot):
        query = server.push_callback(USER, msg.message_id, "topic:户籍")
        edit = await server.wait_for(method="editMessageText")
        assert edit.text == "主题 topic:户籍" and edit.message_id == msg.message_id
        await server.wait_for(method="answerCallbackQuery")
        assert server.answered_callbacks == [{"callback_query_id": query["id"], "text": "已选择"}]
        assert server.messages[(USER, msg.message_id)]["text"] == "主题 topic:户籍"
        assert "reply_markup" not in server.messages[(USER, msg.message_id)]


async def test_webhook_round_trip(server: FakeTelegram, bot: Bot) -> None:
    received: list[tuple[str | None, dict[str, object]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        url = f"http://127.0.0.1:{port}/hook"
        await bot.set_webhook(url, secret_token="s3cret", allowed_updates=["message"])
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.allowed_updates == ["message"]
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        assert await server.post_update_to_webhook(server.message(USER, "你好")) == 200
        assert received[0][0] == "s3cret" and received[0][1]["message"]["text"] == "你好"  # type: ignore[index]
        await bot.delete_webhook(drop_pending_updates=True)
        assert (await bot.get_webhook_info()).url == ""
    finally:
        await runner.cleanup()


async def test_not_found_for_unknown_callback_answer(server: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query("nope")
    with pytest.raises((TelegramNotFound, TelegramBadRequest)):
        await bot.get_file("missing")
