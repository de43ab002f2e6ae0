"""Tickets: questions handed to hotline staff, and what staff do with them.

Every function takes a session and plain values and returns plain values or ``Outgoing``
messages; the caller commits, so a ticket is stored before anyone is told it exists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import kb_store
from bot.i18n import _
from bot.models import Citizen, MessageLink, Ticket, TicketMessage, utcnow
from bot.office_hours import OfficeHours
from bot.replies import Button, Outgoing, Reply
from knowledge.entries import Entry

OPEN_STATES = ("open", "answered")
CARD_TIME_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class StaffMember:
    id: int
    name: str


def _status_label(t: Ticket) -> str:
    if t.status == "closed":
        return _("已关闭")
    if t.status == "answered":
        return _("已回复")
    if t.claimed_by:
        return _("已认领")
    return _("待处理")


def local_time(moment: dt.datetime | None, hours: OfficeHours) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(hours.tz).strftime(CARD_TIME_FORMAT)


def waiting_text(since: dt.datetime, now: dt.datetime) -> str:
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return _("{m} 分钟", m=minutes)
    if minutes < 60 * 48:
        return _("{h} 小时 {m} 分钟", h=minutes // 60, m=minutes % 60)
    return _("{d} 天", d=minutes // (60 * 24))


async def get(session: AsyncSession, ticket_id: int) -> Ticket | None:
    return await session.get(Ticket, ticket_id)


async def open_ticket_for(session: AsyncSession, citizen_id: int) -> Ticket | None:
    return await session.scalar(
        select(Ticket)
        .where(Ticket.citizen_id == citizen_id, Ticket.status.in_(OPEN_STATES))
        .order_by(Ticket.id.desc())
        .limit(1)
    )


async def for_citizen(session: AsyncSession, citizen_id: int, limit: int = 10) -> list[Ticket]:
    rows = await session.scalars(
        select(Ticket).where(Ticket.citizen_id == citizen_id).order_by(Ticket.id.desc()).limit(limit)
    )
    return list(rows)


async def by_staff_message(session: AsyncSession, chat_id: int, message_id: int) -> Ticket | None:
    link = await session.get(MessageLink, (chat_id, message_id))
    return await session.get(Ticket, link.ticket_id) if link else None


async def create(
    session: AsyncSession,
    citizen: Citizen,
    question: str,
    *,
    source: str,
    candidates: list[str],
    topic: str | None,
) -> Ticket:
    ticket = Ticket(
        citizen_id=citizen.id,
        question=question,
        source=source,
        candidates=candidates,
        topic=topic,
        status="open",
    )
    session.add(ticket)
    await session.flush()
    citizen.fresh = False  # has a ticket now: later lookups in this session must see it
    session.add(
        TicketMessage(ticket_id=ticket.id, direction="citizen", author=citizen.display_name, text=question)
    )
    return ticket


async def add_message(
    session: AsyncSession,
    ticket: Ticket,
    *,
    direction: str,
    author: str,
    author_id: int | None,
    kind: str,
    text: str,
    file_id: str | None = None,
) -> TicketMessage:
    msg = TicketMessage(
        ticket_id=ticket.id,
        direction=direction,
        author=author,
        author_id=author_id,
        kind=kind,
        text=text,
        file_id=file_id,
    )
    session.add(msg)
    return msg


async def messages(session: AsyncSession, ticket_id: int) -> list[TicketMessage]:
    rows = await session.scalars(
        select(TicketMessage).where(TicketMessage.ticket_id == ticket_id).order_by(TicketMessage.id)
    )
    return list(rows)


def reachable(citizen: Citizen) -> bool:
    """Can the bot write to this citizen? (Terminal citizens read staff answers in the terminal.)"""
    return citizen.channel == "telegram" and citizen.anonymized_at is None


async def staff_answers_since(session: AsyncSession, citizen_id: int, after_id: int) -> list[TicketMessage]:
    """Staff messages on a citizen's tickets newer than ``after_id`` (oldest first)."""
    rows = await session.scalars(
        select(TicketMessage)
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(
            Ticket.citizen_id == citizen_id, TicketMessage.direction == "staff", TicketMessage.id > after_id
        )
        .order_by(TicketMessage.id)
    )
    return list(rows)


