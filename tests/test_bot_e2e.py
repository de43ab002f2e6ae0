"""End to end: the real Dispatcher, outbox and database against a fake Bot API over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tests.harness import STAFF_CHAT, STAFF_USER, Harness, button, buttons, eventually

try:
    from tests.fake_telegram import FakeTelegram
except ImportError:  # pragma: no cover
    from fake_telegram import FakeTelegram

CITIZEN = 5001


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:TEST-TOKEN") as fake:
        yield fake


@pytest.fixture
async def h(server: FakeTelegram, db_url: str) -> AsyncIterator[Harness]:
    harness = Harness(server, db_url)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def ticket_number(text: str) -> int:
    m = re.search(r"#(\d+)", text)
    assert m, text
    return int(m.group(1))


async def escalate(h: Harness, user: int = CITIZEN, text: str = "婚姻登记需要带什么材料") -> tuple[int, int]:
    """Citizen asks something the knowledge base cannot answer; returns (ticket, card message id)."""
    h.say(user, text)
    told = await h.reply_to(user, "工单编号")
    number = ticket_number(told.text)
    card = await h.reply_to(STAFF_CHAT, f"工单 #{number}")
    return number, card.message_id


async def test_start_shows_welcome_and_topic_menu_whose_buttons_answer(h: Harness) -> None:
    h.say(CITIZEN, "/start")
    welcome = await h.reply_to(CITIZEN, "智能助手")
    labels = [t for t, _ in buttons(welcome)]
    assert labels == ["低保", "特困供养", "临时救助", "医疗救助", "信息公开申请", "联系与投诉"]
    assert "人工" in welcome.text
    mark = h.mark()
    h.press(CITIZEN, welcome.message_id, button(welcome, "低保"))
    listing = await h.reply_to(CITIZEN, "常见问题", after=mark)
    assert len(buttons(listing)) >= 3
    _first_label, first_data = buttons(listing)[0]
    mark = h.mark()
    h.press(CITIZEN, listing.message_id, first_data)
    answer = await h.reply_to(CITIZEN, "来源", after=mark)
    assert [t for t, _ in buttons(answer)] == ["有帮助", "没解决"]


@pytest.mark.postgres  # core flow: again on PostgreSQL (conftest)
async def test_a_question_gets_its_answer_with_source_and_feedback_buttons(h: Harness) -> None:
    h.say(CITIZEN, "低保怎么申请？")
    answer = await h.reply_to(CITIZEN, "乡镇")
    assert "来源" in answer.text
    assert answer.parse_mode == "HTML"
    mark = h.mark()
    h.press(CITIZEN, answer.message_id, button(answer, "有帮助"))
    await h.reply_to(CITIZEN, "感谢", after=mark)


async def test_not_solved_hands_the_question_to_staff(h: Harness) -> None:
    h.say(CITIZEN, "低保怎么申请")
    answer = await h.reply_to(CITIZEN, "来源")
    mark = h.mark()
    h.press(CITIZEN, answer.message_id, button(answer, "没解决"))
    told = await h.reply_to(CITIZEN, "工单编号", after=mark)
    card = await h.reply_to(STAFF_CHAT, f"工单 #{ticket_number(told.text)}")
    assert "低保怎么申请" in card.text


async def test_clarification_offers_candidates_and_none_of_these(h: Harness) -> None:
    h.say(CITIZEN, "低保")
    ask = await h.reply_to(CITIZEN, "您是想问")
    options = buttons(ask)
    assert 2 <= len(options) <= 4
    assert options[-1][0] == "都不是，转人工"
    mark = h.mark()
    h.press(CITIZEN, ask.message_id, options[0][1])
    await h.reply_to(CITIZEN, "来源", after=mark)
    mark = h.mark()
    h.press(CITIZEN, ask.message_id, options[-1][1])
    await h.reply_to(CITIZEN, "工单编号", after=mark)


@pytest.mark.postgres  # core flow: again on PostgreSQL (conftest)
async def test_escalation_staff_reply_follow_up_close_and_rating(h: Harness, server: FakeTelegram) -> None:
    number, card_id = await escalate(h)
    card = server.messages[(STAFF_CHAT, card_id)]
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["认领", "关闭"]
    assert "婚姻登记需要带什么材料" in card["text"]

    # Staff claim, then reply to the card: the citizen gets it marked with the ticket number.
    h.press(
        STAFF_CHAT, card_id, button(await h.reply_to(STAFF_CHAT, f"工单 #{number}"), "认领"), user=STAFF_USER
    )
    await eventually(lambda: "认领人" in server.messages[(STAFF_CHAT, card_id)]["text"])
    mark = h.mark()
    h.staff_says("婚姻登记请到县民政局婚姻登记处办理，带好身份证和户口簿。", reply_to=card_id)
    relayed = await h.reply_to(CITIZEN, "工作人员回复", after=mark)
    assert f"#{number}" in relayed.text and "户口簿" in relayed.text
    await eventually(lambda: "已回复" in server.messages[(STAFF_CHAT, card_id)]["text"])

    # The citizen's follow-ups (text and a photo) join the ticket and reach staff.
    mark = h.mark()
    h.say(CITIZEN, "好的，那需要带照片吗？")
    forwarded = await h.reply_to(STAFF_CHAT, "需要带照片吗", after=mark)
    assert f"#{number}" in forwarded.text
    await h.reply_to(CITIZEN, "已补充", after=mark)
    mark = h.mark()
    h.say(CITIZEN, "这是我的户口本", photo=True)
    copied = await h.reply_to(STAFF_CHAT, "户口本", after=mark, method="copyMessage")
    # Staff reply to the forwarded message (not the card): it still reaches the citizen.
    mark = h.mark()
    h.staff_says("收到，照片不用带。", reply_to=forwarded.message_id)
    await h.reply_to(CITIZEN, "照片不用带", after=mark)
    assert copied.message_id

    # Close from the group; the citizen is asked to rate; the rating shows on the card.
    mark = h.mark()
    h.staff_says(f"/close {number}")
    rate = await h.reply_to(CITIZEN, "打分", after=mark)
    assert len(buttons(rate)) == 5
    mark = h.mark()
    h.press(CITIZEN, rate.message_id, button(rate, "⭐⭐⭐⭐⭐"))
    await h.reply_to(CITIZEN, "感谢您的评价", after=mark)
    await eventually(lambda: "满意度：5/5" in server.messages[(STAFF_CHAT, card_id)]["text"])

    h.say(CITIZEN, "/mytickets")
    listing = await h.reply_to(CITIZEN, "您的工单")
    assert f"#{number}" in listing.text and "已办结" in listing.text


async def test_queue_ticket_and_reopen_commands(h: Harness) -> None:
    number, _card = await escalate(h)
    mark = h.mark()
    h.staff_says("/queue")
    queue = await h.reply_to(STAFF_CHAT, "未关闭工单", after=mark)
    assert f"#{number}" in queue.text and "等待" in queue.text
    mark = h.mark()
    h.staff_says(f"/ticket {number}")
    detail = await h.reply_to(STAFF_CHAT, "对话记录", after=mark)
    assert "婚姻登记" in detail.text
    h.staff_says(f"/close {number}")
    await h.reply_to(CITIZEN, "已办结")
    mark = h.mark()
    h.staff_says(f"/reopen {number}")
    await h.reply_to(CITIZEN, "重新打开", after=mark)


async def test_outsiders_cannot_touch_tickets(h: Harness, server: FakeTelegram) -> None:
    number, card_id = await escalate(h)
    stranger = 777
    server.set_member_status(STAFF_CHAT, stranger, "left")
    h.press(STAFF_CHAT, card_id, f"k:close:{number}", user=stranger)
    await eventually(
        lambda: any("只有热线工作人员" in (c.get("text") or "") for c in server.answered_callbacks)
    )
    assert "已关闭" not in server.messages[(STAFF_CHAT, card_id)]["text"]
    # A citizen cannot rate or act on someone else's ticket via forged callback data.
    mark = h.mark()
    h.say(4242, "你好")
    hello = await h.reply_to(4242, "", after=mark)
    h.press(4242, hello.message_id, f"r:{number}:1")
    h.say(4242, "/mytickets")
    await h.reply_to(4242, "还没有工单")


@pytest.mark.postgres  # core flow: again on PostgreSQL (conftest)
async def test_two_simultaneous_claims_one_wins(h: Harness, server: FakeTelegram) -> None:
    number, card_id = await escalate(h)
    h.press(STAFF_CHAT, card_id, f"k:claim:{number}", user=STAFF_USER)
    h.press(STAFF_CHAT, card_id, f"k:claim:{number}", user=STAFF_USER + 1)
    await eventually(lambda: len(server.answered_callbacks) >= 2)
    texts = [c.get("text") or "" for c in server.answered_callbacks]
    assert sum("您已认领" in t for t in texts) == 1
    assert sum("已由" in t for t in texts) == 1


@pytest.mark.postgres  # core flow: again on PostgreSQL (conftest)
async def test_staff_reply_reaches_citizen_after_a_restart(h: Harness) -> None:
    number, card_id = await escalate(h)
    await h.restart()
    mark = h.mark()
    h.staff_says("重启之后的回复", reply_to=card_id)
    relayed = await h.reply_to(CITIZEN, "重启之后的回复", after=mark)
    assert f"#{number}" in relayed.text


@pytest.mark.postgres  # core flow: again on PostgreSQL (conftest)
async def test_429_and_5xx_are_retried_until_delivered(h: Harness, server: FakeTelegram) -> None:
    server.fail_next("sendMessage", status=429, retry_after=1)
    h.say(CITIZEN, "低保怎么申请")
    await h.reply_to(CITIZEN, "乡镇", timeout=10)
    server.fail_next("sendMessage", status=502, count=2)
    mark = h.mark()
    h.say(CITIZEN + 1, "临时救助怎么申请")
    await h.reply_to(CITIZEN + 1, "临时救助", after=mark, timeout=15)
    failures = [a for a in server.attempts if a.method == "sendMessage" and not a.ok]
    assert {a.status for a in failures} >= {429, 502}


async def test_a_blocked_citizen_is_shown_on_the_ticket(h: Harness, server: FakeTelegram) -> None:
    _number, card_id = await escalate(h)
    server.block_chat(CITIZEN)
    mark = h.mark()
    h.staff_says("您好，已经帮您查询。", reply_to=card_id)
    await h.reply_to(STAFF_CHAT, "无法送达", after=mark)
    await eventually(lambda: "屏蔽" in server.messages[(STAFF_CHAT, card_id)]["text"], timeout=8)


async def test_html_special_characters_are_shown_as_typed(h: Harness, server: FakeTelegram) -> None:
    question = "<b>婚姻</b>登记 & <script>alert(1)</script> 要带啥？"
    _number, card_id = await escalate(h, text=question)
    assert question in server.messages[(STAFF_CHAT, card_id)]["text"]
    mark = h.mark()
    h.staff_says("带 <身份证> & 户口簿 </i>", reply_to=card_id)
    relayed = await h.reply_to(CITIZEN, "<身份证> & 户口簿 </i>", after=mark)
    assert relayed.parse_mode == "HTML"


async def test_a_5000_character_message_and_reply_are_handled(h: Harness) -> None:
    long_question = "我家的情况比较复杂，" * 500  # 5,000 characters
    assert len(long_question) == 5000
    h.say(CITIZEN, long_question)
    first = await h.reply_to(CITIZEN, "")
    assert first.ok
    _number, card_id = await escalate(h, user=CITIZEN + 7)
    mark = h.mark()
    h.staff_says("详细说明。" * 1000, reply_to=card_id)  # 5,000 characters: two messages
    await h.reply_to(CITIZEN + 7, "(2/2)", after=mark)
    parts = [c for c in h.to(CITIZEN + 7, mark)]
    assert len(parts) == 2 and all(len(p.text) <= 4096 for p in parts)


async def test_stickers_and_locations_get_a_polite_request(h: Harness) -> None:
    h.say(CITIZEN, sticker=True)
    await h.reply_to(CITIZEN, "只能看懂文字")
    mark = h.mark()
    h.say(CITIZEN, location=True)
    await h.reply_to(CITIZEN, "只能看懂文字", after=mark)


async def test_human_command_forwards_the_last_question_or_asks_for_one(h: Harness) -> None:
    h.say(CITIZEN, "/human")
    await h.reply_to(CITIZEN, "请输入您要咨询的问题")
    mark = h.mark()
    h.say(CITIZEN, "我想咨询一下我家的具体情况")
    await h.reply_to(CITIZEN, "工单编号", after=mark)
    h.say(CITIZEN + 1, "特困供养需要什么条件")
    await h.reply_to(CITIZEN + 1, "来源")
    mark = h.mark()
    h.say(CITIZEN + 1, "转人工")
    await h.reply_to(CITIZEN + 1, "工单编号", after=mark)
    card = await h.reply_to(STAFF_CHAT, "特困供养需要什么条件")
    assert card


async def test_flooding_gets_one_notice_and_no_flood_of_tickets(h: Harness, server: FakeTelegram) -> None:
    for i in range(26):
        h.say(CITIZEN, f"婚姻登记问题{i}")
    await h.reply_to(CITIZEN, "太快了", timeout=15)
    await h.app.sender.drain()
    notices = [c for c in h.to(CITIZEN) if "太快了" in (c.text or "")]
    assert len(notices) == 1
    cards = [c for c in h.to(STAFF_CHAT) if "工单 #" in (c.text or "") and "状态" in (c.text or "")]
    assert len(cards) <= 1


@pytest.mark.postgres
async def test_a_redelivered_update_is_answered_once_and_escalated_once(
    h: Harness, server: FakeTelegram
) -> None:
    # Telegram sends an update again when an instance died before acknowledging it.
    question = server.message(CITIZEN, "婚姻登记需要带什么材料")
    question["update_id"] = 777_001
    assert h.app is not None
    for _ in range(2):
        await h.app.dispatcher.feed_raw_update(h.app.bot, question)
    await h.app.sender.drain()
    told = [c for c in h.to(CITIZEN) if "工单" in (c.text or "")]
    cards = [c for c in h.to(STAFF_CHAT) if "工单 #" in (c.text or "")]
    assert len(told) == 1 and len(cards) == 1
    # A new update from the same citizen is handled as usual.
    mark = len(server.sent)
    h.say(CITIZEN, "补充一下：我是外地户口")
    await h.reply_to(CITIZEN, "已补充", after=mark)
