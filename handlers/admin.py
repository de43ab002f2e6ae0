"""Admins in private chat: find and show entries, edit them step by step, review drafts, gaps, stats.

Only the ``ADMIN_IDS`` users reach this router (every message and every button press is checked);
anyone else's /admin falls through to the citizen handlers like any other text, so there is no
hint that admin commands exist. Editing is an aiogram FSM: every step can be cancelled (/cancel
or 取消), a preview comes before saving, and saving makes a draft. Drafts are served only after
an explicit 发布 (approve) step; see ``bot.kb_store`` for the review rule.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, User
from sqlalchemy.ext.asyncio import AsyncSession

from bot import accounts, admin_flow, kb_store, reports
from bot.i18n import _
from bot.knowledge_service import KnowledgeService
from bot.models import utcnow
from bot.replies import Button, Outgoing, Reply
from bot.settings import Settings
from handlers.common import display_name
from handlers.delivery import Delivery
from knowledge.entries import MAX_ANSWER_CHARS, Entry, valid_id

MAX_LIST = 10
# "1. ", "2、", "3）" in front of a pasted question (but not the 1.5 of "1.5万元").
_NUMBERING = re.compile(r"^\d{1,2}(?:[.)]\s+|[、）])")
GAP_DAYS = (7, 30)


# --- callback data (each ≤ 64 bytes: entry ids are at most 40 characters) ----------------------


class AdmMenuCb(CallbackData, prefix="am"):
    action: str  # menu | queue | stats | new | cancel


class AdmGapsCb(CallbackData, prefix="ag"):
    days: int


class AdmGapCb(CallbackData, prefix="ad"):
    index: int  # position in the /gaps list shown (kept in the FSM data)
    paraphrase: int = 0  # 1: add the questions to the gap's related entry instead of a new entry


class AdmEntryCb(CallbackData, prefix="ae"):
    action: str  # show | answer | questions | paraphrases | archive | archive_ok
    entry_id: str


class AdmRevCb(CallbackData, prefix="ar"):
    action: str  # view | approve | approve_ok | reject | restore
    rev: int


class AdmFlowCb(CallbackData, prefix="af"):
    action: str  # save | cancel


class AdmTopicCb(CallbackData, prefix="at"):
    index: int


class Edit(StatesGroup):
    answer = State()
    questions = State()
    paraphrases = State()
    new_id = State()
    new_topic = State()
    new_questions = State()
    new_answer = State()
    new_source = State()
    note = State()
    preview = State()


class Review(StatesGroup):
    reject_reason = State()
    archive_reason = State()
    archive_confirm = State()


# --- small helpers -------------------------------------------------------------------------------


def btn(label: str, data: CallbackData) -> Button:
    return Button(label, "packed", (data.pack(),))


def cancel_row() -> tuple[Button, ...]:
    return (btn(_("取消"), AdmFlowCb(action="cancel")),)


def who(user: User | None) -> str:
    assert user is not None
    return admin_flow.actor(user.id, display_name(user))


def lines_of(text: str) -> list[str]:
    """One question per line; list bullets and numbering people paste are dropped."""
    out = []
    for line in text.splitlines():
        line = _NUMBERING.sub("", line.strip().lstrip("•·-*").strip()).strip()
        if line:
            out.append(line)
    return out


def plain(message: Message) -> bool:
    return bool(message.text) and not (message.text or "").startswith("/")


async def say(
    deliver: Delivery,
    session: AsyncSession,
    chat_id: int,
    text: str,
    buttons: tuple[tuple[Button, ...], ...] = (),
    header: str | None = None,
) -> None:
    await deliver(session, [Outgoing(chat_id, Reply(text, header=header, buttons=buttons))])


async def finish(state: FSMContext) -> None:
    """End a flow but keep the last /gaps list, so its buttons keep working."""
    gaps = (await state.get_data()).get("gaps")
    await state.clear()
    if gaps:
        await state.update_data(gaps=gaps)


async def begin(state: FSMContext, step: State, **data: Any) -> None:
    gaps = (await state.get_data()).get("gaps")
    await state.set_state(step)
    await state.set_data({**data, **({"gaps": gaps} if gaps else {})})


async def served_now(session: AsyncSession, knowledge: KnowledgeService) -> None:
    """Commit a publish or archive and rebuild this instance's index before saying it is done;
    other instances follow within KB_REFRESH_SECONDS (they poll the kb version)."""
    await session.commit()
    await knowledge.refresh_if_changed()


def base_of(detail: kb_store.EntryDetail) -> kb_store.RevisionInfo:
    """What an edit starts from: the newest revision that was not rejected (as kb_store does)."""
    return next((r for r in detail.history if r.state != "rejected"), detail.latest)


# --- views ---------------------------------------------------------------------------------------


def entry_buttons(detail: kb_store.EntryDetail) -> tuple[tuple[Button, ...], ...]:
    eid = detail.id
    rows: list[tuple[Button, ...]] = [
        (
            btn(_("修改答复"), AdmEntryCb(action="answer", entry_id=eid)),
            btn(_("修改问法"), AdmEntryCb(action="questions", entry_id=eid)),
        ),
        (btn(_("添加问法"), AdmEntryCb(action="paraphrases", entry_id=eid)),),
    ]
    for d in detail.drafts[:3]:
        rows.append((btn(_("审核第 {n} 版", n=d.number), AdmRevCb(action="view", rev=d.id)),))
    if detail.published is not None:
        rows.append((btn(_("下线"), AdmEntryCb(action="archive", entry_id=eid)),))
    else:
        archived = next((r for r in detail.history if r.state == "archived"), None)
        if archived is not None and not detail.drafts:
            rows.append(
                (btn(_("恢复第 {n} 版", n=archived.number), AdmRevCb(action="restore", rev=archived.id)),)
            )
    return tuple(rows)


async def show_entry(
    session: AsyncSession, deliver: Delivery, chat_id: int, entry_id: str, settings: Settings
) -> None:
    detail = await kb_store.entry_detail(session, entry_id)
    if detail is None:
        await say(deliver, session, chat_id, _("没有条目 {id}。可以用 /kb_find 查找。", id=entry_id))
        return
    await say(
        deliver, session, chat_id, admin_flow.detail_text(detail, settings.timezone), entry_buttons(detail)
    )


async def show_menu(session: AsyncSession, deliver: Delivery, chat_id: int) -> None:
    pending = len(await kb_store.review_queue(session))
    text = "\n".join(
        [
            _("管理员菜单"),
            _("/kb_find 文字 — 查找条目"),
            _("/kb_show 编号 — 查看条目、修改、发布、下线"),
            _("/review — 审核队列；/gaps — 知识缺口；/stats — 统计"),
            _("编辑中随时可以发送 /cancel 取消。"),
        ]
    )
    buttons = (
        (btn(_("审核队列（{n}）", n=pending), AdmMenuCb(action="queue")),),
        (
            btn(_("知识缺口（7 天）"), AdmGapsCb(days=7)),
            btn(_("知识缺口（30 天）"), AdmGapsCb(days=30)),
        ),
        (btn(_("统计"), AdmMenuCb(action="stats")), btn(_("新建条目"), AdmMenuCb(action="new"))),
    )
    await say(deliver, session, chat_id, text, buttons)


async def show_queue(session: AsyncSession, deliver: Delivery, chat_id: int, settings: Settings) -> None:
    queue = await kb_store.review_queue(session)
    buttons = tuple(
        (btn(f"{i}. {r.entry_id} #{r.number}", AdmRevCb(action="view", rev=r.id)),)
        for i, r in enumerate(queue[:MAX_LIST], start=1)
    )
    await say(deliver, session, chat_id, admin_flow.queue_text(queue, settings.timezone), buttons)


async def show_revision(
    session: AsyncSession, deliver: Delivery, chat_id: int, rev_id: int, settings: Settings
) -> None:
    rev = await kb_store.get_revision(session, rev_id)
    if rev is None:
        await say(deliver, session, chat_id, _("没有这个版本。"))
        return
    detail = await kb_store.entry_detail(session, rev.entry_id)
    published = detail.published if detail else None
    if rev.state != "draft":
        text = _("第 {n} 版已处理：{state}", n=rev.number, state=admin_flow.state_label(rev.state))
        await say(
            deliver,
            session,
            chat_id,
            text,
            ((btn(_("查看条目"), AdmEntryCb(action="show", entry_id=rev.entry_id)),),),
        )
        return
    buttons = (
        (
            btn(_("发布"), AdmRevCb(action="approve", rev=rev.id)),
            btn(_("驳回"), AdmRevCb(action="reject", rev=rev.id)),
        ),
        (btn(_("查看条目"), AdmEntryCb(action="show", entry_id=rev.entry_id)),),
    )
    await say(deliver, session, chat_id, admin_flow.review_text(rev, published, settings.timezone), buttons)


async def show_gaps(
    session: AsyncSession, deliver: Delivery, chat_id: int, days: int, state: FSMContext
) -> None:
    found = await reports.gaps(session, days=days, limit=MAX_LIST)
    # The buttons carry only an index: the questions stay in the FSM data (callback data ≤ 64 bytes).
    await state.update_data(gaps=[{"q": list(g.examples), "e": list(g.entry_ids)} for g in found])
    rows: list[tuple[Button, ...]] = []
    for i, g in enumerate(found):
        row = [btn(_("起草 {i}", i=i + 1), AdmGapCb(index=i))]
        if g.entry_ids:
            row.append(
                btn(_("{i} 加为 {id} 的问法", i=i + 1, id=g.entry_ids[0]), AdmGapCb(index=i, paraphrase=1))
            )
        rows.append(tuple(row))
    other = 30 if days == 7 else 7
    rows.append((btn(_("看最近 {days} 天", days=other), AdmGapsCb(days=other)),))
    await say(deliver, session, chat_id, admin_flow.gaps_text(found, days), tuple(rows))


async def show_stats(session: AsyncSession, deliver: Delivery, chat_id: int) -> None:
    now = utcnow()
    periods = [
        (_("最近 {days} 天", days=days), await reports.stats(session, now - dt.timedelta(days=days), now))
        for days in GAP_DAYS
    ]
    await say(deliver, session, chat_id, admin_flow.stats_text(periods))


# --- building a draft from the flow's data -------------------------------------------------------


async def draft_entry(
    session: AsyncSession, data: dict[str, Any], tz: str
) -> tuple[kb_store.RevisionInfo | None, Entry]:
    """The base revision (None for a new entry) and the entry as it would be saved (for the preview)."""
    kind = data["kind"]
    today = dt.datetime.now(ZoneInfo(tz)).date()
    if kind == "new":
        entry = Entry(
            id=data["entry_id"],
            topic=data["topic"],
            questions=tuple(data["questions"]),
            answer=data["answer"],
            source=data["source"],
            updated=today,
            status="draft",
        )
        return None, entry
    detail = await kb_store.entry_detail(session, data["entry_id"])
    if detail is None:
        raise ValueError(_("没有条目 {id}", id=data["entry_id"]))
    base = base_of(detail)
    if kind == "answer":
        entry = replace(base.entry, answer=data["answer"], updated=today)
    elif kind == "questions":
        entry = replace(base.entry, questions=tuple(data["questions"]))
    else:
        merged = [*base.entry.questions, *(q for q in data["questions"] if q not in base.entry.questions)]
        entry = replace(base.entry, questions=tuple(merged))
    return base, entry


async def save(session: AsyncSession, data: dict[str, Any], author: str) -> kb_store.RevisionInfo:
    kind, note = data["kind"], data.get("note", "")
    if kind == "new":
        return await kb_store.save_draft(
            session,
            data["entry_id"],
            questions=data["questions"],
            answer=data["answer"],
            source=data["source"],
            topic=data["topic"],
            keywords=[],
            author=author,
            note=note,
        )
    if kind == "answer":
        return await kb_store.save_draft(
            session, data["entry_id"], answer=data["answer"], author=author, note=note
        )
    if kind == "questions":
        return await kb_store.save_draft(
            session, data["entry_id"], questions=data["questions"], author=author, note=note
        )
    return await kb_store.add_paraphrases(
        session, data["entry_id"], data["questions"], author=author, note=note
    )


# --- the router ----------------------------------------------------------------------------------


def build_router(admin_ids: Collection[int]) -> Router:
    """A new Router per app. ``admin_ids``: the Telegram user ids allowed in."""
    admins = frozenset(admin_ids)
    router = Router(name="admin")

    async def admin_in_private(message: Message) -> bool:
        user = message.from_user
        return message.chat.type == "private" and user is not None and user.id in admins

    async def admin_pressed(callback: CallbackQuery) -> bool:
        # The presser, not the chat, is checked: every admin button press is authorised here.
        msg = callback.message
        return callback.from_user.id in admins and msg is not None and msg.chat.type == "private"

    async def plain_text(message: Message) -> bool:
        return plain(message)

    router.message.filter(admin_in_private)
    router.callback_query.filter(admin_pressed)

    # --- commands ---

    @router.message(Command("admin"))
    async def admin_menu(message: Message, session: AsyncSession, deliver: Delivery) -> None:
        await show_menu(session, deliver, message.chat.id)

    @router.message(Command("cancel"), StateFilter(Edit, Review))
    async def cancel_command(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        await finish(state)
        await say(deliver, session, message.chat.id, _("已取消，没有保存任何改动。"))

    @router.message(Command("kb_find"))
    async def kb_find(
        message: Message,
        command: CommandObject,
        session: AsyncSession,
        deliver: Delivery,
        knowledge: KnowledgeService,
    ) -> None:
        text = (command.args or "").strip()
        if not text:
            await say(deliver, session, message.chat.id, _("用法：/kb_find 文字，例如 /kb_find 低保怎么申请"))
            return
        # What the matcher would pick first (published entries), then id/question/answer text matches.
        result = knowledge.match(text)
        ranked = [result.entry.id] if result.entry else []
        if result.outcome != "escalate":  # an escalation's candidates are too weak to mean anything
            ranked += [c.entry_id for c in result.candidates]
        rows = {r.id: r for r in await kb_store.list_entries(session, limit=10_000)}
        hits = [rows[e] for e in dict.fromkeys(ranked) if e in rows]
        for r in await kb_store.list_entries(session, query=text, limit=MAX_LIST * 2):
            if r not in hits:
                hits.append(r)
        hits = hits[:MAX_LIST]
        if not hits:
            await say(deliver, session, message.chat.id, _("没有找到与“{q}”有关的条目。", q=text))
            return
        body = [_("与“{q}”有关的条目：", q=text)] + [admin_flow.summary_line(r) for r in hits]
        buttons = tuple(
            (btn(_("查看 {id}", id=r.id), AdmEntryCb(action="show", entry_id=r.id)),) for r in hits
        )
        await say(deliver, session, message.chat.id, "\n".join(body), buttons)

    @router.message(Command("kb_show"))
    async def kb_show(
        message: Message, command: CommandObject, session: AsyncSession, deliver: Delivery, settings: Settings
    ) -> None:
        entry_id = (command.args or "").strip()
        if not entry_id:
            await say(
                deliver, session, message.chat.id, _("用法：/kb_show 条目编号，例如 /kb_show dibao-apply")
            )
            return
        await show_entry(session, deliver, message.chat.id, entry_id, settings)

    @router.message(Command("review"))
    async def review(message: Message, session: AsyncSession, deliver: Delivery, settings: Settings) -> None:
        await show_queue(session, deliver, message.chat.id, settings)

    @router.message(Command("gaps"))
    async def gaps_command(
        message: Message, command: CommandObject, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        days = 30 if (command.args or "").strip() == "30" else 7
        await show_gaps(session, deliver, message.chat.id, days, state)

    @router.message(Command("stats"))
    async def stats_command(message: Message, session: AsyncSession, deliver: Delivery) -> None:
        await show_stats(session, deliver, message.chat.id)

    # --- menu buttons ---

    @router.callback_query(AdmMenuCb.filter())
    async def menu_button(
        callback: CallbackQuery,
        callback_data: AdmMenuCb,
        state: FSMContext,
        session: AsyncSession,
        deliver: Delivery,
        settings: Settings,
    ) -> None:
        await callback.answer()
        chat_id = callback.from_user.id
        action = callback_data.action
        if action == "queue":
            await show_queue(session, deliver, chat_id, settings)
        elif action == "stats":
            await show_stats(session, deliver, chat_id)
        elif action == "new":
            await begin(state, Edit.new_id, kind="new", questions=[])
            await say(deliver, session, chat_id, new_id_prompt(), (cancel_row(),))
        elif action == "cancel":
            await finish(state)
            await say(deliver, session, chat_id, _("已取消。"))
        else:
            await show_menu(session, deliver, chat_id)

    @router.callback_query(AdmGapsCb.filter())
    async def gaps_button(
        callback: CallbackQuery,
        callback_data: AdmGapsCb,
        state: FSMContext,
        session: AsyncSession,
        deliver: Delivery,
    ) -> None:
        await callback.answer()
        days = callback_data.days if callback_data.days in GAP_DAYS else 7
        await show_gaps(session, deliver, callback.from_user.id, days, state)

    @router.callback_query(AdmGapCb.filter())
    async def gap_button(
        callback: CallbackQuery,
        callback_data: AdmGapCb,
        state: FSMContext,
        session: AsyncSession,
        deliver: Delivery,
    ) -> None:
        gaps = (await state.get_data()).get("gaps") or []
        if not 0 <= callback_data.index < len(gaps):
            await callback.answer(_("这个列表已过期，请重新发送 /gaps。"), show_alert=True)
            return
        await callback.answer()
        gap = gaps[callback_data.index]
        questions = list(gap["q"])
        listing = "\n".join(f"• {q}" for q in questions)
        if callback_data.paraphrase and gap["e"]:
            entry_id = gap["e"][0]
            await begin(state, Edit.note, kind="paraphrases", entry_id=entry_id, questions=questions)
            text = _("将把这些问法加到条目 {id}：", id=entry_id) + "\n" + listing + "\n\n" + note_prompt()
        else:
            await begin(state, Edit.new_id, kind="new", questions=questions)
            text = _("为这些问题起草新条目：") + "\n" + listing + "\n\n" + new_id_prompt()
        await say(deliver, session, callback.from_user.id, text, (cancel_row(),))

    # --- entry buttons ---

    @router.callback_query(AdmEntryCb.filter())
    async def entry_button(
        callback: CallbackQuery,
        callback_data: AdmEntryCb,
        state: FSMContext,
        session: AsyncSession,
        deliver: Delivery,
        settings: Settings,
        knowledge: KnowledgeService,
    ) -> None:
        chat_id = callback.from_user.id
        entry_id, action = callback_data.entry_id, callback_data.action
        if action == "show":
            await callback.answer()
            await show_entry(session, deliver, chat_id, entry_id, settings)
            return
        detail = await kb_store.entry_detail(session, entry_id)
        if detail is None:
            await callback.answer(_("没有条目 {id}", id=entry_id), show_alert=True)
            return
        await callback.answer()
        base = base_of(detail)
        if action == "answer":
            await begin(state, Edit.answer, kind="answer", entry_id=entry_id)
            text = _("修改条目 {id} 的答复。当前答复：", id=entry_id) + "\n" + base.entry.answer + "\n\n"
            text += _("请发送新的答复全文（最多 {n} 字）。", n=MAX_ANSWER_CHARS)
        elif action == "questions":
            await begin(state, Edit.questions, kind="questions", entry_id=entry_id)
            text = _("修改条目 {id} 的问法。当前问法：", id=entry_id) + "\n"
            text += "\n".join(base.entry.questions) + "\n\n"
            text += _("请发送完整的新问法列表，一行一个，第一行是标准问法。")
        elif action == "paraphrases":
            await begin(state, Edit.paraphrases, kind="paraphrases", entry_id=entry_id)
            text = _("给条目 {id}（{q}）添加问法。", id=entry_id, q=base.entry.questions[0]) + "\n"
            text += _("请发送要添加的问法，一行一个。")
        elif action == "archive":
            if detail.published is None:
                await say(deliver, session, chat_id, _("条目 {id} 没有正在使用的版本", id=entry_id))
                return
            await begin(state, Review.archive_reason, entry_id=entry_id)
            text = _("下线条目 {id}：下线后市民将不再收到这条答复。", id=entry_id) + "\n"
            text += _("请说明下线原因。")
        elif action == "archive_ok":
            data = await state.get_data()
            if await state.get_state() != Review.archive_confirm.state or data.get("entry_id") != entry_id:
                await say(deliver, session, chat_id, _("这个操作已过期，请重新打开条目。"))
                return
            try:
                rev = await kb_store.archive_entry(
                    session, entry_id, author=who(callback.from_user), note=data["reason"]
                )
            except ValueError as exc:
                await session.rollback()
                await finish(state)
                await say(deliver, session, chat_id, str(exc))
                return
            await finish(state)
            await served_now(session, knowledge)
            await say(
                deliver,
                session,
                chat_id,
                _("已下线：条目 {id}（第 {n} 版）不再对市民提供。", id=entry_id, n=rev.number),
            )
            return
        else:
            return
        await say(deliver, session, chat_id, text, (cancel_row(),))

    # --- revision buttons ---

    @router.callback_query(AdmRevCb.filter())
    async def revision_button(
        callback: CallbackQuery,
        callback_data: AdmRevCb,
        state: FSMContext,
        session: AsyncSession,
        deliver: Delivery,
        settings: Settings,
        knowledge: KnowledgeService,
    ) -> None:
        await callback.answer()
        chat_id = callback.from_user.id
        action, rev_id = callback_data.action, callback_data.rev
        rev = await kb_store.get_revision(session, rev_id)
        if rev is None:
            await say(deliver, session, chat_id, _("没有这个版本。"))
            return
        if action == "view":
            await show_revision(session, deliver, chat_id, rev_id, settings)
        elif action == "approve":
            if rev.state != "draft":
                await show_revision(session, deliver, chat_id, rev_id, settings)
                return
            text = _(
                "确认发布条目 {id} 第 {n} 版？发布后市民几秒内就会收到新内容。", id=rev.entry_id, n=rev.number
            )
            buttons = (
                (
                    btn(_("确认发布"), AdmRevCb(action="approve_ok", rev=rev_id)),
                    btn(_("取消"), AdmMenuCb(action="cancel")),
                ),
            )
            await say(deliver, session, chat_id, text, buttons)
        elif action == "approve_ok":
            try:
                done = await kb_store.approve(session, rev_id, reviewer=who(callback.from_user))
            except ValueError as exc:
                await session.rollback()
                await say(deliver, session, chat_id, _("未发布：{error}", error=str(exc)))
                return
            await served_now(session, knowledge)
            await say(
                deliver,
                session,
                chat_id,
                _("已发布：条目 {id} 第 {n} 版，市民几秒内就会收到新内容。", id=done.entry_id, n=done.number),
                ((btn(_("查看条目"), AdmEntryCb(action="show", entry_id=done.entry_id)),),),
            )
        elif action == "reject":
            if rev.state != "draft":
                await show_revision(session, deliver, chat_id, rev_id, settings)
                return
            await begin(state, Review.reject_reason, rev=rev_id)
            text = _("驳回条目 {id} 第 {n} 版：请输入驳回理由（作者能看到）。", id=rev.entry_id, n=rev.number)
            await say(deliver, session, chat_id, text, (cancel_row(),))
        elif action == "restore":
            try:
                draft = await kb_store.restore_revision(session, rev_id, author=who(callback.from_user))
            except ValueError as exc:
                await session.rollback()
                await say(deliver, session, chat_id, str(exc))
                return
            text = _(
                "已把第 {old} 版的内容恢复为新草稿：第 {n} 版。发布后才对市民生效。",
                old=rev.number,
                n=draft.number,
            )
            buttons = ((btn(_("审核并发布"), AdmRevCb(action="view", rev=draft.id)),),)
            await say(deliver, session, chat_id, text, buttons)

    # --- the flow: cancel, topic choice, save ---

    @router.callback_query(AdmFlowCb.filter())
    async def flow_button(
        callback: CallbackQuery,
        callback_data: AdmFlowCb,
        state: FSMContext,
        session: AsyncSession,
        deliver: Delivery,
    ) -> None:
        chat_id = callback.from_user.id
        current = await state.get_state()
        if callback_data.action == "cancel":
            await callback.answer()
            await finish(state)
            await say(deliver, session, chat_id, _("已取消，没有保存任何改动。"))
            return
        if current != Edit.preview.state:
            await callback.answer(_("这个操作已过期。"), show_alert=True)
            return
        await callback.answer()
        data = await state.get_data()
        try:
            rev = await save(session, data, who(callback.from_user))
        except ValueError as exc:
            await session.rollback()
            await say(deliver, session, chat_id, _("未保存：{error}", error=str(exc)), (cancel_row(),))
            return
        await finish(state)
        text = _(
            "已保存为草稿：条目 {id} 第 {n} 版。草稿发布前不会对市民生效。", id=rev.entry_id, n=rev.number
        )
        buttons = (
            (btn(_("审核并发布"), AdmRevCb(action="view", rev=rev.id)),),
            (btn(_("查看条目"), AdmEntryCb(action="show", entry_id=rev.entry_id)),),
        )
        await say(deliver, session, chat_id, text, buttons)

    @router.callback_query(AdmTopicCb.filter(), StateFilter(Edit.new_topic))
    async def topic_button(
        callback: CallbackQuery,
        callback_data: AdmTopicCb,
        state: FSMContext,
        session: AsyncSession,
        deliver: Delivery,
    ) -> None:
        await callback.answer()
        topics = (await state.get_data()).get("topics") or []
        if not 0 <= callback_data.index < len(topics):
            return
        await after_topic(topics[callback_data.index], callback.from_user.id, state, session, deliver)

    # --- the flow: text steps ---

    @router.message(StateFilter(Edit.answer), plain_text)
    async def got_answer(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        answer = (message.text or "").strip()
        if len(answer) > MAX_ANSWER_CHARS:
            await say(
                deliver,
                session,
                message.chat.id,
                _("答复有 {n} 个字，最多 {max} 个", n=len(answer), max=MAX_ANSWER_CHARS),
                (cancel_row(),),
            )
            return
        await state.update_data(answer=answer)
        await ask_note(state, message.chat.id, session, deliver)

    @router.message(StateFilter(Edit.questions, Edit.paraphrases, Edit.new_questions), plain_text)
    async def got_questions(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        questions = lines_of(message.text or "")
        if not questions:
            await say(deliver, session, message.chat.id, _("至少需要一个问法"), (cancel_row(),))
            return
        await state.update_data(questions=questions)
        if await state.get_state() == Edit.new_questions.state:
            await state.set_state(Edit.new_answer)
            await say(deliver, session, message.chat.id, _("请发送答复全文。"), (cancel_row(),))
            return
        await ask_note(state, message.chat.id, session, deliver)

    @router.message(StateFilter(Edit.new_id), plain_text)
    async def got_id(message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery) -> None:
        entry_id = (message.text or "").strip().lower()
        if not valid_id(entry_id):
            await say(deliver, session, message.chat.id, new_id_prompt(), (cancel_row(),))
            return
        if await kb_store.entry_detail(session, entry_id) is not None:
            text = _("条目 {id} 已经存在：请换一个编号，或用 /kb_show {id} 修改它。", id=entry_id)
            await say(deliver, session, message.chat.id, text, (cancel_row(),))
            return
        topics = await kb_store.topics(session)
        await state.update_data(entry_id=entry_id, topics=topics)
        await state.set_state(Edit.new_topic)
        rows = [
            tuple(btn(t, AdmTopicCb(index=i)) for i, t in list(enumerate(topics))[j : j + 3])
            for j in range(0, len(topics), 3)
        ]
        text = _("请选择主题，或发送新主题的名称。")
        await say(deliver, session, message.chat.id, text, (*rows, cancel_row()))

    @router.message(StateFilter(Edit.new_topic), plain_text)
    async def got_topic(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        await after_topic((message.text or "").strip()[:40], message.chat.id, state, session, deliver)

    @router.message(StateFilter(Edit.new_answer), plain_text)
    async def got_new_answer(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        answer = (message.text or "").strip()
        if len(answer) > MAX_ANSWER_CHARS:
            text = _("答复有 {n} 个字，最多 {max} 个", n=len(answer), max=MAX_ANSWER_CHARS)
            await say(deliver, session, message.chat.id, text, (cancel_row(),))
            return
        await state.update_data(answer=answer)
        await state.set_state(Edit.new_source)
        text = _("请发送出处：答复中每个事实的来源（文件名称和条款，例如《社会救助暂行办法》第十一条）。")
        await say(deliver, session, message.chat.id, text, (cancel_row(),))

    @router.message(StateFilter(Edit.new_source), plain_text)
    async def got_source(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        await state.update_data(source=(message.text or "").strip())
        await ask_note(state, message.chat.id, session, deliver)

    @router.message(StateFilter(Edit.note), plain_text)
    async def got_note(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery, settings: Settings
    ) -> None:
        await state.update_data(note=(message.text or "").strip()[:500])
        data = await state.get_data()
        try:
            base, entry = await draft_entry(session, data, settings.timezone)
        except ValueError as exc:
            await finish(state)
            await say(deliver, session, message.chat.id, str(exc))
            return
        await state.set_state(Edit.preview)
        preview = admin_flow.as_draft(base, entry)
        lines = [
            _("预览（尚未保存）：条目 {id}", id=entry.id),
            admin_flow.changes_text(base, preview),
        ]
        if data["kind"] == "answer":
            lines += ["", _("修改后的完整答复："), entry.answer]
        lines += ["", _("修改说明：{note}", note=data["note"])]
        buttons = (
            (btn(_("保存为草稿"), AdmFlowCb(action="save")), btn(_("取消"), AdmFlowCb(action="cancel"))),
        )
        await say(deliver, session, message.chat.id, "\n".join(lines), buttons)

    @router.message(StateFilter(Review.reject_reason), plain_text)
    async def got_reject_reason(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        rev_id = int((await state.get_data())["rev"])
        try:
            rev = await kb_store.reject(
                session, rev_id, reviewer=who(message.from_user), reason=message.text or ""
            )
        except ValueError as exc:
            await session.rollback()
            await finish(state)
            await say(deliver, session, message.chat.id, str(exc))
            return
        await finish(state)
        text = _(
            "已驳回：条目 {id} 第 {n} 版。理由：{reason}",
            id=rev.entry_id,
            n=rev.number,
            reason=rev.review_note,
        )
        await say(deliver, session, message.chat.id, text)

    @router.message(StateFilter(Review.archive_reason), plain_text)
    async def got_archive_reason(
        message: Message, state: FSMContext, session: AsyncSession, deliver: Delivery
    ) -> None:
        data = await state.get_data()
        entry_id = data["entry_id"]
        await state.update_data(reason=(message.text or "").strip()[:500])
        await state.set_state(Review.archive_confirm)
        text = _("确认下线条目 {id}？原因：{reason}", id=entry_id, reason=(message.text or "").strip())
        buttons = (
            (
                btn(_("确认下线"), AdmEntryCb(action="archive_ok", entry_id=entry_id)),
                btn(_("取消"), AdmFlowCb(action="cancel")),
            ),
        )
        await say(deliver, session, message.chat.id, text, buttons)

    @router.message(StateFilter(Edit.preview, Review.archive_confirm))
    async def waiting_for_button(message: Message, session: AsyncSession, deliver: Delivery) -> None:
        text = _("请用上面的按钮确认，或发送 /cancel 取消。")
        await say(deliver, session, message.chat.id, text, (cancel_row(),))

    @router.message(StateFilter(Edit, Review))
    async def not_text(message: Message, session: AsyncSession, deliver: Delivery) -> None:
        """Anything else during a flow (a sticker, an unknown /command): say what is expected."""
        await say(
            deliver, session, message.chat.id, _("请发送文字内容，或发送 /cancel 取消。"), (cancel_row(),)
        )

    return router


def new_id_prompt() -> str:
    return _("请发送新条目的编号：小写英文字母、数字和 -，2 到 40 个字符，例如 canji-butie。")


def note_prompt() -> str:
    return _("请用一句话说明修改原因（会记入修改记录），例如：按 2024 年新标准更新。")


async def ask_note(state: FSMContext, chat_id: int, session: AsyncSession, deliver: Delivery) -> None:
    await state.set_state(Edit.note)
    await say(deliver, session, chat_id, note_prompt(), (cancel_row(),))


async def after_topic(
    topic: str, chat_id: int, state: FSMContext, session: AsyncSession, deliver: Delivery
) -> None:
    if not topic:
        await say(deliver, session, chat_id, _("主题不能为空"), (cancel_row(),))
        return
    await state.update_data(topic=topic)
    if (await state.get_data()).get("questions"):
        await state.set_state(Edit.new_answer)
        await say(deliver, session, chat_id, _("请发送答复全文。"), (cancel_row(),))
    else:
        await state.set_state(Edit.new_questions)
        text = _("请发送市民会怎么问，一行一个，第一行是标准问法。")
        await say(deliver, session, chat_id, text, (cancel_row(),))


def build_web_login_router(settings: Settings) -> Router:
    """/web_login: a one-time link to the web panel, for ADMIN_IDS and for Telegram users linked
    to an enabled panel account. Anyone else falls through to the citizen conversation."""
    router = Router(name="web_login")

    async def in_private(message: Message) -> bool:
        return message.chat.type == "private" and message.from_user is not None

    @router.message(in_private, Command("web_login"))
    async def web_login(message: Message, session: AsyncSession, deliver: Delivery) -> None:
        user = message.from_user
        assert user is not None
        try:
            token = await accounts.create_login_token(
                session, user.id, display_name(user), admin_ids=settings.admin_ids
            )
        except accounts.NotAnAdmin:  # nothing was written
            raise SkipHandler() from None  # no hint that the command exists
        url = f"{settings.web_base_url.rstrip('/')}/login/{token}"
        text = _(
            "网页管理后台的一次性登录链接（{minutes} 分钟内有效，只能使用一次，请勿转发）：\n{url}",
            minutes=int(accounts.TOKEN_LIFETIME.total_seconds() // 60),
            url=url,
        )
        await say(deliver, session, message.chat.id, text)

    return router
