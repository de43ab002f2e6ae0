"""Citizens' personal data: /privacy, /forget (erasure with anonymised statistics kept), retention."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot import privacy
from bot.conversation import CitizenInfo, Conversation
from bot.models import (
    AuditLog,
    Citizen,
    OutboxMessage,
    ProcessedUpdate,
    QueryLog,
    Ticket,
    TicketMessage,
    utcnow,
)
from bot.office_hours import OfficeHours
from bot.replies import Button, Outgoing
from bot.runtime import Runtime
from bot.tickets import StaffDesk, StaffMember
from handlers.delivery import Delivery
from handlers.terminal import TerminalChat
from tests.harness import STAFF_CHAT, Harness, button, buttons, eventually

try:
    from tests.fake_telegram import FakeTelegram
except ImportError:  # pragma: no cover
    from fake_telegram import FakeTelegram

DESK_CHAT = -100
ALICE = StaffMember(1, "李四")
NAME, USERNAME, UID = "王小明", "wangxm", 424242
SECRET_QUESTION = "婚姻登记要带什么，我叫王小明"
SUPPLEMENT = "我住在近城镇，电话打不通"
STAFF_ANSWER = "王小明您好，请带户口簿到县民政局婚姻登记处补办。"


@pytest.fixture
def runtime(seeded_runtime: Runtime) -> Runtime:
    """conftest's ``runtime``, from a copy of the seeded template database (faster)."""
    return seeded_runtime


def _services(runtime: Runtime) -> tuple[StaffDesk, Conversation]:
    desk = StaffDesk(DESK_CHAT, OfficeHours.parse("Mon-Sun 00:00-24:00"), reminder_hours=4.0)
    return desk, Conversation(runtime.knowledge, desk, runtime.settings.bureau_facts())


def _info(uid: int = UID, name: str = NAME, username: str | None = USERNAME) -> CitizenInfo:
    return CitizenInfo("telegram", uid, uid, name, username=username, language="zh-hans")


async def _deliver(session, items: list[Outgoing]) -> None:
    await Delivery(None)(session, items)


async def _mark_sent(session, message_id_from: int = 500) -> None:
    """Pretend the sender delivered everything queued so far (message ids like Telegram's)."""
    rows = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending")))
    for i, row in enumerate(rows):
        row.status, row.sent_at, row.result_message_id = "sent", utcnow(), message_id_from + i
        if row.link_kind == "card":
            ticket = await session.get(Ticket, row.ticket_id)
            ticket.card_chat_id, ticket.card_message_id = row.chat_id, row.result_message_id
    await session.commit()


async def _citizen_with_history(
    runtime: Runtime, conv: Conversation, desk: StaffDesk
) -> tuple[int, int, int]:
    """A citizen with an answered question, a closed and rated ticket, and an open ticket with a
    text and a photo supplement. Returns (citizen id, closed ticket, open ticket)."""
    async with runtime.sf() as session:
        citizen = await conv.citizen(session, _info())
        await _deliver(session, await conv.ask(session, citizen, "低保怎么申请"))
        await _deliver(session, await conv.ask(session, citizen, SECRET_QUESTION))
        first = await session.scalar(select(Ticket).where(Ticket.citizen_id == citizen.id))
        assert first is not None
        _note, out = await desk.reply(session, first, ALICE, text=STAFF_ANSWER)
        await _deliver(session, out)
        _note, out = await desk.close(session, first.id, ALICE)
        await _deliver(session, out)
        await _deliver(session, await conv.rate(session, citizen, first.id, 4))
        await _mark_sent(session)

        await _deliver(session, await conv.ask(session, citizen, "骨灰寄存怎么收费，我叫王小明"))
        await _mark_sent(session, 600)
        second = await session.scalar(
            select(Ticket).where(Ticket.citizen_id == citizen.id, Ticket.status == "open")
        )
        assert second is not None
        await _deliver(session, await conv.ask(session, citizen, SUPPLEMENT))
        await _deliver(
            session,
            await conv.media(
                session, citizen, kind="photo", caption="户口本", file_id="PHOTO-FILE-ID", copy_from=(UID, 77)
            ),
        )
        await _mark_sent(session, 700)
        return citizen.id, first.id, second.id