class StaffDesk:
    """What hotline staff do with tickets, and the ticket card they see in their group."""

    def __init__(self, staff_chat_id: int | None, hours: OfficeHours, reminder_hours: float) -> None:
        self.staff_chat_id = staff_chat_id
        self.hours = hours
        self.reminder_hours = reminder_hours

    # --- the card -----------------------------------------------------------------

    def card(self, t: Ticket, citizen: Citizen, candidates: list[str] | None = None) -> Reply:
        lines = [
            _("状态：{status}", status=_status_label(t)),
            _("市民：{name}", name=citizen.display_name or _("（未留名）")),
            _("时间：{at}", at=local_time(t.created_at, self.hours)),
            _("问题：{q}", q=t.question),
        ]
        cands = candidates if candidates is not None else list(t.candidates or [])
        if cands:
            lines.append(_("机器人候选：") + "；".join(cands))
        if t.claimed_by:
            lines.append(
                _("认领人：{name}（{at}）", name=t.claimed_by, at=local_time(t.claimed_at, self.hours))
            )
        if t.answered_at:
            lines.append(
                _(
                    "已回复：{name}（{at}）",
                    name=t.answered_by or "",
                    at=local_time(t.answered_at, self.hours),
                )
            )
        if t.closed_at and t.status == "closed":
            lines.append(
                _("已关闭：{name}（{at}）", name=t.closed_by or "", at=local_time(t.closed_at, self.hours))
            )
        if t.rating:
            lines.append(_("满意度：{n}/5", n=t.rating))
        if citizen.unreachable_at:
            lines.append(_("⚠ 市民已屏蔽机器人，消息无法送达"))
        if t.anonymized_at:
            at = local_time(t.anonymized_at, self.hours)
            lines.append(_("🔒 个人信息已删除（{at}），工单仅保留统计信息", at=at))
        buttons: list[Button] = []
        if t.status != "closed":
            if not t.claimed_by:
                buttons.append(Button(_("认领"), "claim", (t.id,)))
            buttons.append(Button(_("关闭"), "close", (t.id,)))
        if t.answered_at and not t.anonymized_at:
            buttons.append(Button(_("转为知识条目"), "draft", (t.id,)))
        footer = _("回复本消息即可答复市民")
        return Reply(
            text="\n".join(lines),
            header=_("工单 #{id}", id=t.id),
            footer=footer if t.status != "closed" else None,
            buttons=(tuple(buttons),) if buttons else (),
        )

    def card_out(self, t: Ticket, citizen: Citizen, *, new: bool = False) -> list[Outgoing]:
        if self.staff_chat_id is None:
            return []
        reply = self.card(t, citizen)
        if new:
            return [Outgoing(self.staff_chat_id, reply, ticket_id=t.id, link_kind="card")]
        return [Outgoing(self.staff_chat_id, reply, ticket_id=t.id, edit_card=True)]

    def staff_note(self, text: str, ticket_id: int | None = None) -> list[Outgoing]:
        if self.staff_chat_id is None:
            return []
        return [
            Outgoing(
                self.staff_chat_id,
                Reply(text),
                ticket_id=ticket_id,
                link_kind="forward" if ticket_id else None,
            )
        ]

    # --- actions ------------------------------------------------------------------

    async def claim(
        self, session: AsyncSession, ticket_id: int, staff: StaffMember
    ) -> tuple[str, list[Outgoing]]:
        """Exactly one of two simultaneous claims wins: the update is conditional."""
        now = utcnow()
        result = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.claimed_by.is_(None), Ticket.status != "closed")
            .values(claimed_by=staff.name, claimed_by_id=staff.id, claimed_at=now)
        )
        ticket = await session.get(Ticket, ticket_id, populate_existing=True)
        if ticket is None:
            return _("没有工单 #{id}", id=ticket_id), []
        if result.rowcount == 0:
            if ticket.status == "closed":
                return _("工单 #{id} 已关闭", id=ticket_id), []
            return _("工单 #{id} 已由 {name} 认领", id=ticket_id, name=ticket.claimed_by), []
        citizen = await session.get(Citizen, ticket.citizen_id)
        return _("您已认领工单 #{id}", id=ticket_id), self.card_out(ticket, citizen)

    async def reply(
        self,
        session: AsyncSession,
        ticket: Ticket,
        staff: StaffMember,
        *,
        text: str,
        kind: str = "text",
        file_id: str | None = None,
        copy_from: tuple[int, int] | None = None,
    ) -> tuple[str, list[Outgoing]]:
        """A staff answer: stored, sent to the citizen marked with the ticket number, card updated."""
        if ticket.anonymized_at is not None:
            return _("工单 #{id} 的市民已删除个人信息，无法再回复", id=ticket.id), []
        citizen = await session.get(Citizen, ticket.citizen_id)
        now = utcnow()
        await add_message(
            session,
            ticket,
            direction="staff",
            author=staff.name,
            author_id=staff.id,
            kind=kind,
            text=text,
            file_id=file_id,
        )
        if ticket.first_response_at is None:
            ticket.first_response_at = now
        ticket.answered_at, ticket.answered_by = now, staff.name
        if ticket.status == "open":
            ticket.status = "answered"
        if not ticket.claimed_by:
            ticket.claimed_by, ticket.claimed_by_id, ticket.claimed_at = staff.name, staff.id, now
        header = _("工单 #{id} 工作人员回复", id=ticket.id)
        out: list[Outgoing] = []
        if reachable(citizen):
            if copy_from is not None:
                caption = f"【{header}】" + (f"\n{text}" if text else "")
                out.append(
                    Outgoing(citizen.chat_id, copy_from=copy_from, caption=caption, citizen_id=citizen.id)
                )
            else:
                footer = _("如还有问题，直接在这里回复即可。")
                out.append(
                    Outgoing(
                        citizen.chat_id, Reply(text, header=header, footer=footer), citizen_id=citizen.id
                    )
                )
        out += self.card_out(ticket, citizen)
        if citizen.unreachable_at or citizen.anonymized_at:
            return _("⚠ 工单 #{id} 的市民已屏蔽机器人，回复已记录但无法送达", id=ticket.id), out
        return _("已发送给市民（工单 #{id}）", id=ticket.id), out

    async def close(
        self, session: AsyncSession, ticket_id: int, staff: StaffMember
    ) -> tuple[str, list[Outgoing]]:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            return _("没有工单 #{id}", id=ticket_id), []
        if ticket.status == "closed":
            return _("工单 #{id} 已关闭", id=ticket_id), []
        ticket.status, ticket.closed_at, ticket.closed_by = "closed", utcnow(), staff.name
        citizen = await session.get(Citizen, ticket.citizen_id)
        await add_message(
            session,
            ticket,
            direction="system",
            author=staff.name,
            author_id=staff.id,
            kind="text",
            text="closed",
        )
        out: list[Outgoing] = []
        if reachable(citizen):
            stars = tuple(Button("⭐" * n, "rate", (ticket.id, n)) for n in range(1, 6))
            out.append(
                Outgoing(
                    citizen.chat_id,
                    Reply(
                        _("您的工单 #{id} 已办结。请为本次服务打分（1–5 星）：", id=ticket.id),
                        buttons=(stars[:3], stars[3:]),
                    ),
                    citizen_id=citizen.id,
                )
            )
        out += self.card_out(ticket, citizen)
        return _("工单 #{id} 已关闭", id=ticket_id), out

    async def reopen(
        self, session: AsyncSession, ticket_id: int, staff: StaffMember
    ) -> tuple[str, list[Outgoing]]:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            return _("没有工单 #{id}", id=ticket_id), []
        if ticket.status != "closed":
            return _("工单 #{id} 未关闭", id=ticket_id), []
        if ticket.anonymized_at is not None:
            return _("工单 #{id} 的市民已删除个人信息，不能重新打开", id=ticket_id), []
        ticket.status = "answered" if ticket.answered_at else "open"
        ticket.closed_at = None
        ticket.reminded_at = None
        citizen = await session.get(Citizen, ticket.citizen_id)
        await add_message(
            session,
            ticket,
            direction="system",
            author=staff.name,
            author_id=staff.id,
            kind="text",
            text="reopened",
        )
        out = self.card_out(ticket, citizen)
        if reachable(citizen):
            out.insert(
                0,
                Outgoing(
                    citizen.chat_id,
                    Reply(_("您的工单 #{id} 已重新打开，工作人员会继续跟进。", id=ticket.id)),
                    citizen_id=citizen.id,
                ),
            )
        return _("工单 #{id} 已重新打开", id=ticket_id), out

    async def queue(self, session: AsyncSession, now: dt.datetime | None = None) -> str:
        now = now or utcnow()
        rows = (
            await session.execute(
                select(Ticket, Citizen)
                .join(Citizen, Citizen.id == Ticket.citizen_id)
                .where(Ticket.status.in_(OPEN_STATES))
                .order_by(Ticket.created_at, Ticket.id)
                .limit(50)
            )
        ).all()
        if not rows:
            return _("目前没有未关闭的工单。")
        total = await session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.status.in_(OPEN_STATES))
        )
        lines = [_("未关闭工单 {n} 件（最早的在前）：", n=total)]
        for t, c in rows:
            who = t.claimed_by or _("无人认领")
            q = t.question if len(t.question) <= 40 else t.question[:40] + "…"
            lines.append(
                _(
                    "#{id} {status} 等待{wait} {who}｜{name}：{q}",
                    id=t.id,
                    status=_status_label(t),
                    wait=waiting_text(t.created_at, now),
                    who=who,
                    name=c.display_name,
                    q=q,
                )
            )
        return "\n".join(lines)

    async def detail(self, session: AsyncSession, ticket_id: int) -> str:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            return _("没有工单 #{id}", id=ticket_id)
        citizen = await session.get(Citizen, ticket.citizen_id)
        card = self.card(ticket, citizen)
        lines = [card.header or "", card.text, "", _("对话记录：")]
        for m in await messages(session, ticket_id):
            if m.direction == "system":
                continue
            who = _("市民") if m.direction == "citizen" else _("工作人员 {name}", name=m.author)
            body = m.text or f"[{m.kind}]"
            lines.append(f"{local_time(m.created_at, self.hours)} {who}：{body}")
        return "\n".join(lines)

    async def draft_entry(
        self, session: AsyncSession, ticket_id: int, staff: StaffMember
    ) -> tuple[str, list[Outgoing]]:
        """Turn a staff answer into a draft knowledge entry for admins to review (never served as is)."""
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            return _("没有工单 #{id}", id=ticket_id), []
        if ticket.anonymized_at is not None:
            return _("工单 #{id} 的内容已删除，不能转为知识条目", id=ticket_id), []
        answers = [m for m in await messages(session, ticket_id) if m.direction == "staff" and m.text]
        if not answers:
            return _("工单 #{id} 还没有工作人员的文字回复", id=ticket_id), []
        entry = Entry(
            id=f"ticket-{ticket.id}",
            topic=ticket.topic or _("待分类"),
            questions=(ticket.question.strip()[:500],),
            answer="\n\n".join(m.text for m in answers)[:3500],
            source=_("热线工作人员答复（工单 #{id}），发布前请核对出处", id=ticket.id),
            updated=utcnow().date(),
            status="draft",
        )
        rev = await kb_store.add_revision(
            session,
            entry,
            author=staff.name,
            note=_("由工单 #{id} 生成", id=ticket.id),
            state="draft",
            origin_ticket_id=ticket.id,
        )
        await kb_store.audit(
            session, staff.name, "kb.draft_from_ticket", entry.id, ticket=ticket.id, revision=rev.number
        )
        return _("已生成知识条目草稿 {id}（第 {n} 版），等待管理员审核", id=entry.id, n=rev.number), []

    async def unreachable(self, session: AsyncSession, chat_id: int) -> list[Outgoing]:
        """Telegram said the citizen blocked the bot: mark them, and show it on their open tickets."""
        citizens = list(
            await session.scalars(
                select(Citizen).where(Citizen.chat_id == chat_id, Citizen.channel == "telegram")
            )
        )
        out: list[Outgoing] = []
        for citizen in citizens:
            if citizen.unreachable_at is not None:
                continue
            citizen.unreachable_at = utcnow()
            for t in await for_citizen(session, citizen.id, limit=20):
                if t.status == "closed":
                    continue
                out += self.card_out(t, citizen)
                out += self.staff_note(
                    _("⚠ 工单 #{id}：市民已屏蔽机器人，消息无法送达。", id=t.id), ticket_id=t.id
                )
        return out

    async def due_reminders(self, session: AsyncSession, now: dt.datetime | None = None) -> list[Outgoing]:
        """Tickets with no staff reply after the configured working time: remind the group once."""
        now = now or utcnow()
        rows = await session.scalars(
            select(Ticket)
            .where(Ticket.status == "open", Ticket.first_response_at.is_(None), Ticket.reminded_at.is_(None))
            .order_by(Ticket.id)
            .limit(200)
        )
        out: list[Outgoing] = []
        for t in rows:
            created = t.created_at if t.created_at.tzinfo else t.created_at.replace(tzinfo=dt.UTC)
            if self.hours.working_hours_between(created, now) < self.reminder_hours:
                continue
            claimed = await session.execute(
                update(Ticket).where(Ticket.id == t.id, Ticket.reminded_at.is_(None)).values(reminded_at=now)
            )
            if claimed.rowcount:
                out += self.staff_note(
                    _(
                        "⏰ 工单 #{id} 已等待 {h} 个工作小时，还没有人回复：{q}",
                        id=t.id,
                        h=f"{self.reminder_hours:g}",
                        q=t.question[:80],
                    ),
                    ticket_id=t.id,
                )
        return out

    def expected_reply(self, now: dt.datetime | None = None) -> str:
        now = now or utcnow()
        if self.hours.is_open(now):
            return _("工作人员一般会在 {h} 个工作小时内回复。", h=f"{self.reminder_hours:g}")
        opens = self.hours.next_open(now)
        return _("现在是非工作时间，工作人员将在 {at} 上班后尽快处理。", at=local_time(opens, self.hours))
