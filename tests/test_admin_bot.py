"""Admins in the bot, end to end against the fake Bot API: find, show, edit (FSM), review, gaps, stats."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import kb_store
from bot.models import AuditLog
from tests.harness import STAFF_USER, Harness, button, buttons

try:
    from tests.fake_telegram import FakeTelegram
except ImportError:  # pragma: no cover
    from fake_telegram import FakeTelegram

ADMIN = STAFF_USER  # the harness makes the staff member an admin
CITIZEN = 5002
ADMIN_PREFIXES = ("am:", "ag:", "ad:", "ae:", "ar:", "af:", "at:")
NEW_ANSWER = "（测试）低保请向户籍所在地乡镇人民政府提出书面申请，新流程以本答复为准。"


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:TEST-TOKEN") as fake:
        yield fake


@pytest.fixture
async def h(server: FakeTelegram, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(server, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def admin_says(h: Harness, text: str, expect: str):
    mark = h.mark()
    h.say(ADMIN, text, first_name="王管理")
    return await h.reply_to(ADMIN, expect, after=mark)


async def admin_presses(h: Harness, message, label: str, expect: str):
    mark = h.mark()
    h.press(ADMIN, message.message_id, button(message, label), user=ADMIN)
    return await h.reply_to(ADMIN, expect, after=mark)


async def citizen_answer(h: Harness, question: str = "低保怎么申请") -> str:
    mark = h.mark()
    h.say(CITIZEN, question)
    return (await h.reply_to(CITIZEN, "", after=mark)).text or ""


async def test_non_admins_get_no_admin_command_and_no_hint(h: Harness) -> None:
    replies = {}
    commands = ("/admin", "/kb_find 低保", "/kb_show dibao-apply", "/review", "/gaps", "/stats", "/nonsense")
    for i, text in enumerate(commands):
        user = CITIZEN + 100 + i  # a fresh citizen each time: an escalation would absorb what follows
        mark = h.mark()
        h.say(user, text)
        reply = await h.reply_to(user, "", after=mark)
        assert not any(data.startswith(ADMIN_PREFIXES) for _label, data in buttons(reply))
        assert "管理" not in (reply.text or "")
        replies[text] = reply.text
    # /admin is handled exactly like any unknown text.
    assert replies["/admin"] == replies["/nonsense"] == replies["/stats"]


async def test_admin_edits_an_answer_with_preview_then_approves_and_citizens_get_it(h: Harness) -> None:
    old_answer = await citizen_answer(h)
    menu = await admin_says(h, "/admin", "管理员菜单")
    assert {label for label, _data in buttons(menu)} >= {"统计", "新建条目"}

    shown = await admin_says(h, "/kb_show dibao-apply", "条目 dibao-apply")
    assert "状态：已发布（第 1 版）" in shown.text and "低保怎么申请" in shown.text and "历史" in shown.text
    prompt = await admin_presses(h, shown, "修改答复", "请发送新的答复全文")
    assert "当前答复" in prompt.text
    await admin_says(h, NEW_ANSWER, "说明修改原因")
    preview = await admin_says(h, "按新流程更新", "预览（尚未保存）")
    assert NEW_ANSWER in preview.text and "修改说明：按新流程更新" in preview.text
    saved = await admin_presses(h, preview, "保存为草稿", "已保存为草稿")
    assert "第 2 版" in saved.text

    # A draft is never served.
    assert await citizen_answer(h) == old_answer

    review = await admin_presses(h, saved, "审核并发布", "待审核：条目 dibao-apply 第 2 版")
    assert "＋ " + NEW_ANSWER in review.text
    confirm = await admin_presses(h, review, "发布", "确认发布")
    await admin_presses(h, confirm, "确认发布", "已发布")
    assert NEW_ANSWER in await citizen_answer(h)

    async with h.app.runtime.sf() as session:
        actions = list(await session.scalars(select(AuditLog.action).where(AuditLog.target == "dibao-apply")))
        detail = await kb_store.entry_detail(session, "dibao-apply")
    assert actions == ["kb.draft", "kb.approve"]
    assert detail.published.number == 2 and detail.published.note == "按新流程更新"
    assert detail.published.author.endswith(f"(tg:{ADMIN})")


async def test_flows_can_be_cancelled_midway(h: Harness) -> None:
    shown = await admin_says(h, "/kb_show dibao-apply", "条目 dibao-apply")
    await admin_presses(h, shown, "修改问法", "请发送完整的新问法列表")
    await admin_says(h, "/cancel", "已取消，没有保存任何改动")
    # After cancelling, text is an ordinary question again (the admin is a citizen too).
    reply = await admin_says(h, "低保怎么申请", "")
    assert "来源" in reply.text

    await admin_presses(h, shown, "添加问法", "请发送要添加的问法")
    prompt = await admin_says(h, "吃低保找哪个部门", "说明修改原因")
    await admin_presses(h, prompt, "取消", "已取消，没有保存任何改动")
    async with h.app.runtime.sf() as session:
        assert await kb_store.review_queue(session) == []


async def test_paraphrases_reject_with_reason_and_archive(h: Harness) -> None:
    shown = await admin_says(h, "/kb_show dibao-apply", "条目 dibao-apply")
    await admin_presses(h, shown, "添加问法", "请发送要添加的问法")
    await admin_says(h, "1. 吃低保找哪个部门\n• 低保归谁管", "说明修改原因")  # pasted list marks dropped
    preview = await admin_says(h, "市民常这样问", "预览")
    assert "＋ 吃低保找哪个部门" in preview.text and "＋ 低保归谁管" in preview.text
    await admin_says(h, "好的", "请用上面的按钮确认")  # typing at the preview saves nothing
    await admin_presses(h, preview, "保存为草稿", "已保存为草稿")

    queue = await admin_says(h, "/review", "待审核草稿（1")
    review = await admin_presses(h, queue, "dibao-apply #2", "待审核")
    await admin_presses(h, review, "驳回", "请输入驳回理由")
    await admin_says(h, "第二个问法不规范", "已驳回")
    async with h.app.runtime.sf() as session:
        rejected = (await kb_store.history(session, "dibao-apply"))[0]
    assert rejected.state == "rejected" and rejected.review_note == "第二个问法不规范"
    assert (await admin_says(h, "/review", "审核队列是空的")).text

    # Archive: asks why, confirms, and the entry is no longer served.
    shown = await admin_says(h, "/kb_show dibao-apply", "条目 dibao-apply")
    await admin_presses(h, shown, "下线", "请说明下线原因")
    confirm = await admin_says(h, "政策调整，暂停提供", "确认下线")
    await admin_presses(h, confirm, "确认下线", "已下线")
    assert "乡镇" not in await citizen_answer(h, "吃低保要去民政局办吗")
    shown = await admin_says(h, "/kb_show dibao-apply", "条目 dibao-apply")
    assert "已下线" in shown.text
    restored = await admin_presses(h, shown, "恢复第 1 版", "恢复为新草稿")
    assert "第 3 版" in restored.text


async def test_gaps_draft_an_entry_and_stats_render(h: Harness) -> None:
    # Two citizens ask what the knowledge base does not cover, in two wordings.
    for user, text in ((CITIZEN, "婚姻登记需要带什么材料"), (CITIZEN + 1, "婚姻登记要带哪些材料")):
        mark = h.mark()
        h.say(user, text)
        await h.reply_to(user, "工单编号", after=mark)
    stats = await admin_says(h, "/stats", "最近 7 天")
    assert "市民提问：2" in stats.text and "最近 30 天" in stats.text and "满意度" in stats.text

    gaps = await admin_says(h, "/gaps", "最近 7 天最常见的未解决问题")
    first = gaps.text.splitlines()[1]
    assert first.startswith("1. 婚姻登记") and first.endswith("（2 次：转人工 2）")
    assert "看最近 30 天" in [label for label, _data in buttons(gaps)]
    month = await admin_presses(h, gaps, "看最近 30 天", "最近 30 天")
    prompt = await admin_presses(h, month, "起草 1", "为这些问题起草新条目")
    assert "婚姻登记需要带什么材料" in prompt.text and "婚姻登记要带哪些材料" in prompt.text
    await admin_says(h, "Bad Id!", "请发送新条目的编号")
    topics = await admin_says(h, "hunyin-dengji", "请选择主题")
    await admin_presses(h, topics, "转介", "请发送答复全文")
    await admin_says(h, "（测试）婚姻登记不属于本热线，请咨询婚姻登记机关。", "请发送出处")
    await admin_says(h, "（测试出处）", "说明修改原因")
    preview = await admin_says(h, "来自知识缺口", "新条目")
    assert "婚姻登记需要带什么材料" in preview.text and "主题：转介" in preview.text
    await admin_presses(h, preview, "保存为草稿", "已保存为草稿：条目 hunyin-dengji 第 1 版")


async def test_kb_find_and_kb_show(h: Harness) -> None:
    found = await admin_says(h, "/kb_find 低保怎么申请", "有关的条目")
    assert found.text.splitlines()[1].startswith("dibao-apply")
    shown = await admin_presses(h, found, "查看 dibao-apply", "条目 dibao-apply")
    assert "出处" in shown.text
    await admin_says(h, "/kb_find 完全无关的火星文字", "没有找到")
    await admin_says(h, "/kb_show no-such-entry", "没有条目 no-such-entry")
    assert "用法" in (await admin_says(h, "/kb_show", "用法")).text


async def test_admin_buttons_refuse_anyone_else(h: Harness) -> None:
    async with h.app.runtime.sf() as session:
        draft = await kb_store.save_draft(
            session, "dibao-apply", answer="（测试）不应被发布", author="someone"
        )
        await session.commit()
    mark = h.mark()
    h.say(CITIZEN, "你好")
    hello = await h.reply_to(CITIZEN, "", after=mark)
    # A citizen forging an admin button press: nothing is published, nothing is said.
    mark = h.mark()
    h.press(CITIZEN, hello.message_id, f"ar:approve_ok:{draft.id}", user=CITIZEN)
    h.say(CITIZEN, "低保怎么申请")
    reply = await h.reply_to(CITIZEN, "", after=mark)
    assert "不应被发布" not in reply.text
    assert not [c for c in h.to(CITIZEN, mark) if "已发布" in (c.text or "")]
    async with h.app.runtime.sf() as session:
        assert (await kb_store.get_revision(session, draft.id)).state == "draft"


async def test_admin_commands_are_registered_only_in_admins_chats(h: Harness, server: FakeTelegram) -> None:
    await h.app.set_commands()
    private = {c["command"] for c in server.commands_for({"type": "all_private_chats"})}
    mine = {c["command"] for c in server.commands_for({"type": "chat", "chat_id": ADMIN})}
    assert "admin" not in private and "start" in private
    assert {"admin", "kb_find", "kb_show", "review", "gaps", "stats", "cancel", "start"} <= mine


async def test_web_login_link_signs_the_admin_into_the_panel_served_next_to_the_bot(
    server: FakeTelegram, tmp_path: Path
) -> None:
    import aiohttp

    from tests.procs import free_port

    port = free_port()
    h = Harness(server, f"sqlite+aiosqlite:///{tmp_path}/w.db", web_host="127.0.0.1", web_port=port,
                web_base_url=f"http://127.0.0.1:{port}")  # fmt: skip
    await h.start()
    try:
        reply = await admin_says(h, "/web_login", "一次性登录链接")
        url = re.search(r"http://\S+/login/\S+", reply.text or "")
        assert url is not None
        # Someone who is not an admin gets the citizen reply and no link.
        mark = len(server.sent)
        h.say(CITIZEN, "/web_login")
        other = await h.reply_to(CITIZEN, "", after=mark)
        assert "/login/" not in (other.text or "")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web:  # an IP host
            page = await web.get(url.group())
            body = await page.text()
            assert page.status == 200 and "登录管理后台" in body
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', body)
            assert csrf is not None
            signed = await web.post(url.group(), data={"csrf_token": csrf.group(1)})
            assert signed.status == 200 and str(signed.url).endswith("/kb")
            again = await web.get(url.group())
            assert again.status == 410  # one use only
    finally:
        await h.stop()