def _personal(text: str) -> bool:
    return any(s in text for s in (NAME, USERNAME, "婚姻登记", SUPPLEMENT, "户口本", "PHOTO-FILE-ID", "骨灰"))


# --- service ----------------------------------------------------------------------------------


async def test_forget_erases_personal_data_and_keeps_ticket_statistics(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    cid, closed_id, open_id = await _citizen_with_history(runtime, conv, desk)
    async with runtime.sf() as session:
        other = await conv.citizen(session, _info(5150, "赵六", None))
        await _deliver(session, await conv.ask(session, other, "临时救助怎么申请"))
        before = await session.get(Ticket, closed_id)
        stats_before = (
            before.status, before.rating, before.topic, before.created_at, before.first_response_at
        )

    async with runtime.sf() as session:
        citizen = await session.get(Citizen, cid)
        out = await conv.forget(session, citizen)
        await _deliver(session, out)

    # The citizen is told, at the chat the row no longer holds.
    confirmation = [o for o in out if o.chat_id == UID]
    assert len(confirmation) == 1 and "已删除" in confirmation[0].reply.text
    assert f"#{open_id}" in confirmation[0].reply.text  # the open ticket was closed
    # Staff: both cards re-rendered without the person, a note on the withdrawn ticket, and the
    # forwarded copies (text and photo) deleted from the group.
    edits = [o for o in out if o.edit_card]
    assert {o.ticket_id for o in edits} == {closed_id, open_id}
    assert all(not _personal(o.reply.text) and "个人信息已删除" in o.reply.text for o in edits)
    assert any("撤回" in (o.reply.text if o.reply else "") and o.chat_id == DESK_CHAT for o in out)
    deletes = [o for o in out if o.delete_message_id is not None]
    assert len(deletes) == 2 and all(o.chat_id == DESK_CHAT for o in deletes)

    async with runtime.sf() as session:
        citizen = await session.get(Citizen, cid)
        assert citizen.display_name == "" and citizen.username is None and citizen.last_question is None
        assert citizen.external_id != UID and citizen.chat_id != UID and citizen.anonymized_at is not None
        kept = await session.get(Ticket, closed_id)
        assert (kept.status, kept.rating, kept.topic, kept.created_at, kept.first_response_at) == stats_before
        assert kept.question == privacy.ERASED and kept.anonymized_at is not None
        withdrawn = await session.get(Ticket, open_id)
        assert withdrawn.status == "closed" and withdrawn.closed_by == "市民撤回"
        for m in await session.scalars(select(TicketMessage)):
            assert not _personal(f"{m.text} {m.author} {m.file_id}") and m.author_id != UID
        questions = {q.citizen_id: q.question for q in await session.scalars(select(QueryLog))}
        assert questions[cid] == privacy.ERASED
        assert questions[other.id] == "临时救助怎么申请"  # someone else's data is untouched
        for row in await session.scalars(select(OutboxMessage)):
            assert not _personal(json.dumps(row.payload, ensure_ascii=False)), row.payload
            if row.status == "pending":
                assert row.chat_id != UID or row.payload.get("text", "").find("已删除") >= 0
        audit = await session.scalar(select(AuditLog).where(AuditLog.action == "privacy.forget"))
        assert audit is not None
        assert not _personal(json.dumps(audit.detail, ensure_ascii=False) + audit.target)
        assert str(UID) not in json.dumps(audit.detail) + audit.target
        # The staff desk can neither answer nor reopen the erased tickets.
        withdrawn = await session.get(Ticket, open_id)
        note, out = await desk.reply(session, withdrawn, ALICE, text="还在吗？")
        assert "已删除个人信息" in note and out == []
        note, out = await desk.reopen(session, open_id, ALICE)
        assert "不能重新打开" in note and out == []

    # Idempotent: a second erasure finds nothing more.
    async with runtime.sf() as session:
        again = await privacy.forget_citizen(session, cid, staff_chat_id=DESK_CHAT)
        await session.commit()
    assert again.already_anonymised and again.withdrawn == ()
    assert again.messages == 0 and again.queries == 0 and again.staff_messages == ()

    # Writing again starts afresh: the old tickets are no longer theirs.
    async with runtime.sf() as session:
        fresh = await conv.citizen(session, _info())
        assert fresh.id != cid
        listing = await conv.my_tickets(session, fresh)
        assert "还没有工单" in listing[0].reply.text


async def test_cancel_keeps_everything(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    cid, _closed, open_id = await _citizen_with_history(runtime, conv, desk)
    async with runtime.sf() as session:
        citizen = await session.get(Citizen, cid)
        prompt = await conv.forget_prompt(session, citizen)
        assert f"#{open_id}" in prompt[0].reply.text
        labels = [b.label for row in prompt[0].reply.buttons for b in row]
        assert labels == ["确认删除", "取消"]
        out = await conv.press(session, citizen, Button("", "forget", (0,)))
        await _deliver(session, out)
        assert "已取消" in out[0].reply.text
    async with runtime.sf() as session:
        citizen = await session.get(Citizen, cid)
        assert citizen.display_name == NAME and citizen.anonymized_at is None
        ticket = await session.get(Ticket, open_id)
        assert ticket.status == "open" and "骨灰" in ticket.question


def _ago(days: float) -> dt.datetime:
    return utcnow() - dt.timedelta(days=days)


async def test_retention_only_touches_closed_tickets_older_than_the_period(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    ids: dict[str, int] = {}
    async with runtime.sf() as session:
        for key, uid in (("old", 1), ("recent", 2), ("open", 3)):
            citizen = await conv.citizen(session, _info(uid, f"市民{uid}"))
            await _deliver(session, await conv.ask(session, citizen, f"婚姻登记需要带什么材料 {key}"))
            ticket = await session.scalar(select(Ticket).where(Ticket.citizen_id == citizen.id))
            ids[key], ids[f"c_{key}"] = ticket.id, citizen.id
        for key in ("old", "recent"):
            _note, out = await desk.close(session, ids[key], ALICE)
            await _deliver(session, out)
        long_ago = _ago(300)
        await session.execute(update(Citizen).values(created_at=long_ago))
        await session.execute(update(Ticket).values(created_at=long_ago))
        await session.execute(
            update(QueryLog).where(QueryLog.citizen_id != ids["c_recent"]).values(at=long_ago)
        )
        await session.execute(update(Ticket).where(Ticket.id == ids["old"]).values(closed_at=_ago(200)))
        await session.execute(update(Ticket).where(Ticket.id == ids["recent"]).values(closed_at=_ago(10)))
        await session.commit()

    async with runtime.sf() as session:
        report = await privacy.apply_retention(session, 180)
        await session.commit()
    assert report.tickets == 1 and report.citizens == 1
    async with runtime.sf() as session:
        old = await session.get(Ticket, ids["old"])
        assert old.question == privacy.EXPIRED and old.anonymized_at is not None and old.status == "closed"
        recent = await session.get(Ticket, ids["recent"])
        assert "recent" in recent.question and recent.anonymized_at is None
        still_open = await session.get(Ticket, ids["open"])  # open for 300 days: never anonymised
        assert "open" in still_open.question and still_open.anonymized_at is None
        msgs = {
            m.ticket_id: m.text
            for m in await session.scalars(select(TicketMessage))
            if m.direction == "citizen"
        }
        assert msgs[ids["old"]] == privacy.EXPIRED and "recent" in msgs[ids["recent"]]
        citizens = {c.id: c for c in await session.scalars(select(Citizen))}
        assert citizens[ids["c_old"]].display_name == "" and citizens[ids["c_old"]].anonymized_at
        assert citizens[ids["c_recent"]].display_name == "市民2"
        assert citizens[ids["c_open"]].display_name == "市民3"  # an open ticket keeps its citizen
        questions = {q.citizen_id: q.question for q in await session.scalars(select(QueryLog))}
        assert questions[ids["c_old"]] == privacy.EXPIRED and "recent" in questions[ids["c_recent"]]

    # Idempotent: nothing more to do; 0 days means retention is off.
    async with runtime.sf() as session:
        assert await privacy.anonymise_closed(session, 180) == 0
        assert await privacy.anonymise_closed(session, 0) == 0
        await session.commit()


async def test_daily_retention_runs_once_a_day(runtime: Runtime) -> None:
    now = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    async with runtime.sf() as session:
        assert await privacy.daily_retention(session, 180, now=now) is not None
        await session.commit()
    async with runtime.sf() as session:
        later = now + dt.timedelta(hours=6)
        assert await privacy.daily_retention(session, 180, now=later) is None
        await session.commit()
    async with runtime.sf() as session:
        tomorrow = now + dt.timedelta(days=1)
        assert await privacy.daily_retention(session, 180, now=tomorrow) is not None
        await session.commit()


def test_privacy_notice_states_what_why_how_long_and_how_to_erase() -> None:
    text = privacy.privacy_notice(180).text
    for part in ("Telegram 账号 ID", "问题", "工单对话", "评分", "统计", "180 天", "/forget", "48 小时"):
        assert part in text, part
    assert "180 天" not in privacy.privacy_notice(0).text


async def test_terminal_citizen_can_read_the_notice_and_forget(runtime: Runtime) -> None:
    _desk, conv = _services(runtime)
    out = io.StringIO()
    chat = TerminalChat(runtime, conv, out=out, external_id=31337)
    for line in ("婚姻登记需要带什么材料", "/privacy", "/forget"):
        assert await chat.handle(line)
    assert "个人信息说明" in out.getvalue() and "确定要删除" in out.getvalue()
    assert [b.label for b in chat.buttons] == ["确认删除", "取消"]
    assert await chat.handle("1")
    assert "您的个人信息已删除" in out.getvalue()
    async with runtime.sf() as session:
        ticket = await session.scalar(select(Ticket))
        assert ticket.status == "closed" and ticket.question == privacy.ERASED


# --- end to end (fake Bot API) ----------------------------------------------------------------

CITIZEN = 6001


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:TEST-TOKEN") as fake:
        yield fake


@pytest.fixture
async def h(server: FakeTelegram, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(server, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    app = await harness.start()
    # The staff group's real limit (20 a minute) would only make these tests wait.
    app.sender.limits.group_per_minute, app.sender.limits.group_burst = 600.0, 20.0
    try:
        yield harness
    finally:
        await harness.stop()


async def _escalate_with_supplement(h: Harness) -> tuple[int, int, int]:
    """Returns (ticket number, card message id, forwarded supplement message id)."""
    h.say(CITIZEN, "婚姻登记需要带什么材料")
    told = await h.reply_to(CITIZEN, "工单编号")
    number = int(re.search(r"#(\d+)", told.text).group(1))
    card = await h.reply_to(STAFF_CHAT, f"工单 #{number}")
    mark = h.mark()
    h.say(CITIZEN, SUPPLEMENT)
    forwarded = await h.reply_to(STAFF_CHAT, SUPPLEMENT, after=mark)
    await h.reply_to(CITIZEN, "已补充", after=mark)
    return number, card.message_id, forwarded.message_id


async def test_privacy_command_shows_the_notice_and_stores_nothing(h: Harness) -> None:
    h.say(CITIZEN, "/privacy")
    notice = await h.reply_to(CITIZEN, "个人信息说明")
    assert "180 天" in notice.text and "/forget" in notice.text
    async with h.app.runtime.sf() as session:
        assert await session.scalar(select(Citizen).where(Citizen.external_id == CITIZEN)) is None


async def test_forget_then_cancel_keeps_the_data(h: Harness, server: FakeTelegram) -> None:
    number, card_id, _fwd = await _escalate_with_supplement(h)
    mark = h.mark()
    h.say(CITIZEN, "/forget")
    prompt = await h.reply_to(CITIZEN, "确定要删除", after=mark)
    assert f"#{number}" in prompt.text
    assert [t for t, _ in buttons(prompt)] == ["确认删除", "取消"]
    mark = h.mark()
    h.press(CITIZEN, prompt.message_id, button(prompt, "取消"))
    await h.reply_to(CITIZEN, "已取消", after=mark)
    assert "婚姻登记" in server.messages[(STAFF_CHAT, card_id)]["text"]
    # The ticket is still open: a staff reply still reaches the citizen.
    mark = h.mark()
    h.staff_says("请带户口簿。", reply_to=card_id)
    await h.reply_to(CITIZEN, "请带户口簿", after=mark)


async def test_forget_confirmed_erases_tells_the_citizen_and_the_staff_card(
    h: Harness, server: FakeTelegram
) -> None:
    number, card_id, forwarded_id = await _escalate_with_supplement(h)
    mark = h.mark()
    h.say(CITIZEN, "/forget")
    prompt = await h.reply_to(CITIZEN, "确定要删除", after=mark)
    mark = h.mark()
    h.press(CITIZEN, prompt.message_id, button(prompt, "确认删除"))
    done = await h.reply_to(CITIZEN, "个人信息已删除", after=mark)
    assert f"#{number}" in done.text

    # The staff card now says the citizen withdrew; the question and name are gone, no buttons.
    def card_text() -> str:
        return server.messages[(STAFF_CHAT, card_id)].get("text", "")

    await eventually(lambda: "个人信息已删除" in card_text(), timeout=10)
    card = server.messages[(STAFF_CHAT, card_id)]
    assert "市民撤回" in card["text"] and "婚姻登记" not in card["text"] and "张三" not in card["text"]
    assert not card.get("reply_markup")
    await h.reply_to(STAFF_CHAT, "撤回", after=mark)
    # The forwarded supplement is withdrawn from the group (the card stays, anonymised).
    await eventually(lambda: (STAFF_CHAT, forwarded_id) in server.deleted, timeout=10)
    assert (STAFF_CHAT, card_id) not in server.deleted

    # A staff reply to the card is refused and reaches nobody.
    mark = h.mark()
    h.staff_says("还需要帮忙吗？", reply_to=card_id)
    await h.reply_to(STAFF_CHAT, "无法再回复", after=mark)
    assert not [c for c in h.to(CITIZEN, mark) if "还需要帮忙" in (c.text or "")]

    # Writing again starts afresh.
    mark = h.mark()
    h.say(CITIZEN, "/mytickets")
    await h.reply_to(CITIZEN, "还没有工单", after=mark)


# --- command line ------------------------------------------------------------------------------


def test_cli_privacy_anonymise_runs_on_demand(tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}")
    env.pop("BOT_TOKEN", None)
    main = Path(__file__).resolve().parent.parent / "main.py"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(main), "privacy", "anonymise", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip

    done = run("--days", "30")
    assert done.returncode == 0, done.stderr
    assert "retention 30 days: 0 tickets" in done.stdout
    assert run("--days", "-1").returncode == 1


async def test_handled_update_ids_are_forgotten_after_two_days(runtime: Runtime) -> None:
    now = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    async with runtime.sf() as session:
        session.add_all([
            ProcessedUpdate(update_id=1, at=now - dt.timedelta(days=3)),
            ProcessedUpdate(update_id=2, at=now - dt.timedelta(hours=47)),
        ])  # fmt: skip
        await session.commit()
        assert await privacy.prune_processed_updates(session, now=now) == 1
        await session.commit()
        left = list(await session.scalars(select(ProcessedUpdate.update_id)))
    assert left == [2]  # a redelivery of a recent update is still recognised
